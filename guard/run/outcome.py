"""Step 13: the outcome and restore plan from each file's status; the journal entry closed."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from guard import journal
from guard.config import Config
from guard.errors import EXIT_BLOCKED, GuardError
from guard.migrations.apply import ApplyOutcome
from guard.report.model import RunReport
from guard.restore import RestoreContext, build_plan, supabase_project_ref
from guard.run.state import Mask, RunState


def restore_context(config: Config) -> RestoreContext:
    """The Supabase project ref and pgBackRest stanza a restore plan names, from the first
    provider or sink that has one (else the ref in a Supabase database URL)."""
    ref = None
    stanza = None
    for plugin in (*config.backups.providers, *config.log.sinks):
        ref = ref or plugin.options.get("project_ref")
        stanza = stanza or plugin.options.get("stanza")
    return RestoreContext(
        project_ref=ref or supabase_project_ref(config.database_url),
        pgbackrest_stanza=stanza,
    )


def set_outcome(report: RunReport, outcome: ApplyOutcome) -> None:
    """The report's status, message and database_changed from each file's status."""
    results = outcome.results
    committed = [r.version for r in results if r.status == "applied"]
    stopped = next((r for r in results if r.status in ("failed", "unknown")), None)
    if stopped is None:
        stopped = next((r for r in results if r.status != "applied"), None)
    lost = " (connection lost)" if outcome.connection_lost else ""
    if stopped is not None and outcome.changed_outside_transaction and not outcome.interrupted:
        report.set_outcome(
            "failed_partially_applied",
            f"{stopped.version} failed outside a transaction after some of its statements took effect"
            + (f": {outcome.partially_committed}." if outcome.partially_committed else "."),
            changed=True,
        )
    elif stopped is None and outcome.rows_gone:
        report.set_outcome(
            "failed_partially_applied",
            f"Applied {len(committed)} migration(s), but " + _gone(outcome) + " after COMMIT (a later file "
            "of this run, or a trigger or rule acting at COMMIT, removed it).",
            changed=True,
        )
    elif stopped is None and outcome.records_gone:
        report.set_outcome(
            "failed_partially_applied",
            f"Applied {len(committed)} migration(s), but a file removed guard's own records of the run: "
            + "; ".join(outcome.records_gone) + ".",
            changed=True,
        )
    elif stopped is None:
        report.set_outcome("applied", f"Applied {len(committed)} migration(s).", changed=True)
    elif any(r.status == "unknown" for r in results):
        report.set_outcome(
            "outcome_unknown",
            f"Connection lost while committing {stopped.version}: outcome unknown.",
            changed=None,
        )
    elif outcome.interrupted:
        report.set_outcome(
            "failed_partially_applied" if committed else "failed_rolled_back",
            f"Interrupted by {outcome.interrupted} at {stopped.version}; "
            + (f"{len(committed)} file(s) had committed." if committed else "nothing was committed."),
            changed=bool(committed),
        )
    elif committed:
        report.set_outcome(
            "failed_partially_applied",
            f"{stopped.version} {'failed' if stopped.status == 'failed' else 'was not applied'}{lost} "
            f"after {len(committed)} file(s) committed.",
            changed=True,
        )
    else:
        report.set_outcome(
            "failed_rolled_back",
            f"{stopped.version} failed{lost} and was rolled back; nothing was committed.",
            changed=False,
        )


def nothing_pending(state: RunState) -> bool:
    """True (and the outcome set) when no file is pending: the run ends here."""
    if state.pending:
        return False
    state.report.set_outcome("nothing_pending", "Nothing pending: the database is up to date.", changed=False)
    return True


def settle(state: RunState, restore: RestoreContext) -> None:
    """Outcome and restore plan after apply."""
    assert state.outcome is not None
    state.report.interrupted = state.outcome.interrupted
    set_outcome(state.report, state.outcome)
    state.report.restore_plan = build_plan(state.report, restore)


def finish_journal(conn: Any, report: RunReport, mask: Mask) -> None:
    """Close the run's journal entry with its status, exit code and (masked) report; a failure
    to do so is a warning: the run's outcome stands, and the next run sees the entry open."""
    import psycopg

    from guard.report import json as json_report

    try:
        journal.finish(
            conn, report.run_id, status="interrupted" if report.interrupted else report.status,
            exit_code=report.exit_code,
            report_json=json_report.compact(report, mask),
        )
    except psycopg.Error as exc:
        report.warnings.append(f"could not close the journal entry: {exc.diag.message_primary or exc}")


GUARD_TABLES = "schema guard (guard.runs, guard.run_commits)"


def note_journal_created(state: RunState) -> None:
    """A refused run that created guard's own journal says so: no migration was applied and
    the schema's own objects are unchanged, but the database is not as it was."""
    if state.journal_created:
        state.report.warnings.append(
            f"guard created its journal, {GUARD_TABLES}, to record this run; no migration was "
            "applied and nothing outside schema guard changed"
        )


@contextmanager
def journal_closed(state: RunState) -> Iterator[None]:
    """Once step 9 has opened the journal entry, close it however the block ends: a refusal
    (GuardError) sets the outcome first; otherwise on the live connection, if there is one."""
    try:
        yield
    except GuardError as exc:
        if state.journal_started:
            status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
            state.report.set_outcome(status, str(exc), changed=False)
            note_journal_created(state)
            live = journal_connection(state)
            if live is not None:
                finish_journal(live, state.report, state.mask)
        raise
    live = state.reconnected if state.reconnected is not None else state.db
    if state.journal_started and not (live.broken or live.closed):
        finish_journal(live, state.report, state.mask)


def journal_connection(state: RunState) -> Any:
    """A live session to close the run's journal entry on: the run's own, else one opened
    again (once; kept as ``state.reconnected``). None when the server cannot be reached: the
    entry then stays open and the next run is refused until someone looks (fail closed)."""
    from guard.db import connect
    from guard.errors import ConnectError, UsageError

    for conn in (state.reconnected, state.conn):
        if conn is not None and not (conn.broken or conn.closed):
            return conn
    try:
        state.reconnected = connect(state.url, application_name=f"guard {state.report.command} {state.report.run_id}",
                                    connect_timeout=5)
    except (ConnectError, UsageError) as exc:
        state.report.warnings.append(f"could not reconnect to close the journal entry: {exc}")
        return None
    return state.reconnected


def _gone(outcome: ApplyOutcome) -> str:
    """Which rows went after COMMIT, and what follows for each kind."""
    history = [v for v, (history_gone, _) in outcome.rows_gone.items() if history_gone]
    journal = [v for v, (history_gone, _) in outcome.rows_gone.items() if not history_gone]
    parts = ([f"the history row of {', '.join(history)} (the next run would apply it again)"] if history else []) + (
        [f"the journal entry of {', '.join(journal)} (the history still holds it; guard's journal does not count it "
         "as this run's)"] if journal else [])
    return " and ".join(parts) + (" were gone" if len(parts) > 1 else " was gone")
