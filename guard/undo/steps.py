"""The restore plan's first step once a run changed the database: `guard undo` (issue #19).

A small, separate step builder: guard/restore.py builds the rest of the plan."""

from __future__ import annotations

from guard.report.model import RestorePlan, RestoreStep


def undo_step(run_id: str) -> RestoreStep:
    """``guard undo RUN_ID`` (prints what it would do) then with ``--yes``."""
    return RestoreStep(
        title="Undo this run with guard",
        text="guard undo puts the database back as it was before this run from what the run recorded "
             "(its catalog and protective copies), in one transaction; first without --yes to see what it "
             "would do. It refuses, and says why, when a whole-database restore is the only way.",
        commands=[f"guard undo {run_id}", f"guard undo {run_id} --yes"],
    )


def put_undo_first(plan: RestorePlan | None, run_id: str) -> None:
    """Make `guard undo` the plan's first step (once)."""
    if plan is None or (plan.steps and plan.steps[0].title == undo_step(run_id).title):
        return
    plan.steps.insert(0, undo_step(run_id))
