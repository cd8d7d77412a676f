"""Restore plans built from run facts: what each path says, for Supabase and plain PostgreSQL."""

from __future__ import annotations

import pytest

from guard.report.model import (
    BackupsReport,
    MigrationError,
    MigrationResult,
    ProviderReport,
    RestoreTarget,
    RunReport,
    SinkReport,
)
from guard.restore import RestoreContext, build_plan, supabase_project_ref

REF = "abcdefghijklmnopqrst"


def _failed_run(*, restore_point: str | None = None) -> RunReport:
    report = RunReport(command="run", run_id="20261125013000-a1b2c", started_at="2026-11-25T01:30:00Z")
    report.migrations = [
        MigrationResult("1", "a", "supabase/migrations/1_a.sql", "applied", 1),
        MigrationResult("2", "b", "supabase/migrations/2_b.sql", "failed", 1,
                        error=MigrationError("division by zero", "22012", "supabase/migrations/2_b.sql", 3)),
        MigrationResult("3", "c", "supabase/migrations/3_c.sql", "skipped", 1),
    ]
    report.restore_target = RestoreTarget("2026-11-25T01:30:01.5Z", 1795570201, "0/1A2B3C4", "guard-x")
    report.backups = BackupsReport(True, "any", [
        ProviderReport("supabase abcdefghijklmnopqrst", "ok", "fresh", "2026-11-24T03:00:00Z", 81000, 93600,
                       details={"backup_id": 7781},
                       pitr={"earliest": "2026-11-18T01:30:00Z", "latest": "2026-11-25T01:31:00Z"}),
    ])
    if restore_point:
        report.backup_log = [SinkReport("supabase-restore-point", "recorded", True, id=restore_point)]
    report.set_outcome("failed_partially_applied", "2 failed after 1 file(s) committed.", changed=True)
    return report


def test_partial_failure_plan_for_supabase_lists_every_path_most_precise_first() -> None:
    plan = build_plan(_failed_run(restore_point="20261125013000-a1b2c"), RestoreContext(project_ref=REF))
    assert plan is not None and plan.needed is True
    titles = [s.title for s in plan.steps]
    assert titles[0].startswith("Option A - Fix forward")
    assert "undo to the restore point" in titles[1]
    assert "point-in-time" in titles[2]
    commands = "\n".join(c for s in plan.steps for c in s.commands)
    assert f"/v1/projects/{REF}/database/backups/undo" in commands and '"name": "20261125013000-a1b2c"' in commands
    assert f"/v1/projects/{REF}/database/backups/restore-pitr" in commands
    assert '"recovery_time_target_unix": 1795570201' in commands
    assert '/database/backups/restore ' in commands and '"id": 7781' in commands
    assert "$SUPABASE_ACCESS_TOKEN" in commands  # a placeholder, never the token
    assert "recovery_target_lsn = '0/1A2B3C4'" in commands
    assert plan.support is not None and plan.support["project_ref"] == REF
    assert plan.committed_versions == ["1"]


def test_plain_postgres_plan_has_no_supabase_requests() -> None:
    plan = build_plan(_failed_run(), RestoreContext(pgbackrest_stanza="main"))
    assert plan is not None
    commands = "\n".join(c for s in plan.steps for c in s.commands)
    assert "api.supabase.com" not in commands
    assert 'pgbackrest --stanza=main --delta --type=time --target="2026-11-25T01:30:01.5Z"' in commands


def test_rolled_back_run_needs_no_restore() -> None:
    report = _failed_run()
    report.migrations[0].status = "skipped"
    report.set_outcome("failed_rolled_back", "1 failed", changed=False)
    plan = build_plan(report, RestoreContext(project_ref=REF))
    assert plan is not None and plan.needed is False
    assert "No restore needed" in plan.summary
    assert all(not s.commands for s in plan.steps)


def test_successful_run_has_no_plan() -> None:
    report = _failed_run()
    report.set_outcome("applied", "ok", changed=True)
    assert build_plan(report, RestoreContext()) is None


