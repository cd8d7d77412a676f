"""Concurrent `guard init`s, and a first `guard run` / `guard backup log` beside them, on a
fresh database: each install of guard's own objects (the backup log, guard's schema, undo's
tables, the migration history) takes guard's install lock (guard.guard_schema.installing), so
they take turns and all succeed. Before, two inits deadlocked in the backup log's install or
failed on pg_namespace's unique index ("duplicate key value"), having decided what to create
before waiting.

Deterministic: the test holds the install lock while the processes start, waits until every
one of them is seen waiting for it (pg_locks), then lets go: they all reach the installs at
the same moment.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest

from guard.guard_schema import UPGRADE_LOCK_KEY
from tests.support import Project

WAITING = """
SELECT count(DISTINCT pid) FROM pg_locks
 WHERE locktype = 'advisory' AND NOT granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND (classid::bigint << 32) | objid::bigint = %s
"""


def _start(project: Project, *args: str, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "guard", *args], cwd=project.root, env=project.env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)


@contextmanager
def _install_lock_held(project: Project) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (UPGRADE_LOCK_KEY,))
        yield conn


def _wait_for_waiters(conn: psycopg.Connection[Any], count: int, procs: list[subprocess.Popen[str]]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        row = conn.execute(WAITING, (UPGRADE_LOCK_KEY,)).fetchone()
        if row is not None and row[0] >= count:
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.05)
    outputs = [p.communicate(timeout=30) for p in procs if p.poll() is not None]
    pytest.fail(f"not all of {count} processes waited for the install lock: {outputs}")


def _finish(procs: list[subprocess.Popen[str]]) -> list[tuple[int, str, str]]:
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        results.append((proc.returncode, out, err))
    for _code, out, err in results:
        assert "Traceback" not in out + err and "deadlock" not in out + err, out + err
        assert "duplicate key" not in out + err and "internal error" not in out + err, out + err
    return results


def _installed(project: Project) -> None:
    """Everything init makes is there, once, and the log's stats function answers."""
    for table in ("public.backup_logs", "guard.runs", "guard.run_commits", "guard.schema_version",
                  "guard.run_catalogs", "guard.run_rows", "supabase_migrations.schema_migrations"):
        assert project.table_exists(table), table
    assert project.query("SELECT version FROM guard.schema_version ORDER BY 1") == [(1,), (2,)]
    assert project.query("SELECT public.get_backup_stats() ->> 'total_backups'") != []


@pytest.mark.parametrize("count", [6])
def test_concurrent_inits_on_a_fresh_database_all_succeed(project: Project, count: int) -> None:
    with _install_lock_held(project) as conn:
        procs = [_start(project, "init") for _ in range(count)]
        _wait_for_waiters(conn, count, procs)
    results = _finish(procs)
    assert [r[0] for r in results] == [0] * count, results
    _installed(project)
    # The same lines from each: one of them created, the others found it present.
    created = [r[1] for r in results if "table public.backup_logs created" in r[1]]
    assert len(created) == 1, [r[1] for r in results]


def test_inits_beside_a_first_run_and_a_backup_log_all_succeed(project: Project) -> None:
    """The run queues for the lock behind the inits and applies (the backup check overridden:
    no backup is logged yet); `guard backup log`, which installs nothing, starts as the lock is
    let go: it writes its entry, or, before the first init's table exists, refuses in one line."""
    project.add("20240101000001_one.sql", "create table public.one (id int);\n")
    with _install_lock_held(project) as conn:
        procs = [_start(project, "init") for _ in range(4)]
        _wait_for_waiters(conn, 4, procs)
        procs.append(_start(project, "run", "--allow-stale-backup", "--reason", "first"))
        _wait_for_waiters(conn, 5, procs)
        log = _start(project, "backup", "log", "--reason", "nightly", "--kind", "automated")
    results = _finish([*procs, log])
    assert [r[0] for r in results[:5]] == [0] * 5, results
    _installed(project)
    assert project.history() == ["20240101000001"] and project.table_exists("public.one")
    entries = project.query("SELECT kind, reason FROM public.backup_logs ORDER BY kind")
    code, _out, err = results[5]
    if code == 0:
        assert entries == [("automated", "nightly"), ("manual", "first")]
    else:
        assert code == 2 and err.count("\n") == 1 and "run `guard init`" in err, err
        assert entries == [("manual", "first")]


def test_an_install_lock_held_too_long_is_a_one_line_refusal_not_a_hang(project: Project) -> None:
    """The session's lock_timeout (here 1s, by PGOPTIONS) bounds the wait (else 60s): then
    exit 3 naming the session that holds the lock, nothing installed."""
    with psycopg.connect(project.db_url, autocommit=True, application_name="stuck installer") as holder:
        holder.execute("SELECT pg_advisory_lock(%s)", (UPGRADE_LOCK_KEY,))
        started = time.monotonic()
        proc = _start(project, "init", PGOPTIONS="-c lock_timeout=1s")
        out, err = proc.communicate(timeout=60)
        assert time.monotonic() - started < 30
    assert proc.returncode == 3, out + err
    assert err.count("\n") == 1 and "stuck installer" in err and "after 1s" in err, err
    assert "Traceback" not in out + err and not project.table_exists("public.backup_logs")
    assert project.guard("init").code == 0  # once it is let go
