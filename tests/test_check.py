"""`guard check`: read-only verdicts for pull requests, and the shadow dry run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support import Project


@pytest.fixture
def scratch_url(db_url: str) -> Iterator[str]:
    """A second, empty database on the test cluster, as a CI `services: postgres` would be."""
    base, name = db_url.rsplit("/", 1)
    scratch = f"{name}_shadow"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    yield f"{base}/{scratch}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def _untouched(project: Project) -> bool:
    return (
        not project.table_exists("supabase_migrations.schema_migrations")
        and not project.table_exists("guard.runs")
        and project.manual_entries() == []
    )


def test_check_lists_pending_and_never_writes(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    result = ready.guard("check")
    assert result.code == 0, result.output
    report = result.report
    assert report is not None and report["status"] == "ready" and report["command"] == "check"
    assert [(m["version"], m["status"]) for m in report["migrations"]] == [("20240101000000", "pending")]
    assert report["backups"]["ok"] is True
    assert report["restore_target"] is None
    assert _untouched(ready)


def test_check_says_blocked_when_run_would_be(tmp_path: Path, db_url: str) -> None:
    project = Project(tmp_path, db_url)
    project.init_backup_log()
    project.add("20240101000000_items.sql", "create table public.items (id int);\n")
    result = project.guard("check")
    assert result.code == 3, result.output
    assert result.report is not None and "would be blocked" in result.report["message"]
    assert _untouched(project)


def test_check_nothing_pending(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    assert ready.guard("run").code == 0
    result = ready.guard("check")
    assert result.code == 0 and result.report is not None
    assert result.report["status"] == "nothing_pending"


def test_a_file_that_does_not_parse_fails_the_check(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n\nselec 1;\n")
    result = ready.guard("check")
    assert result.code == 1, result.output
    assert result.report is not None and result.report["status"] == "dry_run_failed"
    assert "supabase/migrations/20240101000000_items.sql:3" in result.output


def test_check_with_a_guard_running_warns_but_does_not_block(ready: Project) -> None:
    from guard.db import LOCK_KEY

    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    with psycopg.connect(ready.db_url, autocommit=True, application_name="guard run other") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = ready.guard("check")
    assert result.code == 0, result.output
    assert result.report is not None and any("guard run other" in w for w in result.report["warnings"])


def test_embedded_shadow_reports_the_broken_file_and_line(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    ready.add("20240102000000_broken.sql", "insert into public.items values (1);\n\nselect id, nme\n  from public.items;\n")
    result = ready.guard("check", "--shadow", "embedded")
    assert result.code == 1, result.output
    report = result.report
    assert report is not None and report["status"] == "dry_run_failed"
    failed = next(m for m in report["migrations"] if m["status"] == "failed")
    assert failed["error"]["file"] == "supabase/migrations/20240102000000_broken.sql"
    assert failed["error"]["line"] == 3 and failed["error"]["sqlstate"] == "42703"
    assert report["shadow"]["applied"] == ["20240101000000"]
    assert _untouched(ready) and not ready.table_exists("public.items")


def test_embedded_shadow_on_a_good_folder_passes(ready: Project) -> None:
    (ready.root / "supabase" / "config.toml").write_text("", encoding="utf-8")  # a Supabase project: anon exists
    ready.add("20240101000000_items.sql", "create table public.items (id int);\ngrant select on public.items to anon;\n")
    result = ready.guard("check", "--shadow", "embedded")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["shadow"]["applied"] == ["20240101000000"]


def test_shadow_from_target_tries_pending_files_on_the_real_schema(ready: Project, scratch_url: str) -> None:
    # Production has a table no migration file creates (made by hand long ago).
    ready.query("CREATE TABLE public.legacy (id int primary key, note text)")
    ready.add("20240101000000_extend_legacy.sql", "alter table public.legacy add column tag text;\n")
    from_scratch = ready.guard("check", "--shadow", scratch_url)
    assert from_scratch.code == 1  # from scratch the table does not exist
    with psycopg.connect(scratch_url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE; CREATE SCHEMA public")
        conn.execute("DROP SCHEMA IF EXISTS supabase_migrations CASCADE")
    from_target = ready.guard("check", "--shadow", scratch_url, "--shadow-from-target")
    assert from_target.code == 0, from_target.output
    assert from_target.report is not None
    assert from_target.report["shadow"]["from_target"] is True
    assert ready.query("SELECT count(*) FROM information_schema.columns WHERE table_name = 'legacy' AND column_name = 'tag'")[0][0] == 0


def test_shadow_must_not_be_the_target(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    result = ready.guard("check", "--shadow", ready.db_url)
    assert result.code == 2, result.output
    assert "is the target database itself" in result.stderr
    # Another spelling of the same server and database is the same database.
    alias = ready.db_url.replace("127.0.0.1", "localhost")
    assert alias != ready.db_url
    again = ready.guard("check", "--shadow", alias)
    assert again.code == 2 and "is the target database itself" in again.stderr, again.output
    assert not ready.table_exists("public.items")
