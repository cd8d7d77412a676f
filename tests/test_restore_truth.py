"""Every word of a restore plan true (issue #17): a run's own commits, wrapped commands, steps
offered only when what they need exists, the run that needs attention, backup status wording.

The last test renders every plan these scenarios produce, in text, Markdown and JSON, and
checks that each command names objects and files that exist, from where guard ran.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.fakes import FakeSupabase
from tests.support import Project
from tests.test_journal import _kill_mid_run, _wait_for
from tests.test_undo import TOKEN as UNDO_TOKEN
from tests.test_undo import _platform_calls, _supabase_project


def _plan(project: Project, run_id: str) -> dict[str, Any]:
    """The run's plan as JSON, after rendering it in every format and checking that each
    command it offers works from the project folder (_commands_work)."""
    for fmt in ("text", "markdown"):
        shown = project.guard("restore-plan", run_id, "--format", fmt)
        assert shown.code == 0 and run_id in shown.stdout, shown.output
    result = project.guard("restore-plan", run_id, "--format", "json")
    assert result.code == 0, result.output
    payload = dict(json.loads(result.stdout))
    if payload["restore_plan"] is not None:
        _commands_work(project, payload["restore_plan"])
    return payload


def _titles(plan: dict[str, Any] | None) -> list[str]:
    return [s["title"] for s in (plan or {}).get("steps") or []]


# ---------------------------------------------------------------------- 1: a run's own commits


def test_killed_runs_plan_lists_only_its_own_commits(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_slow.sql", "select pg_sleep(60);\ncreate table public.b (id int);\n")
    ready.add("20240103000000_c.sql", "create table public.c (id int);\n")
    dead = _kill_mid_run(ready)
    ready.add("20240102000000_slow.sql", "create table public.b (id int);\n")
    later = ready.guard("run", "--acknowledge", dead, "--reason", "checked, carry on")
    assert later.code == 0, later.output
    assert ready.history() == ["20240101000000", "20240102000000", "20240103000000"]
    payload = _plan(ready, dead)
    plan = payload["restore_plan"]
    assert plan["committed_versions"] == ["20240101000000"]
    assert plan["support"]["committed_versions"] == ["20240101000000"]
    assert "20240103000000" not in plan["summary"] and "20240102000000" not in plan["summary"]


# ---------------------------------------------------------------------- 2: wrapped commands


def test_wrapped_command_that_changes_nothing_says_so(ready: Project) -> None:
    result = ready.guard("run", "--", "sh", "-c", "exit 7")
    assert result.code == 1 and result.report is not None
    plan = result.report["restore_plan"]
    assert plan["needed"] is False and plan["committed_versions"] == []
    words = json.dumps(plan)
    assert "rolled back: none" not in words and "failing file" not in words and ".." not in plan["summary"]
    assert "exit 7" not in words or "exited 7" in words
    assert "exited 7" in plan["summary"]
    assert result.report["database_changed"] is False


def test_wrapped_command_plan_lists_every_change_in_dependency_order(ready: Project) -> None:
    columns = ", ".join(f"c{i} int" for i in range(8))
    script = (f'psql "$DATABASE_URL" -v ON_ERROR_STOP=1 -c "create table public.w ({columns}); '
              'create index w_c0 on public.w (c0)" && exit 3')
    result = ready.guard("run", "--", "sh", "-c", script)
    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_partially_applied"
    changes = report["wrapped"]["changes"]
    assert len(changes) == 10  # the table, 8 columns, the index: none left out
    kinds = [c["kind"] for c in changes]
    assert kinds.index("table") < kinds.index("column") < kinds.index("index")
    plan = report["restore_plan"]
    assert plan["needed"] is True
    listed = next(s for s in plan["steps"] if s["title"].startswith("What the command changed"))
    for change in changes:
        assert f"{change['kind']} {change['name']} {change['action']}" in listed["text"]
    assert listed["text"].index("table public.w added") < listed["text"].index("column public.w.c0 added")
    assert " ..." not in report["message"] and "and 5 more" in report["message"]
    assert "failing file" not in json.dumps(plan)
    _plan(ready, report["run_id"])


# ---------------------------------------------------------------------- 3: steps that can work


def test_pruned_copies_are_not_offered(ready: Project) -> None:
    ready.query("CREATE TABLE public.accounts (id int PRIMARY KEY, credits int);"
                "INSERT INTO public.accounts SELECT g, g FROM generate_series(1, 50) g")
    ready.add("20240101000000_delete.sql", "delete from public.accounts where credits > 40;\n")
    ready.add("20240102000000_fail.sql", "select 1/0;\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None
    run_id = result.report["run_id"]
    before = _plan(ready, run_id)["restore_plan"]
    assert any("protective copies" in t for t in _titles(before))
    assert ready.guard("backup", "prune", "--older-than", "0s").code == 0
    after = _plan(ready, run_id)
    titles = _titles(after["restore_plan"])
    assert not any("(protective copies)" in t for t in titles)
    assert "What is gone: pruned protective copies" in titles
    assert after["protective_copies"] == []
    assert "guard_backup" not in "\n".join(c for s in after["restore_plan"]["steps"] for c in s["commands"])


def test_pitr_offered_only_where_wal_reaches_the_target() -> None:
    from guard.report.model import (
        BackupsReport,
        MigrationResult,
        ProviderReport,
        RestoreTarget,
        RunReport,
    )
    from guard.restore import RestoreContext, build_plan

    def plan_titles(archive_mode: str | None, pitr: bool) -> list[str]:
        report = RunReport(command="run", run_id="20261125013000-a1b2c", started_at="2026-11-25T01:30:00Z")
        report.migrations = [MigrationResult("1", "a", "1_a.sql", "applied", 1),
                             MigrationResult("2", "b", "2_b.sql", "failed", 1)]
        report.set_outcome("failed_partially_applied", "2 failed", changed=True)
        report.restore_target = RestoreTarget("2026-11-25T01:30:01Z", 1795570201, None, None,
                                              archive_mode=archive_mode)
        window = {"earliest": "2026-11-20T00:00:00Z", "latest": "2026-11-25T01:30:00Z"} if pitr else None
        report.backups = BackupsReport(True, "any", [ProviderReport("pgbackrest main", "ok", "fresh", None, None,
                                                                    3600, pitr=window)])
        plan = build_plan(report, RestoreContext(pgbackrest_stanza="main"))
        assert plan is not None
        return [s.title for s in plan.steps]

    def offers_pitr(titles: list[str]) -> bool:
        return any("point-in-time recovery (self-hosted" in t for t in titles)

    assert not offers_pitr(plan_titles("off", pitr=False))
    assert "What is not possible: point-in-time recovery" in plan_titles("off", pitr=False)
    assert offers_pitr(plan_titles("off", pitr=True))  # a provider confirms WAL coverage
    assert offers_pitr(plan_titles("on", pitr=False)) and offers_pitr(plan_titles("always", pitr=False))


def test_supabase_pitr_offered_only_with_the_add_on() -> None:
    from guard.report.model import (
        BackupsReport,
        MigrationResult,
        ProviderReport,
        RestoreTarget,
        RunReport,
        SinkReport,
    )
    from guard.restore import RestoreContext, build_plan

    def commands(pitr: bool) -> str:
        report = RunReport(command="run", run_id="20261125013000-a1b2c", started_at="2026-11-25T01:30:00Z")
        report.migrations = [MigrationResult("1", "a", "1_a.sql", "applied", 1),
                             MigrationResult("2", "b", "2_b.sql", "failed", 1)]
        report.set_outcome("failed_partially_applied", "2 failed", changed=True)
        report.restore_target = RestoreTarget("2026-11-25T01:30:01Z", 1795570201, None, None, archive_mode="on")
        window = {"earliest": "2026-11-20T00:00:00Z", "latest": "2026-11-25T01:30:00Z"} if pitr else None
        report.backups = BackupsReport(True, "any", [ProviderReport("supabase abcdefghijklmnopqrst", "ok", "fresh",
                                                                    None, None, 3600, pitr=window)])
        report.backup_log = [SinkReport("supabase-restore-point", "recorded", True, id="20261125013000-a1b2c")]
        plan = build_plan(report, RestoreContext(project_ref="abcdefghijklmnopqrst"))
        assert plan is not None
        return "\n".join(c for s in plan.steps for c in s.commands)

    assert "restore-pitr" in commands(pitr=True) and "restore-pitr" not in commands(pitr=False)
    assert "/backups/undo" in commands(pitr=False)  # the confirmed restore point still serves


def test_snapshot_restore_command_works_from_where_guard_ran(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("snapshot:\n  dir: snaps\n  encrypt: false\n")
    printed = ready.guard("snapshot")
    assert printed.code == 0, printed.output
    command = next(line for line in printed.stdout.splitlines() if line.strip().startswith("restore"))
    names = [w for w in shlex.split(command.split("restore", 1)[1]) if w.endswith((".dump", ".enc", ".sql"))]
    assert names and all((ready.root / n).exists() for n in names), command


# ---------------------------------------------------------------------- 4: the right run, in the format asked


def test_restore_plan_default_skips_a_failure_a_later_run_fixed(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "select 1/0;\n")
    failed = ready.guard("run")
    assert failed.code == 1 and failed.report is not None
    shown = ready.guard("restore-plan", "--format", "json")
    assert shown.code == 0 and json.loads(shown.stdout)["run_id"] == failed.report["run_id"]
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0
    latest = ready.guard("restore-plan")
    assert latest.code == 0 and failed.report["run_id"] not in latest.output
    assert "needs attention" in latest.stdout
    assert ready.guard("restore-plan", failed.report["run_id"]).code == 0  # by id, still there


def test_plan_of_a_run_needing_none_is_json_when_asked(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    applied = ready.guard("run")
    assert applied.code == 0 and applied.report is not None
    payload = json.loads(ready.guard("restore-plan", applied.report["run_id"], "--format", "json").stdout)
    assert payload["restore_plan"] is None and payload["exit_code"] == 0 and payload["status"] == "applied"
    markdown = ready.guard("restore-plan", applied.report["run_id"], "--format", "markdown").stdout
    assert markdown.startswith("## migration-guard run")


def test_interrupted_run_does_not_blame_the_file(ready: Project) -> None:
    ready.add("20240101000000_slow.sql", "select pg_sleep(60);\n")
    proc = subprocess.Popen([sys.executable, "-m", "guard", "run"], cwd=ready.root, env=ready.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: ready.query(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
        )[0][0] > 0)
        os.kill(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    report = json.loads((ready.root / "guard-report.json").read_text())
    assert report["status"] == "failed_rolled_back" and report["interrupted"] == "SIGINT"
    plan = report["restore_plan"]
    assert plan["needed"] is False
    assert not any("Fix the failing" in t for t in _titles(plan))
    assert "Correct it" not in json.dumps(plan)
    _plan(ready, report["run_id"])


def test_refused_run_that_created_the_journal_says_so(project: Project) -> None:
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = project.guard("run", "--allow-stale-backup", "--reason", "first run, no backups yet")
    assert result.code == 3 and result.report is not None
    assert project.table_exists("guard.runs")  # guard's own tables were created
    assert any("guard.runs" in w for w in result.report["warnings"])
    assert "nothing changed" not in result.output and "nothing was changed" not in result.output
    assert project.history() == [] and not project.table_exists("public.a")


# ---------------------------------------------------------------------- 5: backup status


def test_backup_status_last_backup_is_a_completed_one_and_counts_read_right(project: Project) -> None:
    import datetime as dt

    project.init_backup_log()
    project.query("INSERT INTO public.backup_logs (kind, reason, created_by, created_at, metadata) VALUES "
                  "('automated', 'nightly', 'test', '2026-01-02T03:04:05.1Z', '{\"status\": \"failed\"}')")
    status = project.guard("backup", "status")
    assert "1 entry " in status.stdout and "1 entries" not in status.stdout
    assert "last completed backup never" in status.stdout
    assert "2026-01-02T03:04:05.100000Z" in status.stdout  # all six fraction digits: aligned
    assert not re.search(r"^\s*missing\s+table", status.stdout, re.M)
    as_json = json.loads(project.guard("backup", "status", "--json").stdout)
    assert as_json["stats"]["last_backup_at"] is None and as_json["stats"]["last_attempt_at"] is not None
    project.log_automated_backup(age=dt.timedelta(days=400))
    again = project.guard("backup", "status").stdout
    assert "2 entries" in again and "last completed backup never" not in again
    times = re.findall(r"^  (\S+)  automated", again, re.M)
    assert len(times) == 2 and len({len(t) for t in times}) == 1


# ---------------------------------------------------------------------- acceptance: every plan workable


def _commands_work(project: Project, plan: dict[str, Any]) -> None:
    """Every command names what exists: copies and tables (to_regclass), runs (guard.runs),
    files (from the project folder, where guard ran)."""
    for step in plan["steps"]:
        for command in step["commands"]:
            for name in re.findall(r'\bguard_backup\."[^"]+"', command):
                assert project.query("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0], (name, command)
            for run_id in re.findall(r"--acknowledge (\S+)", command):
                assert project.query("SELECT count(*) FROM guard.runs WHERE run_id = %s", (run_id,))[0][0] == 1
            for table in re.findall(r"FROM ([a-z_]+\.[a-z_]+) WHERE version", command):
                assert project.table_exists(table), command
            if command.startswith("guard undo ") and "--yes" not in command:  # a dry run: undo accepts it
                dry = project.guard(*shlex.split(command)[1:])
                assert dry.code == 0, (command, dry.output)
            if command.startswith(("guard decrypt", "pg_restore")) and "<" not in command:
                for word in shlex.split(command.split("&&")[0]):
                    if "/" in word or word.endswith((".dump", ".enc")):
                        assert (project.root / word).exists() or Path(word).is_absolute() and Path(word).exists(), word


def test_every_plan_rendered_offers_only_what_exists(ready: Project) -> None:
    """The kinds of plan in one database, each checked by _plan: partial failure with a
    protective copy and a snapshot, a wrapped command, a rolled-back failure, a killed run."""
    (ready.root / "guard.yml").write_text("snapshot:\n  mode: schema\n  when: always\n  dir: snaps\n  encrypt: false\n")
    ready.query("CREATE TABLE public.accounts (id int PRIMARY KEY, credits int);"
                "INSERT INTO public.accounts SELECT g, g FROM generate_series(1, 20) g")
    ready.add("20240101000000_delete.sql", "delete from public.accounts where credits > 10;\n")
    ready.add("20240102000000_fail.sql", "select 1/0;\n")
    failed = ready.guard("run")
    assert failed.code == 4 and failed.report is not None and failed.report["snapshot"] is not None
    plan = _plan(ready, failed.report["run_id"])["restore_plan"]
    assert any("snapshot" in t for t in _titles(plan)) and any("protective" in t for t in _titles(plan))
    (ready.root / "snaps").rename(ready.root / "elsewhere")  # as on another machine
    moved = _plan(ready, failed.report["run_id"])["restore_plan"]
    assert "What is not here: the snapshot" in _titles(moved)
    assert not any("The snapshot guard took" in t for t in _titles(moved))
    (ready.root / "elsewhere").rename(ready.root / "snaps")
    wrapped = ready.guard("run", "--", "sh", "-c", "exit 7")
    assert wrapped.report is not None
    _plan(ready, wrapped.report["run_id"])
    rolled_back = ready.guard("run")  # the same file fails again, nothing committed
    assert rolled_back.code == 1 and rolled_back.report is not None
    _plan(ready, rolled_back.report["run_id"])
    ready.add("20240102000000_fail.sql", "select pg_sleep(60);\n")
    ready.add("20240103000000_c.sql", "create table public.c (id int);\n")
    dead = _kill_mid_run(ready)
    _plan(ready, dead)


# ---------------------------------------------------------------------- 6: no dry run, no "DRY RUN"


@pytest.mark.parametrize("content", [
    b"create table public.items (id int);\n\nselec 1;\n",  # syntax
    b"create table public.items (name text default '\xff');\n",  # not UTF-8
])
def test_check_without_a_shadow_names_no_dry_run(ready: Project, content: bytes) -> None:
    (ready.migrations / "20240101000000_items.sql").write_bytes(content)
    result = ready.guard("check")
    assert result.code == 1 and result.report is not None, result.output
    assert result.report["shadow"] is None
    assert "DRY RUN FAILED" not in result.output.upper() and "dry run failed" not in result.output
    assert "supabase/migrations/20240101000000_items.sql" in result.output


# ---------------------------------------------------------------------- 8: a runner killed mid-statement


def test_lock_holders_running_run_is_named_and_its_client_connected(ready: Project) -> None:
    from guard.db import LOCK_KEY

    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0  # the journal exists
    ready.query("INSERT INTO guard.runs (run_id, command, status, actor) "
                "VALUES ('20240101000000-abcde', 'run', 'running', 'ci-bot')")
    ready.add("20240102000000_b.sql", "create table public.b (id int);\n")
    with psycopg.connect(ready.db_url, autocommit=True, application_name="guard run 20240101000000-abcde") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        result = ready.guard("run")
    assert result.code == 3, result.output
    assert "20240101000000-abcde" in result.stderr and "still running in guard.runs" in result.stderr
    assert "client is connected" in result.stderr
    assert not ready.table_exists("public.b")


def test_killed_runner_releases_the_lock_within_seconds(ready: Project) -> None:
    ready.add("20240101000000_slow.sql", "select pg_sleep(300);\n")
    proc = subprocess.Popen([sys.executable, "-m", "guard", "run"], cwd=ready.root, env=ready.env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        _wait_for(lambda: ready.query(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' AND pid <> pg_backend_pid()"
        )[0][0] > 0)
        setting = ready.query("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%'")
        assert setting[0][0] == 1
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    # No pg_terminate_backend here: the server notices the dead client by itself.
    result = ready.guard("run")
    assert result.code == 3, result.output
    assert "another guard is working" not in result.output
    assert result.report is not None and result.report["unfinished_run"] is not None


def test_wrapped_run_that_created_the_journal_says_so(ready: Project) -> None:
    assert not ready.table_exists("guard.runs")
    result = ready.guard("run", "--", "sh", "-c", "exit 0")
    assert result.code == 0 and result.report is not None, result.output
    assert ready.table_exists("guard.runs")
    assert any("guard.runs" in w for w in result.report["warnings"])
    assert "changed nothing" not in result.output
    again = ready.guard("run", "--", "sh", "-c", "exit 0")
    assert again.report is not None and not any("guard.runs" in w for w in again.report["warnings"])


def test_change_outside_a_transaction_with_nothing_committed_reads_true() -> None:
    from guard.report.model import MigrationError, MigrationResult, RestoreTarget, RunReport
    from guard.restore import RestoreContext, build_plan

    report = RunReport(command="run", run_id="20261125013000-a1b2c", started_at="2026-11-25T01:30:00Z")
    report.migrations = [MigrationResult("1", "a", "1_a.sql", "failed", 2,
                                         error=MigrationError("boom", "XX000", "1_a.sql", 2))]
    report.set_outcome("failed_partially_applied",
                       "1 failed outside a transaction after some of its statements took effect.", changed=True)
    report.restore_target = RestoreTarget("2026-11-25T01:30:01Z", 1795570201, None, None, archive_mode="on")
    plan = build_plan(report, RestoreContext())
    assert plan is not None and plan.needed is True and plan.committed_versions == []
    words = plan.summary + " ".join(s.text for s in plan.steps)
    assert ":  committed" not in words and "(none)" not in words and "with  committed" not in words
    assert "outside a transaction" in plan.summary


# ---------------------------------------------------------------------- 5: verify failed, undo offered, undone (#19)

ITEMS = ("CREATE TABLE public.items (id int PRIMARY KEY, price int NOT NULL);"
         "INSERT INTO public.items SELECT g, g FROM generate_series(1, 50) g")
FAILING_CHECK = "verify:\n  - name: prices_positive\n    sql: select bool_and(price > 0) from public.items\n"


def _offers_undo(plan: dict[str, Any] | None) -> bool:
    return any("Undo this run with guard" in s["title"] and s["commands"] for s in (plan or {}).get("steps") or [])


def _release(ready: Project, shape: str) -> str:
    """A run ending 4 of the given shape; its run id."""
    ready.query(ITEMS)
    if shape == "verify_failed":
        (ready.root / "guard.yml").write_text(FAILING_CHECK)
        ready.add("20240101000001_discount.sql", "update public.items set price = price - 10;\n")
    elif shape == "verify_failed_after_delete":
        (ready.root / "guard.yml").write_text(FAILING_CHECK.replace("price > 0", "price > 100"))
        ready.add("20240101000001_prune.sql", "delete from public.items where id > 40;\n")
    elif shape == "own_transactions_check_failed":
        ready.add("20240101000001_index.sql", "create index concurrently items_price on public.items (price);\n"
                  "-- guard:verify select count(*) = 0 from public.items\n")
    elif shape == "second_file_failed":
        ready.add("20240101000001_col.sql", "alter table public.items add column note text;\n")
        ready.add("20240101000002_bad.sql", "select 1/0;\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None, result.output
    return str(result.report["run_id"])


@pytest.mark.parametrize(("shape", "undo_code"), [
    ("verify_failed", 0), ("verify_failed_after_delete", 0), ("own_transactions_check_failed", 3),
    ("second_file_failed", 0)])
def test_the_plan_offers_undo_exactly_when_undo_would_accept_it(ready: Project, shape: str, undo_code: int) -> None:
    run_id = _release(ready, shape)
    dry = ready.guard("undo", run_id)
    assert dry.code == undo_code, dry.output
    saved = ready.query("SELECT report FROM guard.runs WHERE run_id = %s", (run_id,))[0][0]["restore_plan"]
    shown = _plan(ready, run_id)["restore_plan"]
    for plan in (saved, shown):
        assert _offers_undo(plan) == (dry.code == 0), (shape, _titles(plan), dry.output)
        assert plan["steps"][0]["title"].endswith(("Undo this run with guard", "What guard undo cannot do here"))
        if dry.code == 3:
            refused = plan["steps"][0]
            assert not refused["commands"] and "refuses" in refused["text"]
            assert not any("guard undo" in c for s in plan["steps"] for c in s["commands"])


def test_a_later_run_makes_the_earlier_plan_stop_offering_undo(ready: Project) -> None:
    run_id = _release(ready, "verify_failed")
    assert _offers_undo(_plan(ready, run_id)["restore_plan"])
    (ready.root / "guard.yml").unlink()
    ready.add("20240101000002_more.sql", "create table public.more (id int);\n")
    assert ready.guard("run").code == 0
    assert ready.guard("undo", run_id).code == 3
    plan = _plan(ready, run_id)["restore_plan"]
    assert not _offers_undo(plan) and "undo it first" in plan["steps"][0]["text"]


def test_verify_failed_plan_says_what_committed_and_which_checks_failed(ready: Project) -> None:
    (ready.root / "guard.yml").write_text(FAILING_CHECK + "  - name: fine\n    sql: select true\n"
                                          "  - name: none_negative\n    sql: select id from public.items where price < 0"
                                          "\n    expect: empty\n")
    ready.query(ITEMS)
    ready.add("20240101000001_a.sql", "update public.items set price = price - 10;\n")
    ready.add("20240101000002_b.sql", "create table public.b (id int);\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None and result.report["status"] == "verify_failed"
    plan = result.report["restore_plan"]
    assert "every pending file committed (20240101000001, 20240101000002)" in plan["summary"]
    assert "verify.prices_positive, verify.none_negative" in plan["summary"] and "verify.fine" not in plan["summary"]
    words = plan["summary"] + " ".join(s["text"] for s in plan["steps"])
    for false in ("before the failure failed", "rolled back", "consistent at version", "No restore needed"):
        assert false not in words
    assert plan["committed_versions"] == ["20240101000001", "20240101000002"] and plan["needed"] is True
    assert "VERIFY FAILED" in result.stdout and "verify_failed" not in result.stdout.split("Outcome:")[1][:40]


def test_an_undone_run_offers_neither_undo_nor_its_copies_again(ready: Project) -> None:
    run_id = _release(ready, "verify_failed_after_delete")
    before = _plan(ready, run_id)
    assert _offers_undo(before["restore_plan"]) and before["protective_copies"]
    undone = ready.guard("undo", run_id, "--yes")
    assert undone.code == 0, undone.output
    after = _plan(ready, run_id)
    plan = after["restore_plan"]
    assert plan["needed"] is False and "was undone by guard undo" in plan["summary"]
    assert after["protective_copies"] == [] and not _offers_undo(plan)
    commands = [c for s in plan["steps"] for c in s["commands"]]
    assert not any("guard undo" in c or "INSERT INTO" in c or "guard_backup" in c for c in commands)
    for fmt in ("text", "markdown"):
        text = ready.guard("restore-plan", run_id, "--format", fmt).stdout
        assert "guard undo " + run_id not in text and "protective copies" not in text
    assert ready.guard("undo", run_id).code == 3  # undo agrees: nothing to undo again
    latest = ready.guard("restore-plan", "--format", "json")  # the undo ended 0: nothing needs attention
    assert latest.code == 0 and json.loads(latest.stdout)["needs_attention"] is False


@pytest.mark.parametrize("fmt", ["json", "text", "markdown"])
def test_restore_plan_with_nothing_to_restore_says_so_in_the_format_asked(project: Project, fmt: str) -> None:
    shown = project.guard("restore-plan", "--format", fmt)
    assert shown.code == 0, shown.output
    if fmt == "json":
        payload = json.loads(shown.stdout)
        assert payload["needs_attention"] is False and payload["restore_plan"] is None and payload["run_id"] is None
    else:
        assert "needs attention" in shown.stdout
    missing = project.guard("restore-plan", "20990101000000-zzzzz", "--format", fmt)
    assert missing.code == 2 and "no run 20990101000000-zzzzz" in missing.stderr
    if fmt == "json":
        payload = json.loads(missing.stdout)
        assert payload["found"] is False and payload["exit_code"] == 2


def test_an_applied_run_undone_no_longer_offers_its_copies(ready: Project) -> None:
    ready.query(ITEMS)
    ready.add("20240101000001_prune.sql", "delete from public.items where id > 40;\n")
    applied = ready.guard("run")
    assert applied.code == 0 and applied.report is not None and applied.report["protective_copies"]
    run_id = applied.report["run_id"]
    assert "protective copies can be put back" in ready.guard("restore-plan", run_id).stdout
    assert ready.guard("undo", run_id, "--yes").code == 0
    for fmt in ("text", "markdown"):
        shown = ready.guard("restore-plan", run_id, "--format", fmt)
        assert shown.code == 0 and "was undone by guard undo" in shown.stdout
        assert "protective copies" not in shown.stdout and "INSERT INTO" not in shown.stdout
    payload = _plan(ready, run_id)
    assert payload["protective_copies"] == [] and payload["restore_plan"]["needed"] is False


def test_a_partly_undone_run_says_what_was_left_and_offers_no_undo(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("verify:\n  - name: never\n    sql: select false\n")
    ready.add("20240101000001_notes.sql", "create table public.notes (id int primary key, body text);\n"
              "create table public.tags (id int);\n")
    run_id = str(ready.guard("run").report["run_id"])  # type: ignore[index]
    ready.query("insert into public.notes values (1, 'written by the application since')")
    partial = ready.guard("undo", run_id, "--yes")
    assert partial.code == 4, partial.output
    assert "partly undone" in partial.output and not ready.table_exists("public.tags")
    latest = json.loads(ready.guard("restore-plan", "--format", "json").stdout)  # the undo ended 4
    assert latest["run_id"] != run_id and "public.notes" in json.dumps(latest["restore_plan"])
    assert [c for s in latest["restore_plan"]["steps"] for c in s["commands"]] == [f"guard restore-plan {run_id}"]
    plan = _plan(ready, run_id)["restore_plan"]
    assert "partly undone by guard undo" in plan["summary"] and not _offers_undo(plan)
    assert "public.notes" in plan["steps"][0]["text"]
    assert ready.guard("undo", run_id).code == 3


def test_an_undo_that_kept_everything_leaves_the_run_to_undo_with_force(ready: Project) -> None:
    """Every action kept (the application wrote to the one table the run added): the undo
    changed nothing, so there is no undo to undo first; the run is offered for undo again and
    `--force` finishes it at once (it once said "undo that undo first", which then failed)."""
    (ready.root / "guard.yml").write_text("verify:\n  - name: never\n    sql: select false\n")
    ready.add("20240101000001_notes.sql", "create table public.notes (id int primary key, body text);\n")
    run_id = str(ready.guard("run").report["run_id"])  # type: ignore[index]
    ready.query("insert into public.notes values (1, 'written by the application since')")
    kept = ready.guard("undo", run_id, "--yes")
    assert kept.code == 4, kept.output
    assert "nothing undone" in kept.output and ready.table_exists("public.notes")
    plan = _plan(ready, run_id)["restore_plan"]
    assert "partly undone" not in plan["summary"] and _offers_undo(plan)
    forced = ready.guard("undo", run_id, "--yes", "--force")
    assert forced.code == 0, forced.output
    assert not ready.table_exists("public.notes") and ready.history() == []


def test_restore_plan_json_when_the_database_cannot_be_reached(project: Project) -> None:
    shown = project.guard("restore-plan", "--format", "json", "--database-url",
                          "postgresql://guard:sekrit-pw-4242@127.0.0.1:1/nowhere")
    assert shown.code == 3, shown.output
    payload = json.loads(shown.stdout)
    assert payload["found"] is False and payload["exit_code"] == 3 and payload["error"]
    assert "sekrit-pw-4242" not in shown.output


@pytest.fixture
def supabase_api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=UNDO_TOKEN).start()
    yield fake
    fake.stop()


def test_a_whole_database_undo_is_offered_with_its_confirmation_and_sends_nothing(
        project: Project, supabase_api: FakeSupabase) -> None:
    """A release guard cannot invert locally (an enum value: no DROP VALUE) on a project with
    a restore point: the plan offers Supabase's undo, with --confirm <project-ref>, and asking
    sends nothing to the API."""
    api = supabase_api
    _supabase_project(project, api, restore_point=True)
    project.query("create type public.mood as enum ('ok')")
    with open(project.root / "guard.yml", "a") as conf:
        conf.write("verify:\n  - name: never\n    sql: select false\n")
    project.add("20240101000001_mood.sql", "alter type public.mood add value 'meh';\n")
    run = project.guard("run", SUPABASE_ACCESS_TOKEN=UNDO_TOKEN)
    assert run.code == 4 and run.report is not None and run.report["status"] == "verify_failed", run.output
    run_id = run.report["run_id"]
    first = run.report["restore_plan"]["steps"][0]
    assert first["commands"] == [f"guard undo {run_id} --confirm {api.ref}",
                                 f"guard undo {run_id} --yes --confirm {api.ref}"]
    assert "whole project" in first["text"] and "is lost" in first["text"]
    dry = project.guard(*shlex.split(first["commands"][0])[1:], SUPABASE_ACCESS_TOKEN=UNDO_TOKEN)
    assert dry.code == 0, dry.output
    assert _platform_calls(api) == []
    assert UNDO_TOKEN not in run.output + json.dumps(run.report)
