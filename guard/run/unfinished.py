"""Step 4: an earlier run that started and never finished blocks until acknowledged."""

from __future__ import annotations

from guard import journal
from guard.errors import Blocked, GuardError
from guard.report.model import iso
from guard.restore import RestoreContext, plan_for_unfinished
from guard.run.report import actor
from guard.run.state import RunState


def refuse_unfinished(state: RunState, restore: RestoreContext) -> None:
    """Blocked (exit 3) with that run's restore plan in the report while an earlier run is
    unfinished; ``--acknowledge RUN_ID`` (with a reason) lets go of it first. Read only, the
    journal is not written and the refusal is the check's verdict."""
    import psycopg

    conn, options, report = state.db, state.options, state.report
    try:
        runs = journal.unfinished(conn)
    except psycopg.errors.InsufficientPrivilege as exc:
        raise Blocked(
            f"role {state.facts.role if state.facts else '?'} may not read guard's journal (guard.runs): "
            f"{exc.diag.message_primary}; nothing was changed",
            hint="run guard as the role that ran `guard init`, or grant this role USAGE on schema guard and "
                 "SELECT, INSERT, UPDATE on its tables",
        ) from None
    if options.acknowledge:
        if options.acknowledge not in {r.run_id for r in runs}:
            raise GuardError(
                f"--acknowledge {options.acknowledge}: no unfinished run with that id",
                hint="see `guard restore-plan` for the runs guard knows",
            )
        journal.acknowledge(
            conn, options.acknowledge, by=actor(report.ci), reason=options.reason or ""
        )
        report.warnings.append(
            f"acknowledged unfinished run {options.acknowledge}: {options.reason}"
        )
        runs = [r for r in runs if r.run_id != options.acknowledge]
    if not runs:
        return
    dead = runs[0]
    # What that run recorded in guard.run_commits, in each file's own transaction; the history
    # alone would credit it with versions another run or tool applied since.
    committed = list(dead.committed)
    report.unfinished_run = {
        "run_id": dead.run_id,
        "started_at": iso(dead.started_at),
        "actor": dead.actor,
        "reason": dead.reason,
        "pending": dead.pending,
        "committed": committed,
        "not_committed": [v for v in dead.pending if v not in committed],
        "restore_target": dead.restore_target,
    }
    report.restore_plan = plan_for_unfinished(dead, committed, restore)
    raise Blocked(
        f"an earlier run {dead.run_id} (started {iso(dead.started_at)} by {dead.actor or '?'}) "
        f"never finished; its journal shows {len(committed)} of its {len(dead.pending)} "
        "file(s) committed",
        hint=f"check the database, then: guard run --acknowledge {dead.run_id} --reason '...'",
    )