def test_project_ref_from_supabase_urls() -> None:
    assert supabase_project_ref(f"postgresql://postgres:pw@db.{REF}.supabase.co:5432/postgres") == REF
    assert supabase_project_ref(
        f"postgresql://postgres.{REF}:pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres") == REF
    assert supabase_project_ref("postgresql://u:p@127.0.0.1/db") is None
    assert supabase_project_ref(None) is None


# ---------------------------------------------------------------------- every sentence, every status (#19)
# Each plan guard can print, per status and per answer of `guard undo`'s dry run, checked line by
# line against the facts it was built from. The answers themselves are real in
# tests/test_restore_truth.py (the plan offers undo exactly when `guard undo RUN` exits 0).

from guard.report.model import RestorePlan  # noqa: E402
from guard.restore_undo import Answer, after_undo, offer  # noqa: E402

RUN = "20261125013000-a1b2c"
ANSWERS = {
    "undo_local": Answer(True, "local", statements=3),
    "undo_local_partial": Answer(True, "local", statements=2, left=["table public.t: kept, written to since"]),
    "undo_restore_point": Answer(True, "restore-point", project_ref=REF),
    "undo_refused": Answer(False, why="run 20261125013000-a1b2c committed nothing: there is nothing to undo"),
    "undo_unasked": Answer(None),
}


def _verify_failed_run() -> RunReport:
    report = _failed_run()
    report.migrations[1].status = "applied"
    report.migrations[1].error = None
    report.migrations[2].status = "applied"
    report.verify = [
        {"name": "verify.totals", "kind": "sql", "result": "failed", "where": "after COMMIT", "duration_ms": 1.0,
         "columns": ["ok"], "rows": [["f"]], "row_count": 1, "error": None},
        {"name": "verify.fine", "kind": "sql", "result": "passed", "where": "after COMMIT", "duration_ms": 1.0,
         "columns": [], "rows": [], "row_count": 0, "error": None},
        {"name": "verify.smoke", "kind": "run", "result": "failed", "where": "after COMMIT", "duration_ms": 1.0,
         "output": ["boom"], "error": "exit 1"},
    ]
    report.set_outcome("verify_failed", "Applied, but verification failed: verify.totals, verify.smoke.", changed=True)
    return report


def _unknown_run() -> RunReport:
    report = _failed_run()
    report.migrations[1].status = "unknown"
    report.set_outcome("outcome_unknown", "Connection lost while committing 2: outcome unknown.", changed=None)
    return report


def _outside_run() -> RunReport:
    report = _failed_run()
    report.migrations[0].status = "failed"
    report.migrations[1].status = "skipped"
    report.set_outcome("failed_partially_applied", "1 failed outside a transaction after some of its "
                       "statements took effect.", changed=True)
    return report


def _rolled_back_run() -> RunReport:
    report = _failed_run()
    report.migrations[0].status = "skipped"
    report.set_outcome("failed_rolled_back", "2 failed and was rolled back; nothing was committed.", changed=False)
    return report


STATUSES = {
    "failed_rolled_back": _rolled_back_run,
    "failed_partially_applied": _failed_run,
    "changed_outside_a_transaction": _outside_run,
    "outcome_unknown": _unknown_run,
    "verify_failed": _verify_failed_run,
}


def _cases() -> list[tuple[str, str]]:
    cases = [(status, "none") for status in STATUSES]
    cases += [(status, answer) for status in STATUSES if status != "failed_rolled_back" for answer in ANSWERS]
    cases += [(status, undone) for status in STATUSES if status != "failed_rolled_back"
              for undone in ("undone", "partly_undone")]
    return cases


