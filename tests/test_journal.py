"""guard's journal: a run that died blocks the next until acknowledged; `guard restore-plan`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from tests.support import Project


def _start_guard(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "guard", "run"], cwd=project.root, env=project.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )


def _wait_for(predicate, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _kill_mid_run(project: Project) -> str:
    """Start a run, SIGKILL it while its second file sleeps, end its server session."""
    proc = _start_guard(project)
    try:
        _wait_for(lambda: project.query(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
        )[0][0] > 0)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # A killed client leaves its backend sleeping (and holding guard's lock) until the server
    # notices; a runner that vanished looks the same. End it, as the server eventually would.
    project.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%'")
    _wait_for(lambda: project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%'"
    )[0][0] == 0)
    rows = project.query("SELECT run_id FROM guard.runs WHERE finished_at IS NULL")
    assert len(rows) == 1
    return str(rows[0][0])


def test_killed_run_blocks_the_next_until_acknowledged(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", "create table public.items (id int);\n")
    ready.add("20240102000000_slow.sql", "select pg_sleep(60);\ncreate table public.later (id int);\n")
    dead = _kill_mid_run(ready)
    assert ready.history() == ["20240101000000"]

    blocked = ready.guard("run")
    assert blocked.code == 3, blocked.output
    report = blocked.report
    assert report is not None
    unfinished = report["unfinished_run"]
    assert unfinished["run_id"] == dead
    assert unfinished["committed"] == ["20240101000000"]
    assert unfinished["not_committed"] == ["20240102000000"]
    plan = report["restore_plan"]
    assert plan["needed"] is True and plan["committed_versions"] == ["20240101000000"]
    target = unfinished["restore_target"]["timestamp"]
    assert target in blocked.stdout and f"--acknowledge {dead}" in blocked.output
    assert not ready.table_exists("public.later")

    wrong = ready.guard("run", "--acknowledge", "20990101000000-zzzzz", "--reason", "x")
    assert wrong.code == 2 and "no unfinished run" in wrong.stderr
    no_reason = ready.guard("run", "--acknowledge", dead)
    assert no_reason.code == 2

    # Make the slow file quick and carry on.
    ready.add("20240102000000_slow.sql", "create table public.later (id int);\n")
    carried = ready.guard("run", "--acknowledge", dead, "--reason", "checked: 0101 applied, keep it")
    assert carried.code == 0, carried.output
    assert ready.history() == ["20240101000000", "20240102000000"]
    ack = ready.query("SELECT status, acknowledgement FROM guard.runs WHERE run_id = %s", (dead,))
    assert ack == [("abandoned", "checked: 0101 applied, keep it")]


def test_journal_records_each_committed_file_and_the_outcome(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "select 1/0;\n")
    result = ready.guard("run")
    assert result.code == 4
    assert result.report is not None
    row = ready.query(
        "SELECT status, exit_code, pending, committed, restore_target->>'timestamp', report->>'status' "
        "FROM guard.runs WHERE run_id = %s", (result.report["run_id"],),
    )
    assert row == [(
        "failed_partially_applied", 4, ["20240101000000", "20240102000000"], ["20240101000000"],
        result.report["restore_target"]["timestamp"], "failed_partially_applied",
    )]


def test_restore_plan_command_shows_the_failed_runs_plan(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "select 1/0;\n")
    failed = ready.guard("run")
    assert failed.code == 4 and failed.report is not None
    target = failed.report["restore_target"]

    text = ready.guard("restore-plan")
    assert text.code == 0, text.output
    assert failed.report["run_id"] in text.stdout
    assert target["timestamp"] in text.stdout  # archive_mode is off here: no PITR step, the target is still named

    as_json = ready.guard("restore-plan", failed.report["run_id"], "--format", "json")
    payload = json.loads(as_json.stdout)
    assert payload["restore_plan"]["committed_versions"] == ["20240101000000"]
    assert payload["restore_target"]["unix"] == target["unix"]

    markdown = ready.guard("restore-plan", "--format", "markdown")
    assert "### Restore plan" in markdown.stdout

    missing = ready.guard("restore-plan", "20990101000000-zzzzz")
    assert missing.code != 0 and "no run 20990101000000-zzzzz" in missing.stderr


def test_journal_is_closed_to_supabase_api_roles(ready: Project) -> None:
    ready.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'anon') "
                "THEN CREATE ROLE anon NOLOGIN; END IF; END $$")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0
    with psycopg.connect(ready.db_url, autocommit=True) as conn:
        # Closed even to a role that is given the schema back: the tables are revoked too.
        conn.execute("GRANT USAGE ON SCHEMA guard TO anon")
        conn.execute("SET ROLE anon")
        for table in ("guard.runs", "guard.run_commits"):
            with conn.transaction(), pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {table}")


def test_blocked_run_leaves_no_journal_entry(tmp_path: Path, db_url: str) -> None:
    project = Project(tmp_path, db_url)
    project.init_backup_log()  # no automated backup: blocked at the backup gate
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert project.guard("run").code == 3
    assert not project.table_exists("guard.runs")


# guard's schema version and the journal's tables are read in one query before the journal
# entry (journal.journal_state): each state of that schema still gets its own answer.

def test_a_schema_newer_than_this_guard_refuses_the_run_and_changes_nothing(ready: Project) -> None:
    assert ready.guard("init").code == 0
    ready.query("INSERT INTO guard.schema_version (version, guard_version) VALUES (99, '99.0.0')")
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    result = ready.guard("run")
    assert result.code == 3, result.stderr
    assert "newer than this guard knows" in result.stderr
    assert ready.history() == [] and ready.query("SELECT to_regclass('public.t')") == [(None,)]
    assert ready.query("SELECT count(*) FROM guard.runs") == [(0,)]


def test_an_unversioned_schema_is_upgraded_by_the_run_that_finds_it(ready: Project) -> None:
    assert ready.guard("init").code == 0
    ready.query("DROP TABLE guard.schema_version")  # as guard's schema was before versioning (1)
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    result = ready.guard("run")
    assert result.code == 0, result.stderr
    assert ready.history() == ["20240101000000"]
    assert ready.query("SELECT version FROM guard.schema_version ORDER BY 1") == [(2,)]
    assert not any("created its journal" in w for w in result.report["warnings"])


def test_a_first_run_on_a_database_without_guards_schema_creates_it_at_the_current_version(ready: Project) -> None:
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    assert ready.query("SELECT to_regnamespace('guard')") == [(None,)]
    result = ready.guard("run")
    assert result.code == 0, result.stderr
    assert ready.query("SELECT max(version) FROM guard.schema_version") == [(2,)]
    assert ready.query("SELECT status FROM guard.runs") == [("applied",)]


@pytest.mark.parametrize(("command", "dropped"), [("run", "guard.runs"), ("init", "guard.runs"),
                                                  ("run", "guard.run_commits"), ("init", "guard.run_commits")])
def test_a_journal_table_dropped_under_a_current_version_is_made_again(
    ready: Project, dropped: str, command: str,
) -> None:
    """guard.schema_version says current, one journal table is gone (dropped by hand): the
    run took the version for the whole schema and failed with "internal error: UndefinedTable"
    (exit 3); init said the schema was fine. Both make the table again, closed as the rest."""
    assert ready.guard("init").code == 0
    ready.query(f"DROP TABLE {dropped}")
    if command == "init":
        init = ready.guard("init")
        assert init.code == 0, init.output
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    result = ready.guard("run")
    assert "Traceback" not in result.output and "internal error" not in result.output, result.output
    assert result.code == 0, result.output
    assert ready.history() == ["20240101000000"]
    assert ready.query("SELECT version FROM guard.run_commits") == [("20240101000000",)]
    assert ready.query("SELECT status FROM guard.runs") == [("applied",)]
    assert ready.query(f"SELECT has_table_privilege('public', '{dropped}', 'SELECT')") == [(False,)]
