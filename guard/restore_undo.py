"""The restore plan's `guard undo` step, offered only when `guard undo` would accept the run.

A plan (guard/restore.py) is written from what happened; whether `guard undo` can put the
database back depends on what the run recorded and on what happened since (a later run, an
undo already done, a run whose changes took effect outside any recorded file). So the plan
asks undo itself: :func:`ask` runs undo's own dry run (guard.undo.run.undo without ``--yes``,
which changes nothing) and :func:`offer` words the answer: the commands when undo would
accept the run, with the path it would take; otherwise why not, and the plan's other steps
stay the real next steps. :func:`undone` rewrites the plan of a run that was undone: no undo,
no protective copies again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.report.model import RestorePlan, RestoreStep

if TYPE_CHECKING:
    from guard.config import Config

UNDO_TITLE = "Undo this run with guard"
REFUSED_TITLE = "What guard undo cannot do here"
ASK_TITLE = "Find out whether guard undo can undo this run"
UNDONE_ROW = "SELECT undo_id, path, partial, undone_at FROM guard.undone WHERE run_id = %s"
UNDONE_EXISTS = "SELECT to_regclass('guard.undone') IS NOT NULL"
_OURS = (UNDO_TITLE, REFUSED_TITLE, ASK_TITLE)


class Answer(Struct):
    """What `guard undo RUN_ID` (without --yes) said: ``accepts``; ``path`` local,
    restore-point or pitr; ``why`` when it refuses; for a local undo, what it would leave."""

    accepts: bool | None  # None: could not be asked (no live connection)
    path: str = "none"
    why: str = ""
    statements: int = 0
    left: list[str] = field(default_factory=list)
    project_ref: str | None = None


def ask(conn: Any, config: Config, run_id: str) -> Answer:
    """Undo's own dry run for ``run_id`` on ``conn``: nothing changes (guard.undo, without
    --yes). A refusal (GuardError, exit 3) is an answer; a database error or a bug in the dry
    run is "could not ask" (the run's outcome, settled before, must stand): nothing raised."""
    import psycopg

    from guard.errors import EXIT_BLOCKED, GuardError
    from guard.run.report import new_run_id
    from guard.undo.result import UndoOptions, UndoResult
    from guard.undo.run import undo

    if conn is None or conn.broken or conn.closed:
        return Answer(None)
    result = UndoResult(run_id=run_id, undo_id=new_run_id())
    try:
        undo(conn, config, UndoOptions(run_id=run_id), result, lambda _line: None)
    except GuardError as exc:
        return Answer(False, why=str(exc))
    except psycopg.Error as exc:
        return Answer(None, why=exc.diag.message_primary or str(exc))
    except Exception as exc:  # noqa: BLE001 - the run's outcome stands; the plan says it could not ask
        return Answer(None, why=f"guard undo's dry run failed: {type(exc).__name__}")
    if result.exit_code == EXIT_BLOCKED or result.path in ("refused", "none"):
        return Answer(False, why=result.message)
    ref = next((c.split("/v1/projects/", 1)[1].split("/", 1)[0] for c in result.api_calls if "/v1/projects/" in c), None)
    return Answer(True, result.path, statements=len(result.actions),
                  left=[*result.kept, *result.not_invertible], project_ref=ref)


def step(answer: Answer, run_id: str, recorded: bool = True) -> RestoreStep:
    """The plan's step for ``answer``: the undo, the refusal and why, or how to ask.
    ``recorded``: the run committed a file guard recorded (else what changed took effect
    outside a transaction, which guard's records do not hold)."""
    if answer.accepts is None:
        return RestoreStep(ASK_TITLE, "guard could not ask guard undo whether it can undo this run"
                           + (f" ({answer.why})" if answer.why else "") + ". Without --yes it only says "
                           "what it would do, and changes nothing:", [f"guard undo {run_id}"])
    if not answer.accepts:
        unseen = ("" if recorded else " What took effect outside a transaction is in none of guard's records "
                  "(no file of the run committed), so undo cannot invert it.")
        return RestoreStep(REFUSED_TITLE, f"guard undo refuses this run ({answer.why}).{unseen} "
                           "The steps below are the ways forward or back.")
    if answer.path == "local":
        left = ("" if not answer.left else " It would not put back everything: " + "; ".join(answer.left) + ".")
        return RestoreStep(
            UNDO_TITLE,
            f"guard undo puts the database back as it was before this run from what the run recorded (its "
            f"catalog and protective copies): {answer.statements} statement(s) in one transaction, after "
            f"copying the present state of what it touches.{left} First without --yes to see what it would do:",
            [f"guard undo {run_id}", f"guard undo {run_id} --yes"])
    how = "undo to the restore point the run created" if answer.path == "restore-point" else "point-in-time recovery"
    confirm = f" --confirm {answer.project_ref}" if answer.project_ref else ""
    return RestoreStep(
        UNDO_TITLE,
        f"Nothing of this run can be put back locally; guard undo uses Supabase's {how}, which returns the "
        "whole project to the run's restore target: every write since then, other traffic's too, is lost. "
        "First without --yes to see what it would do:",
        [f"guard undo {run_id}{confirm}", f"guard undo {run_id} --yes{confirm}"])


def offer(plan: RestorePlan | None, answer: Answer, run_id: str) -> None:
    """``plan`` with the step for ``answer`` first (an earlier undo step replaced), lettered."""
    from guard.restore import lettered

    if plan is None:
        return
    kept = [s for s in plan.steps if _bare(s.title) not in _OURS]
    plan.steps = lettered([step(answer, run_id, bool(plan.committed_versions)), *kept])


def _bare(title: str) -> str:
    import re

    return re.sub(r"^Option [A-P] - ", "", title)


def undone(conn: Any, run_id: str) -> dict[str, Any] | None:
    """The guard.undone row of ``run_id`` (undo_id, path, partial, undone_at), or None."""
    import psycopg

    try:
        if conn.execute(UNDONE_EXISTS).fetchone() != (True,):
            return None
        row = conn.execute(UNDONE_ROW, (run_id,)).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    return {"undo_id": row[0], "path": row[1], "partial": bool(row[2]), "undone_at": row[3].isoformat()}


def after_undo(plan: RestorePlan, run_id: str, row: dict[str, Any], left: list[str]) -> RestorePlan:
    """The plan of a run that was undone (``row`` from :func:`undone`; ``left``: what that undo
    kept or could not invert): never undo nor the protective copies again (undo consumed
    them); after a partial undo, the whole-database paths remain for what is left."""
    from guard.restore import lettered

    when = f"guard undo {row['undo_id']} ({row['path']}, {row['undone_at']})"
    if not row["partial"]:
        return RestorePlan(False, f"No restore needed: run {run_id} was undone by {when}; the database was put "
                           "back as it was before the run and the history no longer lists its versions.", [],
                           [RestoreStep("Fix the migration and run guard again",
                                        "Correct what made the run fail, then run guard again: the undone "
                                        "versions apply again.")], plan.support)
    steps = [RestoreStep("What the undo left", f"{when} put back only part of the run: "
                         + ("; ".join(left) if left else "see that undo's report in guard.runs")
                         + ". The history keeps the versions whose effects remain: correct the migration "
                         "and run guard again, or restore the whole database with an option below.")]
    # Not undo nor the copies again (undo used them), nor the fix forward written for the state
    # before the undo.
    steps += [s for s in plan.steps if _bare(s.title) not in _OURS and "(protective copies)" not in s.title
              and not _bare(s.title).startswith("Fix forward")]
    summary = f"Run {run_id} was partly undone by {when}. " + plan.summary
    return RestorePlan(plan.needed, summary, plan.committed_versions, lettered(steps), plan.support)


def of_an_undo(undo_id: str, report: dict[str, Any]) -> RestorePlan | None:
    """The plan shown for an undo's own journal row (``report``: its UndoResult) that ended 4
    (partly undone, or a platform restore not seen finishing): what it left, and where the
    undone run's plan is. None for any other undo (nothing to restore)."""
    if report.get("exit_code") != 4:
        return None
    run_id = report.get("run_id")
    left = [*(report.get("kept") or []), *(report.get("not_invertible") or []), *(report.get("remaining") or [])]
    steps = [RestoreStep("What the undo left", "; ".join(left) + "." if left else str(report.get("message") or ""))]
    if run_id:
        steps.append(RestoreStep("Find out what remains of the run",
                                 "The undone run's own plan, as it stands after this undo:",
                                 [f"guard restore-plan {run_id}"]))
    return RestorePlan(True, f"guard undo {undo_id} of run {run_id} ended 4: {report.get('message') or ''}".rstrip(),
                       list(report.get("versions") or []), steps)
