"""Names of protective copies: unique per run, readable, within PostgreSQL's 63 bytes
(NAMEDATALEN - 1; a longer identifier is silently truncated by the server, which could make
two copies collide)."""

from __future__ import annotations

import hashlib

MAX_BYTES = 63


def copy_name(run_id: str, seq: int, table: str) -> str:
    """``<run_id>_<seq>_<table>``, the table part cut (on a character boundary) so the whole
    name fits 63 bytes; a cut name gets a short hash of the full table name, so two long
    names with the same beginning still differ. ``table`` is the bare relation name."""
    head = f"{run_id}_{seq}_"
    full = head + table
    if len(full.encode()) <= MAX_BYTES:
        return full
    digest = "_" + hashlib.sha256(table.encode()).hexdigest()[:8]
    room = MAX_BYTES - len(head.encode()) - len(digest)
    cut = table.encode()[:max(room, 0)].decode(errors="ignore")
    return head + cut + digest
