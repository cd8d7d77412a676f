"""`guard run -- COMMAND`: guard around another migration tool (here the real Supabase CLI)."""

from __future__ import annotations

from pathlib import Path

from tests.conftest import TEST_PASSWORD
from tests.support import Project
from tests.test_supabase_cli import supabase_cli  # noqa: F401 - the session fixture

PUSH = 'exec "$SUPABASE" db push --db-url "$DATABASE_URL?sslmode=disable" --yes --workdir .'


def test_wrapped_supabase_push_that_succeeds(ready: Project, supabase_cli: Path) -> None:  # noqa: F811
    ready.add("20240101000000_items.sql", "create table public.items (id int primary key);\n")
    result = ready.guard("run", "--", "sh", "-c", PUSH, SUPABASE=str(supabase_cli))
    assert result.code == 0, result.output
    report = result.report
    assert report is not None and report["status"] == "applied"
    assert report["wrapped"]["exit_code"] == 0
    changes = {(c["action"], c["kind"], c["name"]) for c in report["wrapped"]["changes"]}
    assert ("added", "table", "public.items") in changes
    assert ("added", "history", "supabase_migrations.schema_migrations: 20240101000000") in changes
    assert [m["version"] for m in report["migrations"]] == ["20240101000000"]
    assert "Applying migration 20240101000000_items.sql" in result.stderr  # streamed
    assert ready.history() == ["20240101000000"]
    entry = ready.manual_entries()[0]
    assert entry["reason"].startswith("Before sh -c")
    assert ready.query("SELECT committed FROM guard.runs") == [(["20240101000000"],)]


def test_wrapped_push_that_fails_after_applying_a_file(ready: Project, supabase_cli: Path) -> None:  # noqa: F811
    ready.add("20240101000000_items.sql", "create table public.items (id int primary key);\n")
    ready.add("20240102000000_broken.sql", "select 1/0;\n")
    result = ready.guard("run", "--", "sh", "-c", PUSH, SUPABASE=str(supabase_cli))
    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_partially_applied"
    assert report["wrapped"]["exit_code"] != 0
    assert report["restore_plan"]["committed_versions"] == ["20240101000000"]
    assert report["restore_target"]["timestamp"] in result.stdout
    assert ready.history() == ["20240101000000"]


def test_wrapped_command_that_fails_without_touching_anything(ready: Project) -> None:
    result = ready.guard("run", "--", "sh", "-c", "echo cannot reach the registry; exit 7")
    assert result.code == 1, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_rolled_back"
    assert report["wrapped"] == {"argv": ["sh", "-c", "echo cannot reach the registry; exit 7"],
                                 "exit_code": 7, "changes": []}
    assert report["restore_plan"]["needed"] is False
    assert "cannot reach the registry" in result.stderr


def test_wrapped_command_that_changes_nothing_exits_0(ready: Project) -> None:
    result = ready.guard("run", "--", "true")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["status"] == "nothing_pending"


def test_wrapped_command_gets_database_url_and_its_output_is_masked(ready: Project) -> None:
    result = ready.guard("run", "--", "sh", "-c", 'echo "url is $DATABASE_URL"')
    assert result.code == 0, result.output
    assert "url is postgresql://postgres:***@127.0.0.1" in result.stderr
    assert TEST_PASSWORD not in result.output


def test_missing_command_is_a_usage_error_before_any_change(ready: Project) -> None:
    result = ready.guard("run", "--", "no-such-migration-tool", "up")
    assert result.code == 2, result.output
    assert "command not found: no-such-migration-tool" in result.stderr
    assert ready.manual_entries() == [] and not ready.table_exists("guard.runs")


def test_wrapped_command_is_still_gated_by_backups(tmp_path: Path, db_url: str) -> None:
    project = Project(tmp_path, db_url)
    project.init_backup_log()
    result = project.guard("run", "--", "sh", "-c", "touch ran")
    assert result.code == 3, result.output
    assert not (tmp_path / "ran").exists()
