"""Snapshots are backups too: `guard snapshot` logs each one as a ``manual`` backup.

The runbook's "quarterly: download and archive critical backups" and "audit trail of all
downloads": the entry goes to the configured ``table`` and ``http`` sinks (not to
``supabase-restore-point``: a snapshot is a file, not a point to restore the project to),
with method ``snapshot``, the file, its SHA-256 and size, who took it and why. The snapshot's
id is the idempotency key (``metadata.run_id`` in the table, ``Idempotency-Key`` over HTTP),
so recording the same snapshot twice leaves one entry. ``get_backup_stats()``, `guard backup
status` and the Backups page then count it.

The snapshot is already written when it is logged: a sink that fails is reported as a warning
(with what to do), never by throwing the snapshot away or failing the command.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec.structs

from guard.config import require_database_url

if TYPE_CHECKING:
    from guard.backups import BackupEntry
    from guard.config import Config
    from guard.snapshot import Manifest

SNAPSHOT_SINKS = ("table", "http")


def snapshot_entry(manifest: Manifest, *, reason: str | None, environ: Mapping[str, str]) -> BackupEntry:
    """The manual-backup entry for a snapshot (idempotency key ``snapshot-<id>``)."""
    from guard.backups import BackupEntry
    from guard.run.report import actor, ci_context

    key = f"snapshot-{manifest.id}"
    ci = ci_context(environ)
    metadata: dict[str, Any] = {
        **ci,
        "run_id": key,
        "source": "migration-guard",
        "status": "completed",
        "method": "snapshot",
        "snapshot_id": manifest.id,
        "file": manifest.file,
        "sha256": manifest.sha256,
        "bytes": manifest.bytes,
        "mode": manifest.mode,
        "encrypted": manifest.encrypted,
        "taken_at": manifest.taken_at,
        "database": manifest.database,
    }
    why = reason or f"guard snapshot ({manifest.mode})"
    return BackupEntry(run_id=key, kind="manual", reason=why, created_by=actor(ci), metadata=metadata)


def record_snapshot(
    manifest: Manifest, config: Config, *, reason: str | None, environ: Mapping[str, str],
    progress: Callable[[str], None],
) -> list[str]:
    """Log the snapshot to the configured table/http sinks; one line per sink that recorded
    it ("manual backup 42 in table public.backup_logs"). Failures go to ``progress``."""
    from guard.backups import SinkContext, SinkError, make_sinks
    from guard.db import connect
    from guard.errors import GuardError

    chosen = tuple(p for p in config.log.sinks if p.type in SNAPSHOT_SINKS)
    if not chosen:
        return []
    only = msgspec.structs.replace(config, log=msgspec.structs.replace(config.log, sinks=chosen))
    entry = snapshot_entry(manifest, reason=reason, environ=environ)
    try:
        conn = connect(require_database_url(config), application_name="guard snapshot (log)")
    except GuardError as exc:
        progress(f"warning: snapshot {manifest.file} not logged as a backup: {exc}")
        return []
    done = []
    try:
        ctx = SinkContext(conn=conn, config=config, progress=progress)
        for sink, _plugin in make_sinks(only):
            try:
                entry_id = sink.record(entry, ctx)
            except SinkError as exc:
                progress(f"warning: snapshot {manifest.file} not logged to {sink.label}: {exc}")
                continue
            done.append(f"manual backup {entry_id} in {sink.label}")
    finally:
        conn.close()
    return done
