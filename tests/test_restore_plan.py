"""Restore plans built from run facts: what each path says, for Supabase and plain PostgreSQL."""

from __future__ import annotations

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
