"""Attempts to break `guard backup status`, the weekly gate, with backups that are not what they
seem: dated ahead of the database server's clock (a job's wrong clock or time zone, a typo in
`--at`). Such a backup read as 0s old, so status said ok for as long as its date was ahead,
however long the backups had stopped. Real CLI, real PostgreSQL, the fake Management API."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fakes import FakeSupabase
from tests.support import Project, Result, clean_env, run_guard

TOKEN = "sbp_status_break_token_0123456789"


@pytest.fixture
def api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=TOKEN).start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.mark.parametrize("ahead", [dt.timedelta(hours=2), dt.timedelta(days=3 * 365)])
def test_an_automated_backup_dated_ahead_of_the_server_is_not_fresh(ready: Project, ahead: dt.timedelta) -> None:
    """The only recent-looking backup is dated ahead; the real ones stopped a week ago."""
    ready.query("DELETE FROM public.backup_logs")
    ready.log_automated_backup(age=dt.timedelta(days=7))
    ready.log_automated_backup(age=-ahead)
    status = ready.guard("backup", "status", "--json")
    assert status.code == 3, status.output
    verdict = json.loads(status.stdout)["providers"][0]
    assert verdict["status"] == "error" and "ahead of the database server's clock" in verdict["message"]


def test_a_backup_a_minute_ahead_is_clock_skew_and_counts(ready: Project) -> None:
    ready.log_automated_backup(age=-dt.timedelta(minutes=1))
    status = ready.guard("backup", "status")
    assert status.code == 0, status.output


@pytest.mark.parametrize("at", ["2099-01-01T00:00:00Z", "2099-01-01"])
def test_backup_log_refuses_a_time_ahead_of_the_server(ready: Project, at: str) -> None:
    before = ready.query("SELECT count(*) FROM public.backup_logs")
    logged = ready.guard("backup", "log", "--kind", "automated", "--reason", "nightly", "--at", at)
    assert logged.code == 2, logged.output
    assert "ahead of the database server's clock" in logged.stderr and "Traceback" not in logged.output
    assert ready.query("SELECT count(*) FROM public.backup_logs") == before


def test_a_supabase_backup_dated_ahead_is_not_fresh(ready: Project, api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(days=5))
    api.backup_at(-dt.timedelta(days=30))
    (ready.root / "guard.yml").write_text(
        "backups:\n  providers:\n    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SB_TOKEN}}\n      api_url: {api.url}\n")
    status = ready.guard("backup", "status", SB_TOKEN=TOKEN)
    assert status.code == 3, status.output
    assert "ahead of the database server's clock" in status.stdout
    assert TOKEN not in status.output


def _url_naming(project: Project, ref: str) -> str:
    """The test database's URL under the host name of Supabase project ``ref`` (libpq's
    hostaddr reaches the local server without resolving it)."""
    from urllib.parse import urlsplit

    parts = urlsplit(project.db_url)
    return (f"postgresql://{parts.username}:{parts.password}@db.{ref}.supabase.co:{parts.port}{parts.path}"
            f"?hostaddr={parts.hostname}")


def _as(project: Project, url: str, *args: str) -> Result:
    return run_guard(*args, cwd=project.root, env=clean_env(GUARD_DATABASE_URL=url, SB_TOKEN=TOKEN))


def _supabase_yml(project: Project, api: FakeSupabase) -> None:
    (project.root / "guard.yml").write_text(
        f"backups:\n  providers:\n    - type: supabase\n      project_ref: {api.ref}\n"
        f"      access_token: ${{SB_TOKEN}}\n      api_url: {api.url}\n"
        f"log:\n  sinks:\n    - type: supabase-restore-point\n      project_ref: {api.ref}\n"
        f"      access_token: ${{SB_TOKEN}}\n      api_url: {api.url}\n      poll: 100ms\n    - type: table\n")


def test_another_projects_backups_are_not_this_databases(ready: Project, api: FakeSupabase) -> None:
    """guard.yml names project A (staging's ref copied into production's file); the database URL
    is project B's. A's fresh backups said ok for B, and a whole-database undo restored A."""
    api.backup_at(dt.timedelta(hours=1))
    _supabase_yml(ready, api)
    other = "zyxwvutsrqponmlkjihg"
    status = _as(ready, _url_naming(ready, other), "backup", "status")
    assert status.code == 2, status.output
    assert f"project_ref {api.ref} is not the project of database_url ({other})" in status.stderr
    same = _as(ready, _url_naming(ready, api.ref), "backup", "status")
    assert same.code == 0, same.output


def test_a_whole_database_undo_never_restores_another_project(ready: Project, api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(hours=1))
    _supabase_yml(ready, api)
    ready.add("20240101000001_a.sql", "create table public.a (id int);\n")
    run = _as(ready, _url_naming(ready, api.ref), "run")
    assert run.code == 0, run.output
    other = "zyxwvutsrqponmlkjihg"
    undo = _as(ready, _url_naming(ready, other), "undo", "--whole-database", "--yes", "--confirm", api.ref,
               "--poll", "50ms")
    assert undo.code == 2, undo.output
    assert api.restores == []
    assert ready.table_exists("public.a") and TOKEN not in undo.output


def test_a_drill_of_another_databases_snapshot_is_not_this_databases(ready: Project, tmp_path: Path) -> None:
    """A snapshot of database A drilled with database B's configuration (a shared snapshots
    folder, staging's file drilled from production's job) was recorded in B's guard.drills, and
    B's backup status and Backups page showed 'Last restore drill: passed' for B."""
    from urllib.parse import urlsplit

    import psycopg
    from psycopg import sql

    base, name = ready.db_url.rsplit("/", 1)
    other = name + "_b"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
    try:
        snaps = tmp_path / "snaps"
        ready.query("create table public.kept (id int primary key); insert into public.kept values (1), (2)")
        taken = ready.guard("snapshot", "--no-encrypt", "--out", str(snaps))
        assert taken.code == 0, taken.output
        env = clean_env(GUARD_DATABASE_URL=f"{base}/{other}", GUARD_SNAPSHOT_DIR=str(snaps))
        drill = run_guard("drill", "--dir", str(snaps), cwd=ready.root, env=env, timeout=300)
        assert drill.code == 0, drill.output
        assert f"the snapshot is of {urlsplit(ready.db_url).hostname}" in drill.stderr
        with psycopg.connect(f"{base}/{other}", autocommit=True) as conn:
            made = conn.execute("SELECT to_regclass('guard.drills') IS NOT NULL").fetchone() == (True,)
            held = made and conn.execute("SELECT count(*) FROM guard.drills").fetchone() != (0,)
        assert not held
        status = run_guard("backup", "status", "--json", "--html", str(tmp_path / "b.html"), cwd=ready.root, env=env)
        assert json.loads(status.stdout)["last_drill"] is None, status.output
        assert "No restore drill recorded yet" in (tmp_path / "b.html").read_text()
        own = ready.guard("backup", "status", "--json", GUARD_SNAPSHOT_DIR=str(snaps))
        assert json.loads(own.stdout)["last_drill"]["ok"] is True, own.output
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other)))
