"""The restore plan of a release that committed and then failed its checks (``verify_failed``,
issue #19): which versions committed, which checks failed, and the ways back.

guard/restore.py gives the restore paths (point-in-time recovery, copies, snapshot, backups);
this module words the rest. The `guard undo` step is added once the run's journal entry is
closed, and only when undo would accept the run (guard/restore_undo.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.report.model import RestorePlan, RestoreStep, RunReport

if TYPE_CHECKING:
    from guard.restore import RestoreContext


def failed_checks(report: RunReport) -> list[str]:
    """The names of the checks that failed after the last COMMIT."""
    return [str(c["name"]) for c in report.verify if c.get("result") == "failed" and c.get("where") == "after COMMIT"]


def verify_failed_plan(report: RunReport, ctx: RestoreContext, paths: list[RestoreStep],
                       newest: tuple[str, str] | None) -> RestorePlan:
    """The plan of a ``verify_failed`` run; ``paths`` as restore._restore_paths gives them,
    ``newest``: (provider, time) of the newest backup. Steps are lettered by the caller."""
    committed = [m.version for m in report.migrations if m.status == "applied"]
    checks = failed_checks(report)
    names = ", ".join(checks) or "(none recorded)"
    target = report.restore_target
    # A signal stopped the checks (verify.after_commit): they did not finish, nothing says they failed.
    failed = f"did not finish, interrupted by {report.interrupted}" if report.interrupted else "failed"
    summary = (f"The database was changed: every pending file committed ({', '.join(committed)}), then "
               f"{'this check' if len(checks) == 1 else 'these checks'} {failed}: {names}.")
    if target is not None:
        summary += f" Restore target: {target.timestamp} (unix {target.unix}" + (
            f", LSN {target.lsn})." if target.lsn else ").")
    fix = RestoreStep(
        "Fix forward (no restore)",
        f"The release is committed and recorded in the history; only the checks {failed} ({names}: what "
        "each returned is in the report's verify section; a check that did not finish can be run again by hand). "
        "If what they found can be corrected, add a migration that corrects it "
        "and run guard again: the committed versions stay applied. If a check itself is wrong, correct the "
        "check and run guard again (with nothing pending, the checks do not run: run them by hand).",
    )
    support = support_facts(report, ctx, f"verification {failed} after COMMIT: {names}", committed, newest)
    return RestorePlan(needed=True, summary=summary, committed_versions=committed, steps=[fix, *paths],
                       support=support)


def support_facts(report: RunReport, ctx: RestoreContext, error: str, committed: list[str],
                  newest: tuple[str, str] | None) -> dict[str, Any]:
    """What a plan tells support about a run that changed the database: its id, project,
    database, restore target (ISO time and unix seconds), newest backup time, the error line and
    the committed versions."""
    target = report.restore_target
    return {
        "run_id": report.run_id,
        "project_ref": ctx.project_ref,
        "database": report.database.target if report.database else None,
        "restore_target": target.timestamp if target else None,
        "restore_target_unix": target.unix if target else None,
        "newest_backup": newest[1] if newest else None,
        "error": error,
        "committed_versions": committed,
    }