def _plan_for(status: str, answer: str) -> tuple[RunReport, RestorePlan]:
    report = STATUSES[status]()
    plan = build_plan(report, RestoreContext(project_ref=REF))
    assert plan is not None
    if answer in ANSWERS:
        offer(plan, ANSWERS[answer], RUN)
    elif answer in ("undone", "partly_undone"):
        offer(plan, ANSWERS["undo_local"], RUN)  # as the run's plan was saved
        row = {"undo_id": "20261125020000-u1u1u", "path": "local", "partial": answer == "partly_undone",
               "undone_at": "2026-11-25T02:00:00+00:00"}
        plan = after_undo(plan, RUN, row, ["table public.t: kept"] if row["partial"] else [])
    return report, plan


def _violations(status: str, answer: str, report: RunReport, plan: RestorePlan) -> list[str]:
    """Each sentence of the plan against the facts; the broken rules."""
    bad = []
    commands = [c for s in plan.steps for c in s.commands]
    words = " ".join([plan.summary, *(s.title + " " + s.text for s in plan.steps)])
    undo_commands = [c for c in commands if c.startswith("guard undo")]
    committed = [m.version for m in report.migrations if m.status == "applied"]
    if ("No restore needed" in plan.summary) != (plan.needed is False):
        bad.append("'No restore needed' said iff nothing needs restoring")
    if plan.needed is False and any(k in c for c in commands for k in ("curl", "pg_restore", "pgbackrest",
                                                                       "INSERT", "guard undo")):
        bad.append("a plan that needs no restore offers a restore")
    offered = answer in ("undo_local", "undo_local_partial", "undo_restore_point")
    if bool(undo_commands) != offered and not (answer == "undo_unasked" and undo_commands == [f"guard undo {RUN}"]):
        bad.append("guard undo offered iff undo's dry run accepts the run (or asked, without --yes)")
    if any("--yes" in c for c in undo_commands) and not any("--yes" not in c for c in undo_commands):
        bad.append("--yes without the dry run before it")
    if answer == "undo_restore_point" and not all(f"--confirm {REF}" in c for c in undo_commands):
        bad.append("a whole-database undo without --confirm <project-ref>")
    if answer == "undo_restore_point" and "every write since then" not in words:
        bad.append("a whole-database undo without the warning that writes are lost")
    if answer == "undo_local_partial" and "would not put back everything" not in words:
        bad.append("a partial local undo not said")
    if answer in ("undone", "partly_undone"):
        if undo_commands or any("(protective copies)" in s.title for s in plan.steps):
            bad.append("an undone run offers undo or its copies again")
        if "undone by guard undo 20261125020000-u1u1u" not in plan.summary:
            bad.append("an undone run's plan does not name the undo")
        if "recorded in the history" in words or "consistent at version" in words:
            bad.append("an undone run's plan describes the history as before the undo")
    if status == "verify_failed" and answer not in ("undone",):
        for false in ("rolled back", "before the failure", "failed.", "consistent at version"):
            if false in words:
                bad.append(f"verify_failed plan says '{false}'")
        if "verify.totals, verify.smoke" not in plan.summary or "verify.fine" in plan.summary:
            bad.append("verify_failed summary does not name exactly the failed checks")
        if ", ".join(committed) not in plan.summary:
            bad.append("verify_failed summary does not name what committed")
    if status != "verify_failed" and "check" in plan.summary and "verify" in plan.summary:
        bad.append("a plan speaks of checks that did not run")
    if plan.needed is not False and report.restore_target and report.restore_target.timestamp not in words:
        bad.append("a changed database's plan without its restore target")
    letters = [s.title.split(" - ")[0][-1] for s in plan.steps if s.title.startswith("Option ")]
    if letters != list("ABCDEFGHIJKLMNOP"[: len(letters)]):
        bad.append(f"options lettered out of order: {letters}")
    if any(s.title.endswith("Undo this run with guard") and not s.title.startswith("Option ") for s in plan.steps):
        bad.append("the undo step is not lettered as an option")
    return bad


@pytest.mark.parametrize(("status", "answer"), _cases())
def test_every_plan_sentence_is_true_for_every_status(status: str, answer: str) -> None:
    report, plan = _plan_for(status, answer)
    assert _violations(status, answer, report, plan) == []
