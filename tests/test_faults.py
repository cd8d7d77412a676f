"""Faults against a real server: signals, a terminated backend, a restarted server, lock waits.

In every case: nothing recorded as applied that is not, nothing applied twice, and the exit
code matches DESIGN.md's outcome table.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from guard.embedded import Cluster
from tests.support import Project, clean_env, run_guard

SLOW = "select pg_sleep(60);\ncreate table public.later (id int);\n"


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except psycopg.OperationalError:
            pass
        time.sleep(0.1)
    raise AssertionError("condition not reached in time")


def _sleeping(project: Project) -> bool:
    rows = project.query(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%' "
        "AND wait_event = 'PgSleep' AND pid <> pg_backend_pid() AND state = 'active'"
    )
    return bool(rows[0][0])


def _start(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "guard", "run"], cwd=project.root, env=project.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )


def _report(project: Project) -> dict:  # type: ignore[type-arg]
    return json.loads((project.root / "guard-report.json").read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_during_first_file_cancels_it_and_exits_1(ready: Project, sig: signal.Signals) -> None:
    ready.add("20240101000000_slow.sql", SLOW)
    proc = _start(ready)
    _wait_for(lambda: _sleeping(ready))
    started = time.monotonic()
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=20)
    assert time.monotonic() - started < 10  # the server-side sleep was cancelled, not waited out
    assert proc.returncode == 1, out + err
    report = _report(ready)
    assert report["status"] == "failed_rolled_back" and report["interrupted"] == sig.name
    assert report["restore_plan"]["needed"] is False
    assert ready.history() == [] and not ready.table_exists("public.later")
    assert not _sleeping(ready)
    journal = ready.query("SELECT status, exit_code FROM guard.runs")
    assert journal == [("interrupted", 1)]


def test_sigterm_after_a_committed_file_exits_4_with_plan(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    ready.add("20240102000000_slow.sql", SLOW)
    proc = _start(ready)
    _wait_for(lambda: _sleeping(ready))
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 4, out + err
    report = _report(ready)
    assert report["status"] == "failed_partially_applied"
    assert report["restore_plan"]["committed_versions"] == ["20240101000000"]
    assert "RESTORE PLAN" in out
    assert ready.history() == ["20240101000000"]
    assert ready.query("SELECT status, committed FROM guard.runs") == [("interrupted", ["20240101000000"])]
    # Nothing is left unfinished: the next run goes on without an acknowledgement.
    ready.add("20240102000000_slow.sql", "create table public.later (id int);\n")
    assert ready.guard("run").code == 0


def test_second_signal_exits_at_once_and_next_run_reports_it(ready: Project) -> None:
    ready.add("20240101000000_slow.sql", SLOW)
    # Ignore the cancel so the first signal's clean-up cannot finish quickly: a backend
    # that sleeps in a loop of short sleeps still answers cancel, so use a blocked lock wait.
    with psycopg.connect(ready.db_url) as holder:
        ready.add("20240101000000_slow.sql", "lock table public.backup_logs in access exclusive mode;\n")
        holder.execute("LOCK TABLE public.backup_logs IN ACCESS SHARE MODE")
        proc = subprocess.Popen(
            [sys.executable, "-m", "guard", "run", "--lock-timeout", "60s"], cwd=ready.root,
            env=ready.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            stdin=subprocess.DEVNULL,
        )
        _wait_for(lambda: ready.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%' "
            "AND wait_event_type = 'Lock'")[0][0] > 0)
        proc.send_signal(signal.SIGTERM)
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)
        holder.rollback()
    assert proc.returncode in (1, 4)
    assert ready.history() == []
    # The journal says "interrupted" (written from a side connection on the first signal).
    _wait_for(lambda: ready.query("SELECT status FROM guard.runs")[0][0] == "interrupted")
    finished = ready.query("SELECT finished_at IS NOT NULL FROM guard.runs")[0][0]
    if not finished:
        # Gone before it could close the record: the next run refuses with the plan.
        _wait_for(lambda: ready.query(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'guard run %%'")[0][0] == 0)
        nxt = ready.guard("run")
        assert nxt.code == 3 and nxt.report is not None and nxt.report["unfinished_run"]


def test_terminated_backend_mid_file_is_rolled_back_and_reported(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    ready.add("20240102000000_slow.sql", SLOW)
    proc = _start(ready)
    _wait_for(lambda: _sleeping(ready))
    ready.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name LIKE 'guard run %%' AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    report = _report(ready)
    assert [m["status"] for m in report["migrations"]] == ["applied", "failed"]
    assert report["restore_plan"]["committed_versions"] == ["20240101000000"]
    assert ready.history() == ["20240101000000"]
    # The reconnection closed the journal: nothing is left to acknowledge.
    assert ready.query("SELECT status FROM guard.runs") == [("failed_partially_applied",)]


@pytest.fixture
def own_cluster() -> Iterator[Cluster]:
    # Durable commits: a crash must not lose what the server acknowledged.
    cluster = Cluster(password="own-cluster-pw-123", fsync=True)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


def test_server_restart_mid_run_gives_the_truth_from_the_history(tmp_path: Path, own_cluster: Cluster) -> None:
    with psycopg.connect(own_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE app")
    project = Project(tmp_path, own_cluster.url("app"))
    project.init_backup_log()
    project.log_automated_backup()
    project.add("20240101000000_items.sql", "create table public.items (id int);\n")
    project.add("20240102000000_slow.sql", SLOW)
    proc = subprocess.Popen(
        [sys.executable, "-m", "guard", "run"], cwd=project.root, env=clean_env(GUARD_DATABASE_URL=project.db_url),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    _wait_for(lambda: _sleeping(project))
    restarted = own_cluster.pg_ctl("restart", "-m", "immediate", "-w")
    assert restarted.returncode == 0, restarted.stderr
    out, err = proc.communicate(timeout=90)
    assert proc.returncode == 4, out + err
    report = _report(project)
    assert report["restore_plan"]["committed_versions"] == ["20240101000000"]
    assert project.history() == ["20240101000000"]
    assert "own-cluster-pw-123" not in out + err


def test_lock_timeout_names_the_blocking_session(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_alter.sql", "alter table public.items add column n int;\n")
    with psycopg.connect(ready.db_url, application_name="nightly report") as holder:
        holder.execute("SELECT count(*) FROM public.items")  # holds ACCESS SHARE until rollback
        pid = holder.info.backend_pid
        result = ready.guard("run", "--lock-timeout", "200ms")
        holder.rollback()
    assert result.code == 1, result.output
    assert result.report is not None
    error = result.report["migrations"][0]["error"]
    assert error["sqlstate"] == "55P03"
    assert error["blockers"][0]["pid"] == pid
    assert error["blockers"][0]["application_name"] == "nightly report"
    assert f"pid {pid}" in result.stdout and "nightly report" in result.stdout
    assert ready.history() == ["20240101000000"]


def test_lock_retries_wait_for_the_lock_to_go(ready: Project) -> None:
    ready.add("20240101000000_items.sql", "create table public.items (id int);\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_alter.sql", "alter table public.items add column n int;\n")
    (ready.root / "guard.yml").write_text(
        "migrations:\n  lock_timeout: 200ms\n  lock_retries: 3\n  lock_retry_delay: 1s\n"
    )
    holder = psycopg.connect(ready.db_url)
    holder.execute("SELECT count(*) FROM public.items")
    proc = _start(ready)
    assert proc.stderr is not None
    seen: list[str] = []
    for line in proc.stderr:  # release the lock only once the first attempt has timed out
        seen.append(line)
        if "retry 1/3" in line:
            break
    holder.rollback()
    holder.close()
    out, err = proc.communicate(timeout=30)
    err = "".join(seen) + err
    assert proc.returncode == 0, out + err
    assert "retry 1/3" in err
    assert ready.history() == ["20240101000000", "20240102000000"]
    assert os.path.exists(ready.root / "guard-report.json")


def _postmasters() -> dict[int, str]:
    """pid -> data directory of every running guard-made (embedded) postmaster."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"postgres") and b"-D" in argv:
            data = argv[argv.index(b"-D") + 1].decode()
            if "/guard-pg-" in data:
                found[int(entry.name)] = data
    return found


