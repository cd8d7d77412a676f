"""How long protective copies live: ``protect.retention`` (default 30 days, as Supabase keeps
its daily backups on Pro). A copy may hold personal data that a migration deleted to honour
an erasure request: it must not stay for ever, nor the md5 of each row undo keeps beside it
(guard.run_rows). Expired copies and row hashes are dropped at the end of every ``guard run``
and by ``guard backup prune``."""

from __future__ import annotations

from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

    from guard.protect import CopyRecord

DEFAULT_RETENTION = 30 * 86400.0  # seconds

REGISTRY_READY = ("SELECT to_regclass('guard.runs') IS NOT NULL AND to_regclass('guard.copies') IS NOT NULL, "
                  "to_regclass('guard.runs') IS NOT NULL AND to_regclass('guard.run_rows') IS NOT NULL")
HAS_EXPIRY = """
SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = 'guard.copies'::regclass
                AND attname = 'expires_at' AND NOT attisdropped)
"""
# Expired: made longer ago than an explicit --older-than; else past its own expiry (or, made
# before expiries were recorded, older than the retention).
EXPIRED = """
SELECT copy FROM guard.copies
 WHERE CASE WHEN %(age)s::float8 IS NOT NULL
            THEN created_at < clock_timestamp() - %(age)s::float8 * interval '1 second'
            ELSE coalesce({expiry}, created_at + %(retention)s::float8 * interval '1 second')
                 < clock_timestamp() END
 ORDER BY created_at
"""
FORGET_COPY = "DELETE FROM guard.copies WHERE copy = %s"
# The row hashes undo keeps of a run (guard/undo/written.py) are derived from the same rows as
# its copies (an md5 of each row it updated, of each value of a column it added): they expire
# with them, by the run's age.
FORGET_ROW_HASHES = """
DELETE FROM guard.run_rows WHERE run_id IN (
  SELECT run_id FROM guard.runs
   WHERE started_at < clock_timestamp() - coalesce(%(age)s::float8, %(retention)s::float8) * interval '1 second')
"""
FILLED = "SELECT rows, bytes FROM guard.copies WHERE copy = %s"
COPY_SIZE = "SELECT pg_total_relation_size(to_regclass(%s))"
SET_SIZE = "UPDATE guard.copies SET bytes = %s WHERE copy = %s"


def prune(
    conn: psycopg.Connection[Any], older_than: float | None = None, schema: str = "guard_backup",
    *, retention: float = DEFAULT_RETENTION,
) -> list[str]:
    """Drop expired protective copies and forget them, and the row hashes of runs as old (they
    are made from the same rows); returns the copies' names.

    Expired: past the ``expires_at`` recorded when the copy was made, or, with ``older_than``
    (seconds), made longer ago than that (whatever its expiry). Copies without an expiry
    (made by an older guard) expire ``retention`` seconds after they were made. One
    transaction. ``schema`` is where copies live (kept for callers; names are qualified)."""
    del schema
    copies, row_hashes = conn.execute(REGISTRY_READY).fetchone() or (False, False)  # one round trip
    params = {"age": older_than, "retention": retention}
    dropped: list[str] = []
    # One transaction where there are copies to drop; the row hashes alone are one statement.
    with conn.transaction() if copies else nullcontext():
        if copies:
            has_expiry = conn.execute(HAS_EXPIRY).fetchone()
            query = EXPIRED.format(expiry="expires_at" if has_expiry and has_expiry[0] else "NULL::timestamptz")
            for (copy,) in conn.execute(query, params).fetchall():
                conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(copy)))
                conn.execute(FORGET_COPY, (copy,))
                dropped.append(copy)
        if row_hashes:
            conn.execute(FORGET_ROW_HASHES, params)
    return dropped


def refresh(conn: psycopg.Connection[Any], copies: list[CopyRecord]) -> None:
    """Fill in the rows and bytes of copies that their own statement filled (DELETE/UPDATE
    rewritten to copy): known only after it ran. Best effort: a copy that rolled back with its
    file keeps None."""
    import psycopg

    for record in copies:
        if record.rows is not None:
            continue
        try:
            row = conn.execute(FILLED, (record.copy,)).fetchone()
            if row is None:
                continue
            record.rows = row[0]
            size = conn.execute(COPY_SIZE, (record.copy,)).fetchone()
            record.bytes = int(size[0]) if size and size[0] is not None else None
            conn.execute(SET_SIZE, (record.bytes, record.copy))
        except psycopg.Error:
            return
