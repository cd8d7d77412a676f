"""Step 11: apply the pending files in order, then settle what a lost connection left unknown."""

from __future__ import annotations

import functools
from typing import Any

from guard import journal
from guard.config import MigrationsConfig, ProtectConfig
from guard.db import connect
from guard.errors import ConnectError
from guard.migrations import history
from guard.migrations.apply import ApplyOutcome, BeforeCommit, apply_pending
from guard.migrations.pipeline import record_tables
from guard.protect import DESTRUCTIVE_KINDS, finish_run
from guard.report.model import MigrationError, RunReport
from guard.run.lint_gate import outside_transaction
from guard.run.protect import keep_copies, protector, records_gone, records_kept
from guard.run.signals import signals_cancel
from guard.run.state import Progress, RunState
from guard.tripwire import for_run

RECONNECT_DELAYS = (0.5, 1, 2, 4, 8)  # about 15 s: long enough for a server restart


def apply(state: RunState, migrations: MigrationsConfig, protect: ProtectConfig, destructive: str,
          before_commit: BeforeCommit | None = None) -> None:
    """Apply ``state.pending`` (each file's history and journal rows in its own transaction),
    with protective copies, the tripwire where the parser cannot vouch for a file
    (guard/tripwire.py; ``destructive`` is lint.destructive), and SIGINT/SIGTERM turned into a
    clean cancel. Fills ``state.outcome`` and the report's per-file results."""
    conn = state.db
    complete, record_rules = record_tables(conn)  # one round trip for both
    history.ensure_history(conn, complete=complete)
    outcome = state.outcome = ApplyOutcome()
    nontx = outside_transaction(state.findings, state.pending, state.display)
    copier = protector(state, protect)
    tripwire = for_run(conn, state.report, state.findings, state.pending, state.display,
                       destructive=destructive, copy_schema=protect.schema)
    with signals_cancel(outcome, state.progress, state.url, state.report.run_id):
        apply_pending(
            conn,
            state.pending,
            transaction=migrations.transaction,
            lock_timeout=migrations.lock_timeout,
            statement_timeout=migrations.statement_timeout,
            display=state.display,
            progress=state.progress,
            on_commit=functools.partial(journal.committed_row, state.report.run_id),
            outcome=outcome,
            lock_retries=migrations.lock_retries,
            lock_retry_delay=migrations.lock_retry_delay,
            before_statement=copier.before if copier else None,
            before_kinds=DESTRUCTIVE_KINDS if copier else None,
            outside_transaction=nontx,
            server_major=state.server_major,
            tripwire=tripwire,
            before_commit=before_commit,  # guard:verify (issue #19)
            record_rules=record_rules,
            records_kept=records_kept(state, copier),  # guard's records of the run, before each COMMIT
        )
    state.report.migrations = outcome.results
    rows_still_there(state, outcome)
    records_gone(state, copier)
    if copier is not None:
        finish_run(conn, protect.retention, copier, state.report.warnings, state.progress)
    keep_copies(state, copier)
    if outcome.connection_lost or outcome.unknown or outcome.interrupted:
        # What committed is whatever the history says: it is written in each file's transaction.
        state.reconnected = reconcile(conn, state.url, state.report, outcome, state.progress)


def rows_still_there(state: RunState, outcome: ApplyOutcome) -> None:
    """After the last COMMIT: the committed files' history rows and journal entries are read
    again (history.rows_gone_after_commit); a file whose row went since its own check (at its
    COMMIT, or deleted by a later file) keeps status applied with an error saying which row and
    what follows, and the run ends failed_partially_applied (exit 4)."""
    import psycopg

    from guard.report.model import MigrationError

    conn = state.db
    if not outcome.committed or conn.broken or conn.closed or outcome.unknown:
        return
    try:
        gone, run_row_gone = history.rows_gone_after_commit(conn, state.report.run_id, outcome.committed)
    except psycopg.Error as exc:
        from guard.migrations.apply_state import primary

        state.report.warnings.append(f"could not read back the committed files' history rows: {primary(exc)}")
        return
    for result in outcome.results:
        if result.version in gone:
            result.error = MigrationError(message=f"committed, but {gone_after_commit(result.version, *gone[result.version])}",
                                          sqlstate=None, file=result.file, line=None)
    outcome.rows_gone = {v: gone[v] for v in outcome.committed if v in gone}
    if run_row_gone:
        outcome.records_gone.append(f"the run's journal entry (guard.runs {state.report.run_id}: guard undo and "
                                    "guard restore-plan cannot find the run)")
    if outcome.rows_gone:
        state.report.warnings.append("; ".join(gone_after_commit(v, *what) for v, what in outcome.rows_gone.items()))


# Who can remove a committed file's row after its own check: what its COMMIT runs, or a later
# file of the run (each file checks its own rows only).
_REMOVED_BY = "(a later file of this run, or a trigger or rule acting at COMMIT, removed it)"


def gone_after_commit(version: str, history_gone: bool, journal_gone: bool) -> str:
    """What is gone of committed ``version``'s rows and what follows, in a phrase: with its
    history row gone the next run applies it again; with only its journal entry gone the
    history still holds it, but guard's journal does not count it as the run's."""
    if history_gone:
        what = "history row and journal entry" if journal_gone else "history row"
        return f"the {what} of {version} was gone after COMMIT {_REMOVED_BY}: the next run would apply {version} again"
    return (f"the journal entry (guard.run_commits) of {version} was gone after COMMIT {_REMOVED_BY}: the history "
            f"still holds {version}, but guard's journal does not count it as this run's")


def _reconnect(url: str, report: RunReport, progress: Progress) -> Any:
    import time

    for delay in RECONNECT_DELAYS:
        progress(f"connection lost; reconnecting in {delay:g}s to read the history")
        time.sleep(delay)
        try:
            return connect(url, application_name=f"guard run {report.run_id}")
        except ConnectError:
            continue
    return None


def reconcile(conn: Any, url: str, report: RunReport, outcome: ApplyOutcome, progress: Progress) -> Any:
    """After a lost connection or a signal: settle each file's status from the history.

    Returns a usable connection (the original, or a new one), or None when the server cannot
    be reached again; then files whose commit was in flight stay "unknown".
    """
    import psycopg

    live = None if (conn.broken or conn.closed) else conn
    if live is None:
        live = _reconnect(url, report, progress)
    if live is None:
        report.warnings.append("could not reconnect to read the history: outcome of the last file unknown")
        return None
    try:
        applied = {a.version for a in history.read_history(live)}
    except psycopg.Error:
        return live
    outcome.committed = [r.version for r in outcome.results if r.version in applied]
    stopped = False  # a file of a stream in flight that did not commit was seen
    for result in outcome.results:
        if result.status == "unknown" and result.version not in applied and stopped:
            result.status, result.error = "skipped", None  # after the one that stopped: never ran
            continue
        if result.version in applied and result.status != "applied":
            result.status = "applied"
            result.error = None
        elif result.status == "applied" and result.version not in applied:
            # Committed, then lost: a crash with synchronous_commit = off loses recent commits.
            result.status = "failed"
            result.error = MigrationError(
                message="committed, but not in the history after the server came back "
                "(lost in a crash: is synchronous_commit off?)",
                sqlstate=None, file=result.file, line=None,
            )
        elif result.status == "unknown":
            result.status = "failed"
            stopped = True
            if result.error is not None:
                result.error.message += " (the history shows it did not commit)"
    outcome.unknown = False
    return live
