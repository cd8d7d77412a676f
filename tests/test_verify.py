"""Step 12, verify: configured checks and `-- guard:verify` lines, inside the transaction
(a failure rolls back) or after the last COMMIT (verify_failed, exit 4, `guard undo` first)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support import Project
from tests.test_undo import state

ITEMS = "create table public.items (id int primary key, price int not null);\n"


def _yml(project: Project, text: str) -> None:
    (project.root / "guard.yml").write_text(text)


def test_file_check_fails_inside_its_transaction_after_an_earlier_file_committed(ready: Project) -> None:
    ready.add("20240101000001_items.sql", ITEMS)
    ready.add("20240101000002_fill.sql", "insert into public.items values (1, -5);\n\n"
              "-- guard:verify select count(*) = 0 from public.items where price < 0\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    report = result.report
    assert report is not None
    assert [m["status"] for m in report["migrations"]] == ["applied", "failed"]
    assert "guard:verify check at line 3 failed" in report["migrations"][1]["error"]["message"]
    assert ready.query("SELECT count(*) FROM public.items") == [(0,)]  # the file rolled back
    assert ready.history() == ["20240101000001"]
    check = report["verify"][0]
    assert check["name"].endswith("20240101000002_fill.sql:3") and check["result"] == "failed"
    assert check["where"] == "before COMMIT"
    assert check["rows"] == [["f"]] and check["columns"] == ["?column?"] and check["duration_ms"] >= 0


def test_passing_file_check_commits(ready: Project) -> None:
    ready.add("20240101000001_items.sql", ITEMS + "insert into public.items values (1, 5);\n"
              "-- guard:verify select count(*) = 1 from public.items\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["verify"][0]["result"] == "passed"


def test_sql_check_in_one_transaction_rolls_the_whole_release_back(ready: Project) -> None:
    _yml(ready, "migrations:\n  transaction: all\nverify:\n  - name: no_negative\n"
                "    sql: select id from public.items where price < 0\n    expect: empty\n")
    ready.add("20240101000001_items.sql", ITEMS)
    ready.add("20240101000002_fill.sql", "insert into public.items values (1, -5), (2, 3);\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None and "nothing" in result.report["message"]
    assert not ready.table_exists("public.items") and ready.history() == []
    assert result.report["verify"][0] == {**result.report["verify"][0], "name": "verify.no_negative",
                                          "result": "failed", "rows": [["1"]]}


def test_check_after_commit_fails_verify_failed_then_undo_restores(ready: Project) -> None:
    ready.query("create table public.items (id int primary key, price int not null);"
                "insert into public.items select g, g from generate_series(1, 50) g")
    before = state(ready)
    _yml(ready, "verify:\n  - name: prices_positive\n    sql: select bool_and(price > 0) from public.items\n")
    ready.add("20240101000001_discount.sql", "update public.items set price = price - 10;\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "verify_failed"
    first = report["restore_plan"]["steps"][0]
    assert first["commands"] == [f"guard undo {report['run_id']}", f"guard undo {report['run_id']} --yes"]
    assert ready.guard("undo", "--yes").code == 0
    assert state(ready) == before and ready.history() == []


def test_run_check_gets_database_url_runs_from_the_config_folder_without_shell(ready: Project, tmp_path: Path) -> None:
    script = ready.root / "ci" / "check.py"
    script.parent.mkdir()
    script.write_text("import os, sys\nprint(os.getcwd())\nsys.exit(0 if os.environ.get('DATABASE_URL') else 3)\n")
    conf = ready.root / "ci" / "guard.yml"
    conf.write_text(f"migrations:\n  dir: ../supabase/migrations\nverify:\n  - name: app\n"
                    f"    run: [{sys.executable}, check.py, '$(touch pwned)']\n  - name: slow\n"
                    f"    run: [{sys.executable}, -c, 'import time; time.sleep(5)']\n    timeout: 300ms\n")
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard("run", "--config", str(conf))
    assert result.code == 4, result.output
    checks = {c["name"]: c for c in result.report["verify"]} if result.report else {}
    assert checks["verify.app"]["result"] == "passed"
    assert checks["verify.slow"]["result"] == "failed" and "timed out" in checks["verify.slow"]["error"]
    assert not (ready.root / "ci" / "pwned").exists()


def test_bad_verify_config_names_the_key(ready: Project) -> None:
    _yml(ready, "verify:\n  - name: both\n    sql: select true\n    run: [true]\n")
    bad = ready.guard("run")
    assert bad.code == 2 and "verify" in bad.stderr and "exactly one of sql or run" in bad.stderr
    env = ready.guard("run", GUARD_VERIFY="[{name: x, sql: 'select true', expect: full}]")
    assert env.code == 2 and "GUARD_VERIFY" in env.stderr and "expect" in env.stderr


def test_shadow_true_checks_run_in_check_shadow_and_others_do_not(ready: Project, db_url: str) -> None:
    import psycopg

    base, name = db_url.rsplit("/", 1)
    scratch = f"{name}_vshadow"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{scratch}"')
    try:
        _yml(ready, "verify:\n  - name: schema_ok\n    shadow: true\n"
                    "    sql: select count(*) = 1 from pg_tables where tablename = 'items'\n"
                    "  - name: has_data\n    sql: select count(*) > 0 from public.items\n")
        ready.add("20240101000001_items.sql", ITEMS)
        ok = ready.guard("check", "--shadow", f"{base}/{scratch}")
        assert ok.code == 0, ok.output
        assert ok.report is not None and [c["name"] for c in ok.report["verify"]] == ["verify.schema_ok"]
        _yml(ready, "verify:\n  - name: wants_column\n    shadow: true\n"
                    "    sql: select count(*) = 1 from information_schema.columns where column_name = 'missing'\n")
        # No reset of the scratch server needed: every check gets a fresh database on it.
        bad = ready.guard("check", "--shadow", f"{base}/{scratch}")
        assert bad.code == 1, bad.output
        assert bad.report is not None and "verify.wants_column" in bad.report["message"]
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')


def test_file_check_of_a_file_outside_a_transaction_fails_with_exit_4(ready: Project) -> None:
    ready.query("create table public.items (id int primary key, price int not null)")
    ready.add("20240101000001_index.sql", "create index concurrently items_price on public.items (price);\n"
              "-- guard:verify select count(*) = 2 from pg_indexes where tablename = 'items'\n"
              "-- guard:verify select false\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None and result.report["status"] == "failed_partially_applied"
    assert [c["result"] for c in result.report["verify"]] == ["passed", "failed"]
    assert {c["where"] for c in result.report["verify"]} == {"after its last statement"}
    assert ready.history() == []  # its effect remains, it is not recorded as applied


EVENTS = ("create table public.events (id int primary key);"
          "insert into public.events select g from generate_series(1, 40) g;"
          "create function public.purge() returns boolean language sql as "
          "'delete from public.events returning true';")


@pytest.mark.parametrize(("line", "code"), [
    ("select true; drop table public.events", 3),                      # a second statement, unseen
    ("select true; commit; delete from public.events; select true", 3),  # commits early
    ("with d as (delete from public.events returning 1) select true", 3),  # a data-modifying WITH
    ("select true into public.stolen", 3),                               # SELECT INTO writes
    ("select public.purge()", 1),                                        # a function that writes
])
def test_a_file_check_that_would_write_fails_the_file_and_changes_nothing(ready: Project, line: str,
                                                                         code: int) -> None:
    """What the parser sees is refused before any change (exit 3, file:line); a function that
    writes fails in its read-only savepoint (exit 1, the file rolled back)."""
    ready.query(EVENTS)
    ready.add("20240101000001_items.sql", ITEMS + f"-- guard:verify {line}\n")
    result = ready.guard("run")
    assert result.code == code, result.output
    if code == 3:
        assert "20240101000001_items.sql:2: -- guard:verify" in result.stderr
    assert ready.query("SELECT count(*) FROM public.events") == [(40,)]
    assert not ready.table_exists("public.items") and not ready.table_exists("public.stolen")
    assert ready.history() == []


@pytest.mark.parametrize(("sql", "code"), [
    ("with d as (delete from public.events returning 1) select true", 2),
    ("select public.purge()", 1),
])
def test_a_configured_check_that_would_write_rolls_the_release_back(ready: Project, sql: str, code: int) -> None:
    ready.query(EVENTS)
    _yml(ready, f"migrations:\n  transaction: all\nverify:\n  - name: sneaky\n    sql: \"{sql}\"\n")
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard("run")
    assert result.code == code, result.output
    if code == 2:
        assert "verify.sneaky.sql" in result.stderr
    assert ready.query("SELECT count(*) FROM public.events") == [(40,)]
    assert ready.history() == []


# -- Only a real line comment between statements is a check (what PostgreSQL's lexer sees) --

NOT_CHECKS = (
    "insert into public.items values (1, length('\n-- guard:verify select false\n'));\n"
    "insert into public.items values (2, length(E'it''s\\n-- guard:verify select false'));\n"
    "create function public.f() returns int language plpgsql as $body$\nbegin\n"
    "-- guard:verify select false\nreturn 1;\nend\n$body$;\n"
    "do $$\nbegin\n  -- guard:verify select false\n  perform 1;\nend\n$$;\n"
    "/* a block comment\n-- guard:verify select false\n/* nested\n-- guard:verify select false\n*/\n*/\n"
    "-- guard:verifying is another word\n"
    "insert into public.items values (3, 1); -- guard:verify select count(*) = 3 from public.items\n"
    "\n-- guard:verify select count(*) = 3 from public.items where price > 0\n"
)


def test_guard_verify_in_strings_bodies_and_block_comments_is_not_a_check(ready: Project) -> None:
    ready.add("20240101000001_items.sql", ITEMS + NOT_CHECKS)
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    lines = [c["name"].rsplit(":", 1)[1] for c in result.report["verify"]]
    real = [str(n) for n, line in enumerate((ITEMS + NOT_CHECKS).splitlines(), 1) if "count(*) = 3" in line]
    assert len(real) == 2 and lines == real and {c["result"] for c in result.report["verify"]} == {"passed"}
    assert ready.query("SELECT count(*) FROM public.items") == [(3,)]


@pytest.mark.parametrize(("body", "line"), [
    ("create table public.t (\n  id int -- guard:verify select true\n);\n", 3),  # inside a statement
    ("insert into public.items values (1, 1)\n-- guard:verify select true\n;\n", 3),  # before its ';'
    ("select 1;\n--guard:verify\n", 3),                                               # no query
])
@pytest.mark.parametrize(("command", "code"), [("run", 3), ("check", 1)])  # check: "does not apply"
def test_a_check_that_is_not_between_statements_is_refused_before_any_change(ready: Project, body: str,
                                                                             line: int, command: str,
                                                                             code: int) -> None:
    ready.add("20240101000001_items.sql", ITEMS + body)
    result = ready.guard(command)
    assert result.code == code, result.output
    # run: the one-line error; check: the report says the file does not apply, and why
    said = result.stderr if command == "run" else result.stdout
    assert f"20240101000001_items.sql:{line}:" in said and "guard:verify" in said
    assert "Traceback" not in result.output
    assert not ready.table_exists("public.items") and ready.history() == []


# -- run: checks: found before any change; their whole process group killed on timeout --

@pytest.mark.parametrize("guard_command", ["run", "check"])
@pytest.mark.parametrize("command", ["./missing-check", "not-a-command-anywhere-42", "./check.txt", "./ci"])
def test_a_run_check_whose_command_cannot_run_stops_before_any_change(ready: Project, command: str,
                                                                      guard_command: str) -> None:
    (ready.root / "check.txt").write_text("#!/bin/sh\nexit 0\n")  # not executable
    (ready.root / "ci").mkdir()
    _yml(ready, f"verify:\n  - name: smoke\n    run: [{command}]\n")
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard(guard_command)
    assert result.code == 2, result.output
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(error) == 1 and "verify.smoke.run" in error[0] and command in error[0]
    assert not ready.table_exists("public.items") and ready.history() == []
    assert ready.query("SELECT to_regclass('guard.runs') IS NULL") == [(True,)]  # not even journalled


GRANDCHILD = ("import subprocess, sys, time\n"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)']{redirect})\n"
              "open('grandchild.pid', 'w').write(str(p.pid))\n"
              "{after}\n")


def _gone(pid: int) -> bool:
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()  # a zombie: dead, not yet reaped


@pytest.mark.parametrize(("redirect", "after", "error"), [
    ("", "time.sleep(120)", "timed out after 1s"),                     # child and grandchild sleep
    ("", "sys.exit(0)", "held its output"),                            # grandchild keeps the pipe
    (", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL", "time.sleep(120)", "timed out after 1s"),
])
def test_a_run_check_that_times_out_takes_its_grandchildren_with_it(ready: Project, redirect: str, after: str,
                                                                   error: str) -> None:
    import time

    (ready.root / "spawn.py").write_text(GRANDCHILD.format(redirect=redirect, after=after))
    _yml(ready, f"verify:\n  - name: spawner\n    run: [{sys.executable}, spawn.py]\n    timeout: 1s\n")
    ready.add("20240101000001_items.sql", ITEMS)
    started = time.monotonic()
    result = ready.guard("run")
    assert time.monotonic() - started < 60, "guard waited for the grandchild"
    assert result.code == 4, result.output
    assert result.report is not None and error in result.report["verify"][0]["error"]
    pid = int((ready.root / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "the grandchild outlived its check"


def test_a_passing_run_check_leaves_no_process_behind(ready: Project) -> None:
    import time

    (ready.root / "spawn.py").write_text(GRANDCHILD.format(
        redirect=", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL", after="sys.exit(0)"))
    _yml(ready, f"verify:\n  - name: spawner\n    run: [{sys.executable}, spawn.py]\n    timeout: 30s\n")
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard("run")
    assert result.code == 0, result.output
    pid = int((ready.root / "grandchild.pid").read_text())
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid)


# -- The report: rows as psql shows them, untrusted text inert, no secret --

SHOWN = ("select 1.50::numeric as amount, timestamp '2026-11-30 08:00:00' as at, null::text as nothing, "
         "true as ok, interval '90 minutes' as took, '{\"a\": [1]}'::jsonb as doc, "
         "E'two\\nlines ::error::pwned \\x1b[31m' as evil, 'sekrit-admin-key-123' as leaked")


def test_failed_check_rows_are_shown_as_psql_shows_them_and_inert(ready: Project) -> None:
    _yml(ready, json.dumps({"verify": [  # JSON is YAML
        {"name": "shown", "sql": SHOWN},
        {"name": "out", "run": ["sh", "-c", 'echo "token $ADMIN_API_KEY"; printf "::error::x\\n"; exit 7']}]}))
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard("run", ADMIN_API_KEY="sekrit-admin-key-123")
    assert result.code == 4, result.output
    assert result.report is not None
    shown, out = result.report["verify"]
    assert shown["columns"] == ["amount", "at", "nothing", "ok", "took", "doc", "evil", "leaked"]
    assert shown["rows"][0][:6] == ["1.50", "2026-11-30 08:00:00", None, "t", "01:30:00", '{"a": [1]}']
    assert shown["row_count"] == 1 and out["error"] == "exit 7" and out["output"][1] == "::error::x"
    assert "1.50 | 2026-11-30 08:00:00 | NULL | t | 01:30:00 | {\"a\": [1]}" in result.stdout
    for python in ("Decimal(", "datetime.", "None", "True", "timedelta"):
        assert python not in result.output
    for line in result.output.splitlines():
        assert not line.lstrip().startswith("::") and "\x1b" not in line
    assert "two\\nlines" in result.stdout
    saved = json.dumps(ready.query("SELECT report FROM guard.runs")[0][0])
    for text in (result.output, json.dumps(result.report), saved):
        assert "sekrit-admin-key-123" not in text


def test_a_huge_failing_row_is_cut_in_every_output(ready: Project) -> None:
    wide = ", ".join(f"{i} as c{i}" for i in range(40))
    _yml(ready, json.dumps({"verify": [
        {"name": "huge", "sql": "select false, repeat('é', 100000) as big from generate_series(1, 9)"},
        {"name": "wide", "sql": f"select {wide}"}]}))
    ready.add("20240101000001_items.sql", ITEMS)
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None, result.output
    huge, wide_check = result.report["verify"]
    assert huge["row_count"] == 9 and len(huge["rows"]) == 5
    assert all(row[0] == "f" and len(row[1]) == 201 and row[1].endswith("…") for row in huge["rows"])
    assert len(wide_check["columns"]) == 20 and len(wide_check["rows"][0]) == 20
    assert len(result.output) < 40_000 and "(9 rows, first 5 shown)" in result.stdout


def test_a_failed_check_after_commit_is_one_inert_annotation_in_github_actions(ready: Project) -> None:
    _yml(ready, json.dumps({"verify": [{"name": "evil", "sql": "select false, E'x\\n::add-mask::y ##[error]z'"}]}))
    ready.add("20240101000001_items.sql", ITEMS)
    summary = ready.root / "summary.md"
    result = ready.guard("run", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary))
    assert result.code == 4, result.output
    commands = [line for line in result.stdout.splitlines() if line.lstrip().startswith("::") or "##[" in line]
    ours = [line for line in commands if line.startswith("::error title=migration-guard verify.evil failed::")]
    assert len(ours) == 1 and "##[" not in ours[0] and "%0A" not in ours[0]
    assert not [line for line in commands if "add-mask" in line.split("::", 2)[1]]
    assert all(line.startswith("::error ") or line.startswith("::group") or line.startswith("::endgroup")
               for line in commands), commands
    text = summary.read_text()
    assert "### Verify" in text and "| verify.evil | failed |" in text and "\n::" not in text


def test_a_grandchild_that_left_the_group_cannot_hold_guard(ready: Project) -> None:
    """It escaped the process group (setsid), so it cannot be killed with it; it keeps the
    output pipe open, and guard stops waiting for it DRAIN_SECONDS after the kill."""
    import os
    import signal
    import time

    (ready.root / "spawn.py").write_text(GRANDCHILD.format(redirect=", start_new_session=True",
                                                           after="time.sleep(120)"))
    _yml(ready, f"verify:\n  - name: spawner\n    run: [{sys.executable}, spawn.py]\n    timeout: 1s\n")
    ready.add("20240101000001_items.sql", ITEMS)
    started = time.monotonic()
    try:
        result = ready.guard("run")
        assert time.monotonic() - started < 60
        assert result.code == 4 and result.report is not None, result.output
        assert "timed out after 1s" in result.report["verify"][0]["error"]
    finally:
        pid_file = ready.root / "grandchild.pid"
        if pid_file.exists():
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)  # the test's own leftover
            except ProcessLookupError:
                pass


HIDDEN = "select 'x\\''; commit; drop table public.victim; --'"  # one string to pglast, three statements with SCS off


@pytest.mark.parametrize("where", ["file", "config"])
def test_a_check_read_differently_by_a_legacy_string_setting_runs_no_hidden_statement(ready: Project, where: str) -> None:
    """A database with standard_conforming_strings off: the server must read a check as the
    parser that let it through did, or a COMMIT hidden in a string commits half a release."""
    ready.query("CREATE TABLE public.victim (id int); INSERT INTO public.victim VALUES (1)")
    database = ready.query("SELECT current_database()")[0][0]
    ready.query(f'ALTER DATABASE "{database}" SET standard_conforming_strings = off')
    if where == "config":
        _yml(ready, "migrations:\n  transaction: all\nverify:\n  - name: sneaky\n    sql: "
             + json.dumps(HIDDEN) + "\n")
        ready.add("20240101000001_items.sql", ITEMS)
    else:
        ready.add("20240101000001_items.sql", ITEMS + f"-- guard:verify {HIDDEN}\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert "rolled back" in result.stdout
    assert ready.table_exists("public.victim") and not ready.table_exists("public.items")
    assert ready.history() == []


SLOW_CHECK = "import os, pathlib, time\npathlib.Path('check.started').write_text(str(os.getpid()))\ntime.sleep(60)\n"


def test_a_signal_during_a_check_after_commit_closes_the_run_as_interrupted(ready: Project) -> None:
    """The release committed; SIGTERM lands while a run: check works. The outcome says the
    release is applied and not verified (exit 4, the check named), the journal entry is closed
    with the committed versions (the next run is not refused), and the check's process is gone."""
    import signal
    import time

    (ready.root / "slow.py").write_text(SLOW_CHECK)
    _yml(ready, f"verify:\n  - name: smoke\n    run: [{sys.executable}, slow.py]\n    timeout: 120s\n"
               "  - name: after\n    sql: select true\n")
    ready.add("20240101000001_items.sql", ITEMS)
    code, out, err = _guard_until(ready, (ready.root / "check.started").exists, signal.SIGTERM)
    assert code == 4, out + err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["status"] == "verify_failed" and report["interrupted"] == "SIGTERM"
    assert "interrupted by SIGTERM" in report["message"] and "verify.smoke" in report["message"]
    checks = {c["name"]: c for c in report["verify"]}
    assert checks["verify.smoke"]["result"] == "failed" and "SIGTERM" in checks["verify.smoke"]["error"]
    assert checks["verify.after"]["result"] == "failed"  # never ran: not counted as passed
    # The plan says the checks did not finish, not that they found something wrong.
    plan = report["restore_plan"]
    assert "did not finish, interrupted by SIGTERM: verify.smoke, verify.after" in plan["summary"]
    assert "only the checks did not finish, interrupted by SIGTERM" in json.dumps(plan["steps"])
    assert "failed:" not in plan["summary"]
    assert ready.history() == ["20240101000001"]
    assert ready.query("SELECT status, committed FROM guard.runs") == [("interrupted", ["20240101000001"])]
    pid = int((ready.root / "check.started").read_text())
    deadline = time.monotonic() + 5
    while not _gone(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(pid), "the check outlived guard"
    # The next run is not refused for an unfinished run.
    again = ready.guard("run")
    assert again.code == 0, again.output


def _guard_until(ready: Project, started: Callable[[], bool], sig: int, *args: str) -> tuple[int, str, str]:
    """`guard run --json <args>` in a process; once ``started()`` is true, ``sig``; its exit code and output."""
    import subprocess
    import time

    proc = subprocess.Popen([sys.executable, "-m", "guard", "run", "--json", *args], cwd=ready.root,
                            env=ready.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not started() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started(), "the check never started"
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return proc.returncode, out, err


SLEEPING = "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'select pg_sleep(30)%'"


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM"])
def test_a_signal_during_an_sql_check_after_commit_cancels_it_and_closes_the_run(ready: Project, sig: str) -> None:
    """The slow query is cancelled on the server, the connection still closes the journal entry."""
    import signal
    import time

    _yml(ready, "verify:\n  - name: slow\n    sql: select pg_sleep(30) is not null\n    timeout: 120s\n")
    ready.add("20240101000001_items.sql", ITEMS)
    def sleeping() -> bool:
        if ready.query(SLEEPING)[0][0] == 0:
            return False
        time.sleep(0.3)  # the check runs a while before the signal
        return True

    code, out, err = _guard_until(ready, sleeping, getattr(signal, sig))
    assert code == 4, out + err
    assert "Traceback" not in err
    report = json.loads(out)
    assert report["status"] == "verify_failed" and report["interrupted"] == sig
    assert f"interrupted by {sig}" in report["verify"][0]["error"]
    assert report["verify"][0]["duration_ms"] >= 200  # it ran until the signal: not 0 ms
    assert ready.query(SLEEPING) == [(0,)]
    assert ready.query("SELECT status, committed FROM guard.runs") == [("interrupted", ["20240101000001"])]
    again = ready.guard("run")
    assert again.code == 0, again.output


HELD_CHECK = ("import pathlib, sys, time\npathlib.Path('check.started').write_text('1')\n"
              "while not pathlib.Path('go').exists():\n    time.sleep(0.05)\nsys.exit(1)\n")
WAITING_ON_LOCK = ("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run%' "
                   "AND wait_event_type = 'Lock'")


def test_a_signal_during_the_undo_offer_leaves_the_settled_outcome_standing(ready: Project) -> None:
    """A check failed after COMMIT (exit 4, journal closed); SIGTERM lands while undo's dry run
    waits on a lock for the plan's offer. The report still says verify_failed with the
    committed release (not "outcome unknown"), and its plan says the offer was interrupted."""
    import signal

    import psycopg

    (ready.root / "check.py").write_text(HELD_CHECK)
    _yml(ready, f"verify:\n  - name: smoke\n    run: [{sys.executable}, check.py]\n")
    ready.add("20240101000001_items.sql", ITEMS)

    def locked() -> bool:
        if not (ready.root / "check.started").exists():
            return False
        if not (ready.root / "go").exists():
            locker.execute("LOCK TABLE guard.run_catalogs IN ACCESS EXCLUSIVE MODE")  # undo's dry run reads it
            (ready.root / "go").write_text("1")
        return ready.query(WAITING_ON_LOCK)[0][0] > 0

    with psycopg.connect(ready.db_url) as locker:
        code, out, err = _guard_until(ready, locked, signal.SIGTERM)
    assert code == 4, out + err
    report = json.loads(out)
    assert report["status"] == "verify_failed", report["message"]
    assert report["database_changed"] is True
    assert any("interrupted by SIGTERM" in step["text"] for step in report["restore_plan"]["steps"])
    assert ready.query("SELECT status, committed FROM guard.runs") == [("verify_failed", ["20240101000001"])]
    again = ready.guard("run")
    assert again.code == 0, again.output


@pytest.mark.parametrize(("interrupted", "words"), [(None, "a check failed"), ("SIGTERM", "did not finish (SIGTERM)")])
def test_the_headline_tells_an_interrupted_verification_from_a_failed_one(interrupted: str | None, words: str) -> None:
    from guard.report.model import RunReport
    from guard.report.text import headline

    report = RunReport(command="run", run_id="r", started_at="2026-11-30T00:00:00Z")
    report.set_outcome("verify_failed", "m", changed=True)
    report.interrupted = interrupted
    assert words in headline(report) and "database changed" in headline(report)
