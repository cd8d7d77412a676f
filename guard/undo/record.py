"""Undo's own records: a journal row (command ``undo``) and a backup log entry in each sink."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from guard import journal
from guard.structs import asdict
from guard.undo.result import UndoResult

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.journal import JournalRun

STATUS = {0: "undone", 1: "undo_failed", 3: "undo_refused", 4: "partly_undone"}


def start(conn: psycopg.Connection[Any], result: UndoResult, run: JournalRun) -> None:
    """Journal the undo as running, before it changes anything."""
    journal.start(conn, run_id=result.undo_id, command="undo", pending=result.versions, restore_target=None,
                  actor="guard undo", reason=f"undo of run {run.run_id}")


def finish(conn: psycopg.Connection[Any], config: Config, result: UndoResult) -> None:
    """Close the journal row and log the undo to the backup log sinks (a failing sink: a line
    in ``not_invertible``'s neighbour, the message; the undo stands)."""
    status = STATUS.get(result.exit_code, "undo_failed")
    journal.finish(conn, result.undo_id, status=status, exit_code=result.exit_code,
                   report_json=json.dumps(asdict(result), default=str))
    _log_entry(conn, config, result, status)


def _log_entry(conn: psycopg.Connection[Any], config: Config, result: UndoResult, status: str) -> None:
    from guard.backups import BackupEntry, SinkContext, SinkError, make_sinks

    entry = BackupEntry(
        run_id=result.undo_id, kind="manual", reason=f"guard undo of run {result.run_id} ({status})",
        created_by="guard undo",
        metadata={"source": "migration-guard", "undo_of": result.run_id, "path": result.path,
                  "status": status, "versions": result.versions, "copies": result.copies},
    )
    ctx = SinkContext(conn=conn, config=config)
    for sink, _plugin in make_sinks(config):
        if getattr(sink, "marks_restore_point", False):
            continue  # a restore point is the run's; the undo's copies are in the database
        try:
            sink.record(entry, ctx)
        except SinkError as exc:
            result.message += f" (backup log {sink.label} failed: {exc})"