def _busy_backend(postmaster: int) -> bool:
    """A backend of that server is running a SELECT (the shadow's pg_sleep)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            title = (entry / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if f"PPid:\t{postmaster}\n" in status and "SELECT" in title:
            return True
    return False


def test_sigterm_during_a_shadow_dry_run_stops_the_embedded_server(ready: Project) -> None:
    """A cancelled CI job sends SIGTERM: the throw-away server must not outlive guard."""
    ready.add("20240101000000_slow.sql", "select pg_sleep(120);\n")
    # guard's own temporary folder (short: the server's socket path must fit), so servers other
    # tests or other runs on this machine start are not counted as this guard's shadow
    tmp = tempfile.mkdtemp(prefix="gsig")
    os.chmod(tmp, 0o755)  # as root, the server runs as postgres and must reach its folder
    mine = lambda: {pid: data for pid, data in _postmasters().items() if data.startswith(tmp + "/")}  # noqa: E731
    proc = subprocess.Popen(
        [sys.executable, "-m", "guard", "check", "--shadow", "embedded"], cwd=ready.root,
        env=ready.env(TMPDIR=tmp),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for(lambda: any(_busy_backend(pid) for pid in mine()), timeout=60)
        shadow = mine()
        assert len(shadow) == 1
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, out + err
    assert "interrupted by SIGTERM" in err and "Traceback" not in err
    (pid, data), = shadow.items()
    assert not _alive(pid), "the shadow server outlived guard"
    assert not Path(data).parent.exists(), "the shadow's files were left behind"
    shutil.rmtree(tmp)  # checked above: guard left its temporary folder empty


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for init to reap it has exited)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


@pytest.mark.parametrize("when", ["the catalog before", "the backup log entry"])
def test_a_connection_lost_before_the_first_statement_is_said_and_its_journal_entry_closed(
        ready: Project, when: str) -> None:
    """The session dies while guard records what comes before the first statement (a trigger
    that ends its own backend stands in for the network): exit 3, one line saying nothing was
    changed, the journal entry closed on a new session, so the next run is not refused."""
    ready.guard("init")
    table = "guard.run_catalogs" if when == "the catalog before" else "public.backup_logs"
    ready.query("CREATE FUNCTION public.cut() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$")
    ready.query(f"CREATE TRIGGER cut BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION public.cut()")
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    lost = ready.guard("run")
    assert lost.code == 3, lost.output
    assert "internal error" not in lost.output and "Traceback" not in lost.output
    assert ready.history() == [] and ready.query("SELECT to_regclass('public.t')") == [(None,)]
    if when == "the catalog before":
        assert "lost the connection" in lost.output and "nothing was changed" in lost.output, lost.output
    assert ready.query("SELECT status FROM guard.runs") == [("blocked",)]  # closed, not left running

    ready.query(f"DROP TRIGGER cut ON {table}")
    again = ready.guard("run")
    assert again.code == 0, again.output
    assert ready.history() == ["20240101000000"]


def _writable(project: Project, statement: str) -> list[tuple[object, ...]]:
    """``statement`` on a session that turns default_transaction_read_only off for itself."""
    with psycopg.connect(project.db_url, autocommit=True, options="-c default_transaction_read_only=off") as conn:
        cursor = conn.execute(statement)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description is not None else []


@pytest.mark.parametrize("where", ["DATABASE", "ROLE"])
def test_a_read_only_database_is_refused_in_one_line_before_any_change(ready: Project, where: str) -> None:
    """default_transaction_read_only on (ALTER DATABASE / ALTER ROLE, or a platform's read-only
    mode): guard run refuses at connect (exit 3, one line), writes nothing; guard check still
    runs, read only as it always is; the next run after RESET applies."""
    ready.guard("init")
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    target = "DATABASE " + ready.query("SELECT quote_ident(current_database())")[0][0] if where == "DATABASE" \
        else "ROLE " + ready.query("SELECT quote_ident(current_user)")[0][0]
    _writable(ready, f"ALTER {target} SET default_transaction_read_only = on")
    try:
        refused = ready.guard("run")
        assert refused.code == 3, refused.output
        assert "default_transaction_read_only is on" in refused.stderr and "internal error" not in refused.output
        assert "Traceback" not in refused.output
        counts = _writable(ready, "SELECT (SELECT count(*) FROM guard.runs), (SELECT count(*) FROM public.backup_logs)")
        assert counts == [(0, 1)]  # no journal entry, only the automated backup the fixture logged
        checked = ready.guard("check")
        assert "default_transaction_read_only" not in checked.output, checked.output
    finally:
        _writable(ready, f"ALTER {target} RESET default_transaction_read_only")
    applied = ready.guard("run")
    assert applied.code == 0, applied.output
    assert ready.history() == ["20240101000000"]


def test_a_role_that_may_not_use_guards_schema_is_refused_in_one_line(ready: Project) -> None:
    """guard init ran as the owner; guard run as a role without USAGE on schema guard: one
    line naming the role and guard's journal (exit 3), nothing changed, not an internal error."""
    from psycopg.conninfo import make_conninfo

    ready.guard("init")
    role = "lim_" + ready.query("SELECT substr(md5(current_database()), 1, 10)")[0][0]
    ready.query(f"DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'lim-Zq81-pass-tst'")
    try:
        ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
        url = make_conninfo(ready.db_url, user=role, password="lim-Zq81-pass-tst")
        refused = run_guard("run", cwd=ready.root, env=clean_env(GUARD_DATABASE_URL=url))
        assert refused.code == 3, refused.output
        assert f"role {role} may not read guard's journal" in refused.stderr, refused.output
        assert "internal error" not in refused.output and "lim-Zq81-pass-tst" not in refused.output
        assert ready.history() == [] and ready.query("SELECT count(*) FROM guard.runs") == [(0,)]
    finally:
        ready.query(f"DROP OWNED BY {role}; DROP ROLE {role}")
