"""Step 9: journal the run and log the manual backup to the sinks, before any change."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard import journal
from guard.backups import BackupEntry, SinkContext, SinkError, make_sinks
from guard.config import Config
from guard.errors import Blocked, UsageError
from guard.report.model import RunReport, SinkReport
from guard.run.report import actor
from guard.run.state import Progress, RunState
from guard.structs import asdict

if TYPE_CHECKING:
    import psycopg


def entry_for(report: RunReport, pending: list[str], reason: str) -> BackupEntry:
    """The manual backup entry: reason, run id, actor, pending versions, the restore point, CI."""
    target = report.restore_target
    metadata: dict[str, Any] = {
        "run_id": report.run_id,
        "source": "migration-guard",
        "pending_versions": list(pending),
        "restore_point": {
            "timestamp": target.timestamp,
            "unix": target.unix,
            "lsn": target.lsn,
            "name": target.restore_point,
        }
        if target
        else None,
        **{k: v for k, v in report.ci.items()},
    }
    if report.backups and report.backups.override:
        metadata["backup_override"] = report.backups.override
    return BackupEntry(
        run_id=report.run_id, kind="manual", reason=reason, created_by=actor(report.ci), metadata=metadata
    )


def log_manual_backup(
    conn: psycopg.Connection[Any], config: Config, report: RunReport, entry: BackupEntry, progress: Progress
) -> None:
    """Record ``entry`` with every configured sink (a restore point sink first, so the others
    can name it). A required sink that fails: Blocked (exit 3); an optional one: a warning."""
    ctx = SinkContext(conn=conn, config=config, progress=progress)
    sinks = sorted(make_sinks(config), key=lambda pair: not getattr(pair[0], "marks_restore_point", False))
    for sink, plugin in sinks:
        try:
            entry_id = sink.record(entry, ctx)
            if getattr(sink, "marks_restore_point", False):
                entry = BackupEntry(entry.run_id, entry.kind, entry.reason, entry.created_by,
                                    {**entry.metadata, "supabase_restore_point": entry_id})
        except SinkError as exc:
            report.backup_log.append(SinkReport(sink.label, "failed", plugin.required, error=str(exc)))
            if plugin.required:
                raise Blocked(
                    f"could not log the manual backup to {sink.label}: {exc}",
                    hint="no migration was applied; fix the sink or mark it required: false",
                ) from None
            report.warnings.append(f"optional backup log sink {sink.label} failed: {exc}")
            continue
        report.backup_log.append(SinkReport(sink.label, "recorded", plugin.required, id=entry_id))
        progress(f"manual backup logged to {sink.label} (id {entry_id})")


def log_backup(state: RunState, config: Config, default_reason: str) -> None:
    """Start the journal entry, then log the manual backup; the reason is --reason, else the
    configured reason, else ``default_reason``."""
    report = state.report
    pending = [f.version for f in state.pending]
    reason = report.reason = state.options.reason or config.reason or default_reason
    assert report.restore_target is not None
    complete, schema_version = journal.journal_state(state.db)
    state.journal_created = not complete
    started = journal.start(
        state.db,
        run_id=report.run_id,
        command=report.command,
        pending=list(pending),
        restore_target=asdict(report.restore_target),
        actor=actor(report.ci),
        reason=reason,
        schema_version=schema_version,
        complete=complete,
    )
    if not started:
        raise UsageError(
            f"run id {report.run_id} is already in guard's journal (guard.runs): an earlier run used it",
            hint="nothing was changed; GUARD_RUN_ID must be unique per run, e.g. ${{ github.run_id }}-${{ github.run_attempt }}",
        )
    state.journal_started = True
    log_manual_backup(state.db, config, report, entry_for(report, pending, reason), state.progress)
