"""The backup log: `guard init`, `guard backup log`, `guard backup status`, and its security."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest

from tests.support import Project


def test_init_is_idempotent(project: Project) -> None:
    first = project.guard("init")
    assert first.code == 0, first.output
    assert "created" in first.stdout
    project.log_automated_backup()
    second = project.guard("init")
    assert second.code == 0, second.output
    assert "already present" in second.stdout
    assert project.query("SELECT count(*) FROM public.backup_logs")[0][0] == 1
    assert project.query("SELECT relrowsecurity FROM pg_class WHERE oid = 'public.backup_logs'::regclass") == [(True,)]
    # The journal is in place too (runs then find everything), created once.
    assert "journal guard.runs, guard.run_commits created" in first.stdout
    assert "journal guard.runs, guard.run_commits already present" in second.stdout
    assert project.table_exists("guard.runs") and project.table_exists("guard.run_commits")
    assert "history supabase_migrations.schema_migrations created" in first.stdout
    assert "history supabase_migrations.schema_migrations already present" in second.stdout
    assert project.history() == []
    assert project.query("SELECT has_schema_privilege('public', 'guard', 'USAGE')") == [(False,)]


def _ensure_role(project: Project, role: str) -> None:
    project.query(
        f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
        f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$"
    )


def test_supabase_api_roles_and_public_cannot_read_the_log(project: Project) -> None:
    for role in ("anon", "authenticated"):
        _ensure_role(project, role)
    # Supabase grants the API roles everything in public by default; guard init takes it back.
    project.query("GRANT USAGE ON SCHEMA public TO anon, authenticated")
    project.query("ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated")
    assert project.guard("init").code == 0
    project.log_automated_backup()
    for role in ("anon", "authenticated"):
        with psycopg.connect(project.db_url, autocommit=True) as conn:
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT * FROM public.backup_logs")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("SELECT public.get_backup_stats()")


def test_get_backup_stats_counts_and_dates(project: Project) -> None:
    assert project.guard("init").code == 0
    project.log_automated_backup(age=dt.timedelta(hours=5))
    project.log_automated_backup(age=dt.timedelta(hours=1))
    assert project.guard("backup", "log", "--reason", "Before big change").code == 0
    stats = project.query("SELECT public.get_backup_stats()")[0][0]
    assert stats["total_backups"] == 3
    assert stats["automated_backups"] == 2
    assert stats["manual_backups"] == 1
    assert stats["recent"][0]["reason"] == "Before big change"
    assert len(stats["recent"]) == 3


def test_backup_log_writes_automated_entry_with_time(project: Project) -> None:
    assert project.guard("init").code == 0
    result = project.guard(
        "backup", "log", "--kind", "automated", "--reason", "nightly", "--at", "2026-01-02T03:04:05Z",
        "--meta", "location=s3://bucket/x",
    )
    assert result.code == 0, result.output
    row = project.query("SELECT kind, reason, created_at, metadata FROM public.backup_logs")[0]
    assert row[0] == "automated" and row[1] == "nightly"
    assert row[2] == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
    assert row[3]["location"] == "s3://bucket/x" and row[3]["status"] == "completed"


def test_backup_log_without_table_says_run_init(project: Project) -> None:
    result = project.guard("backup", "log", "--reason", "x")
    assert result.code != 0
    assert "guard init" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_backup_log_rejects_bad_timestamp(project: Project) -> None:
    assert project.guard("init").code == 0
    result = project.guard("backup", "log", "--reason", "x", "--at", "yesterday")
    assert result.code == 2 and "--at" in result.stderr
    assert project.query("SELECT count(*) FROM public.backup_logs")[0][0] == 0


def test_backup_status_is_a_gate(project: Project) -> None:
    assert project.guard("init").code == 0
    empty = project.guard("backup", "status", "--json")
    assert empty.code == 3, empty.output
    payload = json.loads(empty.stdout)
    assert payload["ok"] is False and payload["stats"]["total_backups"] == 0

    project.log_automated_backup(age=dt.timedelta(hours=3))
    fresh = project.guard("backup", "status", "--json")
    assert fresh.code == 0, fresh.output
    payload = json.loads(fresh.stdout)
    assert payload["ok"] is True
    assert payload["providers"][0]["status"] == "ok"
    assert payload["stats"]["automated_backups"] == 1

    stale = project.guard("backup", "status", "--max-age", "1h")
    assert stale.code == 3
    assert "stale" in stale.stdout and "Recent entries" in stale.stdout


def test_existing_table_of_another_shape_is_refused(project: Project) -> None:
    project.query("CREATE TABLE public.backup_logs (id int, note text)")
    result = project.guard("init")
    assert result.code == 3
    assert "lacks columns" in result.stderr
    assert project.query("SELECT count(*) FROM pg_proc WHERE proname = 'get_backup_stats'")[0][0] == 0


def test_manual_entry_is_idempotent_per_run_id(project: Project) -> None:
    from guard.backups.table import write_entry
    from guard.config import BackupLogConfig

    assert project.guard("init").code == 0
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        first = write_entry(conn, BackupLogConfig(), kind="manual", reason="r", created_by="t",
                            metadata={"run_id": "20260101000000-abcde"})
        again = write_entry(conn, BackupLogConfig(), kind="manual", reason="r", created_by="t",
                            metadata={"run_id": "20260101000000-abcde"})
    assert first == again
    assert project.query("SELECT count(*) FROM public.backup_logs")[0][0] == 1


def test_custom_table_name_and_schema(project: Project) -> None:
    (project.root / "guard.yml").write_text("backup_log:\n  schema: ops\n  table: backup_journal\n")
    assert project.guard("init").code == 0
    assert project.table_exists("ops.backup_journal")
    assert project.guard("backup", "log", "--kind", "automated", "--reason", "n").code == 0
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = project.guard("run")
    assert result.code == 0, result.output
    assert project.query("SELECT count(*) FROM ops.backup_journal WHERE kind = 'manual'")[0][0] == 1
