"""Files streamed several to a message (guard/migrations/pipeline.py): the semantics of one
file at a time, kept.

A failing file leaves the files before it committed and the files after it never started: a
sequence advanced by every file (nextval is not transactional) tells whether a file after
the failing one ran at all, even rolled back.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import psycopg
import pytest

from guard.migrations.apply import apply_pending
from guard.migrations.files import MigrationFile, MigrationRef, split_statements
from guard.migrations.history import ensure_history
from tests.support import Project

BASE = 20240101000000


def _version(n: int) -> str:
    return str(BASE + n)


def _many(project: Project, count: int, failing: int | None = None, body: str = "") -> None:
    """``count`` files; file ``failing`` (1-based) fails on its third line."""
    project.query("CREATE SEQUENCE public.probe")
    for n in range(1, count + 1):
        sql = f"create table public.t{n} (id int);\nselect nextval('public.probe');\n{body}"
        if n == failing:
            sql = f"create table public.t{n} (id int);\nselect nextval('public.probe');\nselect 1 /\n  0;\n"
        project.add(f"{_version(n)}_f{n}.sql", sql)


def _tables(project: Project) -> int:
    return int(project.query("SELECT count(*) FROM pg_class WHERE relname ~ '^t[0-9]+$' "
                             "AND relnamespace = 'public'::regnamespace")[0][0])


def _probe(project: Project) -> int:
    last, called = project.query("SELECT last_value, is_called FROM public.probe")[0]
    return int(last) if called else 0


def _journal_committed(project: Project) -> list[str]:
    return sorted(r[0] for r in project.query("SELECT version FROM guard.run_commits"))


@pytest.mark.parametrize("failing", [1, 500, 1000])
def test_failure_in_one_of_1000_streamed_files_keeps_file_semantics(ready: Project, failing: int) -> None:
    _many(ready, 1000, failing)
    result = ready.guard("run")
    assert result.code == (1 if failing == 1 else 4), result.output
    report = result.report
    assert report is not None
    before = [_version(n) for n in range(1, failing)]
    assert ready.history() == before
    assert _journal_committed(ready) == before
    assert report["restore_plan"].get("committed_versions", []) == before
    assert _tables(ready) == failing - 1
    # The failing file ran up to its error (then rolled back); no file after it ran at all.
    assert _probe(ready) == failing
    statuses = [m["status"] for m in report["migrations"]]
    assert statuses == ["applied"] * (failing - 1) + ["failed"] + ["skipped"] * (1000 - failing)
    # Streams hold up to 250 files: those of later streams were never sent (no path).
    paths = [m["path"] for m in report["migrations"]]
    assert set(paths[:failing]) == {"pipeline"} and set(paths[failing:]) <= {"pipeline", None}
    error = report["migrations"][failing - 1]["error"]
    assert error["sqlstate"] == "22012" and error["line"] == 3 and error["statement_index"] == 2
    assert error["statement"] == "select 1 /\n  0"


def test_a_stream_applies_everything_and_records_it(ready: Project) -> None:
    _many(ready, 300)
    result = ready.guard("run")
    assert result.code == 0, result.output
    versions = [_version(n) for n in range(1, 301)]
    assert ready.history() == versions and _journal_committed(ready) == versions
    assert _tables(ready) == 300 and _probe(ready) == 300
    assert result.report is not None
    assert {m["path"] for m in result.report["migrations"]} == {"pipeline"}
    # The history holds each file's statements, as the Supabase CLI records them.
    rows = ready.query("SELECT statements FROM supabase_migrations.schema_migrations WHERE version = %s",
                       (_version(7),))
    assert rows == [(["create table public.t7 (id int)", "select nextval('public.probe')"],)]


def test_error_position_maps_to_the_files_line(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "-- a comment\ncreate table public.b (id int);\n\nselect id\n  from public.missing;\n")
    ready.add("20240103000000_c.sql", "create table public.c (id int);\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None
    error = result.report["migrations"][1]["error"]
    assert error["sqlstate"] == "42P01" and error["line"] == 5 and error["statement_index"] == 1
    assert ready.history() == ["20240101000000"] and not ready.table_exists("public.c")


def test_failure_at_commit_stops_the_stream(ready: Project) -> None:
    """A deferred constraint fails at COMMIT, which ends the transaction: the rest of the
    message is abandoned all the same."""
    ready.add("20240101000000_a.sql", "create table public.p (id int primary key);\n"
              "create table public.c (p int references public.p deferrable initially deferred);\n")
    ready.add("20240102000000_b.sql", "insert into public.c values (42);\n")
    ready.add("20240103000000_c.sql", "create table public.after (id int);\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None
    assert [m["status"] for m in result.report["migrations"]] == ["applied", "failed", "skipped"]
    assert result.report["migrations"][1]["error"]["sqlstate"] == "23503"
    assert ready.history() == ["20240101000000"] and not ready.table_exists("public.after")
    assert ready.query("SELECT count(*) FROM public.c") == [(0,)]


def test_statement_the_server_cannot_parse_falls_back_to_one_file_at_a_time(ready: Project) -> None:
    """guard's parser is a newer PostgreSQL's: JSON_OBJECT('a' VALUE 1) (16) parses for guard,
    not for the test server (15), which then refuses the whole stream before running any of
    it. The files go one at a time instead: those before it commit."""
    version = int(ready.query("SHOW server_version_num")[0][0])
    if version >= 160000:
        pytest.fail("this test needs a server older than 16 (JSON_OBJECT('a' VALUE 1) must not parse)")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "select json_object('a' value 1);\n")
    ready.add("20240103000000_c.sql", "create table public.c (id int);\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None
    migrations = result.report["migrations"]
    assert [m["status"] for m in migrations] == ["applied", "failed", "skipped"]
    assert [m["path"] for m in migrations[:2]] == ["single", "single"]
    assert migrations[1]["error"]["sqlstate"] == "42601"
    assert ready.history() == ["20240101000000"] and not ready.table_exists("public.c")


def test_each_file_takes_the_path_its_semantics_allow(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240102000000_b.sql", "create table public.b (id int);\n")
    ready.add("20240103000000_idx.sql", "create index concurrently a_id on public.a (id);\n")
    ready.add("20240104000000_wrapped.sql", "begin;\ncreate table public.w (id int);\ncommit;\n")
    ready.add("20240105000000_c.sql", "create table public.c (id int);\n")
    ready.add("20240106000000_drop.sql", "drop table public.b;\n")  # a protective copy first
    ready.add("20240107000000_d.sql", "create table public.d (id int);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    paths = [m["path"] for m in result.report["migrations"]]
    assert paths == ["pipeline", "pipeline", "single", "single", "pipeline", "single", "pipeline"]
    assert len(ready.history()) == 7


def test_lock_retries_send_every_file_alone(ready: Project) -> None:
    _many(ready, 5)
    (ready.root / "guard.yml").write_text("migrations:\n  lock_retries: 2\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    assert {m["path"] for m in result.report["migrations"]} == {"single"}


def test_a_files_session_settings_do_not_reach_the_next_streamed_file(ready: Project) -> None:
    ready.query("CREATE ROLE pipeline_other")
    ready.add("20240101000000_a.sql", "set default_transaction_read_only = on;\nset search_path = nowhere;\n"
              "set role pipeline_other;\ncreate temp table scratch (id int);\n")
    ready.add("20240102000000_b.sql", "create table t_b (id int);\ncreate temp table scratch (id int);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    assert {m["path"] for m in result.report["migrations"]} == {"pipeline"}
    # search_path back to "$user", public; the connecting role owns it; no leftover temp table.
    assert ready.query("SELECT tableowner FROM pg_tables WHERE tablename = 't_b' AND schemaname = 'public'") \
        == [("postgres",)]


def test_a_file_that_changes_how_strings_are_read_goes_alone(ready: Project) -> None:
    """With standard_conforming_strings off, 'a\\nb' holds a newline: one statement at a
    time, as psql sends them, the SET changes how the INSERT after it is read; a stream is
    read whole before the SET runs."""
    ready.add("20240101000000_a.sql", "create table public.s (v text);\n")
    ready.add("20240102000000_b.sql", "set standard_conforming_strings = off;\n"
              "insert into public.s values ('a\\nb');\n")
    ready.add("20240103000000_c.sql", "insert into public.s values ('c\\nd');\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    assert [m["path"] for m in result.report["migrations"]] == ["pipeline", "single", "pipeline"]
    assert ready.query("SELECT v FROM public.s ORDER BY v") == [("a\nb",), ("c\\nd",)]


# --------------------------------------------------------------- the pre-COMMIT hooks


def _file(n: int, sql: str) -> MigrationFile:
    ref = MigrationRef(_version(n), f"f{n}", Path(f"{_version(n)}_f{n}.sql"))
    return MigrationFile(ref, tuple(split_statements(sql)), sha256="-")


@pytest.mark.parametrize("stream", [True, False])
def test_a_pre_commit_check_that_raises_rolls_its_file_back(db_conn: psycopg.Connection[Any], stream: bool) -> None:
    ensure_history(db_conn)
    files = [_file(n, f"create table public.h{n} (id int);\n") for n in range(1, 6)]

    def check(file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        return [("SELECT CASE WHEN %s = %s THEN 1 / 0 END", (file.version, _version(3)))]

    outcome = apply_pending(
        db_conn, files, transaction="per-file", lock_timeout=5, statement_timeout=60,
        display=lambda f: f.ref.path.name, server_major=15 if stream else 12, pre_commit=[check],
    )
    assert [r.status for r in outcome.results] == ["applied", "applied", "failed", "skipped", "skipped"]
    assert {r.path for r in outcome.results[:3]} == {"pipeline" if stream else "single"}
    assert outcome.committed == [_version(1), _version(2)]
    assert outcome.results[2].error is not None and outcome.results[2].error.sqlstate == "22012"
    tables = db_conn.execute("SELECT count(*) FROM pg_tables WHERE tablename ~ '^h[0-9]$'").fetchone()
    assert tables == (2,)


# ------------------------------------------------------------- signals, lost connections

SLOW_FILES = 40


def _slow_project(project: Project) -> None:
    project.query("CREATE SEQUENCE public.probe")
    for n in range(1, SLOW_FILES + 1):
        project.add(f"{_version(n)}_s{n}.sql",
                    f"create table public.t{n} (id int);\nselect nextval('public.probe'), pg_sleep(0.25);\n")


def _start(project: Project) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "guard", "run"], cwd=project.root, env=project.env(),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL,
    )


def _wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not reached in time")


def _some_committed(project: Project) -> bool:
    return len(project.history()) >= 3


def _check_exact(project: Project, report: dict[str, Any]) -> list[str]:
    """The history, the journal, the report and the tables agree on one committed prefix."""
    history = project.history()
    count = len(history)
    assert 3 <= count < SLOW_FILES
    assert history == [_version(n) for n in range(1, count + 1)]
    assert _journal_committed(project) == history
    assert report["restore_plan"]["committed_versions"] == history
    statuses = [m["status"] for m in report["migrations"]]
    assert statuses == ["applied"] * count + ["failed"] + ["skipped"] * (SLOW_FILES - count - 1)
    assert _tables(project) == count
    # The file in flight ran at most up to its sleep; none after it started.
    assert _probe(project) in (count, count + 1)
    busy = project.query("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep' "
                         "AND pid <> pg_backend_pid() AND state = 'active'")
    assert busy == [(0,)]
    return history


def test_sigterm_during_a_stream_cancels_it_and_reports_the_exact_committed_set(ready: Project) -> None:
    _slow_project(ready)
    proc = _start(ready)
    _wait_for(lambda: _some_committed(ready))
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - started < 10
    assert proc.returncode == 4, out + err
    report = json.loads((ready.root / "guard-report.json").read_text())
    assert report["interrupted"] == "SIGTERM" and report["status"] == "failed_partially_applied"
    history = _check_exact(ready, report)
    assert ready.query("SELECT status, committed FROM guard.runs") == [("interrupted", history)]


def test_backend_terminated_during_a_stream_settles_from_the_history(ready: Project) -> None:
    _slow_project(ready)
    proc = _start(ready)
    _wait_for(lambda: _some_committed(ready))
    ready.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                # Its wait event, not its text: a stream's text may be longer than
                # track_activity_query_size (the tripwire's snapshot travels first).
                "WHERE application_name LIKE 'guard run %%' AND wait_event = 'PgSleep' "
                "AND pid <> pg_backend_pid()")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 4, out + err
    report = json.loads((ready.root / "guard-report.json").read_text())
    assert report["status"] == "failed_partially_applied"
    history = _check_exact(ready, report)
    assert ready.query("SELECT status, committed FROM guard.runs") == [("failed_partially_applied", history)]


def _three_files_applied(project: Project, lock_retries: int) -> None:
    """Three one-table files applied with exit 0: streamed (``lock_retries`` 0) or one at a time."""
    for n in (1, 2, 3):
        project.add(f"{_version(n)}_f{n}.sql", f"create table public.t{n} (id int);\n")
    if lock_retries:
        (project.root / "guard.yml").write_text(f"migrations:\n  lock_retries: {lock_retries}\n")
    result = project.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    assert {m["path"] for m in result.report["migrations"]} == ({"pipeline"} if not lock_retries else {"single"})


@pytest.mark.parametrize("lock_retries", [0, 2])  # streamed, and one file at a time
def test_guards_own_statements_ignore_operators_on_the_databases_search_path(ready: Project, lock_retries: int) -> None:
    """RESET ALL gives back the database's default search_path, where a schema listed before
    pg_catalog may define its own ``>=`` for integers: guard's session reset must not call it.
    The operator records every call in a table; every call would be guard's own."""
    ready.query("CREATE SCHEMA trap; CREATE TABLE trap.calls (n int); "
                "CREATE FUNCTION trap.ge(int, int) RETURNS boolean LANGUAGE plpgsql AS "
                "$$BEGIN INSERT INTO trap.calls VALUES (1); RETURN $1 OPERATOR(pg_catalog.>=) $2; END$$; "
                "CREATE OPERATOR trap.>= (LEFTARG = int, RIGHTARG = int, FUNCTION = trap.ge)")
    name = ready.query("SELECT current_database()")[0][0]
    ready.query(f'ALTER DATABASE "{name}" SET search_path = trap, pg_catalog, public')
    _three_files_applied(ready, lock_retries)
    assert _tables(ready) == 3
    assert ready.query("SELECT count(*) FROM trap.calls") == [(0,)]


def _apply_watching_texts(conn: psycopg.Connection[Any], files: list[MigrationFile],
                          building: Callable[[Sequence[MigrationFile]], None]) -> Any:
    """apply_pending of ``files`` (streamed: PostgreSQL 15), calling ``building`` with each
    stream's files just before its text is built."""
    from guard.migrations import pipeline

    real = pipeline._stream_text

    def watched(run: Any, chunk: Sequence[MigrationFile]) -> Any:
        building(chunk)
        return real(run, chunk)

    pipeline._stream_text = watched
    try:
        return apply_pending(conn, files, transaction="per-file", lock_timeout=5, statement_timeout=60,
                             display=lambda f: f.ref.path.name, server_major=15)
    finally:
        pipeline._stream_text = real


def test_streams_after_the_first_are_built_while_the_one_before_runs(db_conn: psycopg.Connection[Any]) -> None:
    """A short first stream, then full ones: each next text is built after the one before has
    been sent and before its answer is read (apply_stream's ``meanwhile``)."""
    from guard.migrations import pipeline

    ensure_history(db_conn)
    files = [_file(n, f"create table public.b{n} (id int);\n") for n in range(1, 301)]
    built: list[tuple[int, bool]] = []

    def building(chunk: Sequence[MigrationFile]) -> None:
        # Between send and the answer the connection is busy: libpq says ACTIVE.
        built.append((len(chunk), db_conn.pgconn.transaction_status == psycopg.pq.TransactionStatus.ACTIVE))

    outcome = _apply_watching_texts(db_conn, files, building)
    assert built == [(pipeline.STREAM_FIRST_FILES, False), (pipeline.STREAM_FILES, True),
                     (300 - pipeline.STREAM_FIRST_FILES - pipeline.STREAM_FILES, True)]
    assert len(outcome.committed) == 300 and {r.path for r in outcome.results} == {"pipeline"}
    assert db_conn.execute("SELECT count(*) FROM supabase_migrations.schema_migrations").fetchone() == (300,)


def test_a_signal_while_the_next_stream_is_built_cancels_the_one_running(db_conn: psycopg.Connection[Any]) -> None:
    """Ctrl-C lands while the client builds the second stream's text and the first runs on
    the server: that one is cancelled there, the files it committed are exactly those the
    history holds, and nothing of the second stream runs."""
    from guard.migrations import pipeline

    ensure_history(db_conn)
    db_conn.execute("CREATE SEQUENCE public.probe")
    count = pipeline.STREAM_FIRST_FILES + 10
    files = [_file(n, f"create table public.s{n} (id int);\nselect nextval('public.probe'), pg_sleep(0.1);\n")
             for n in range(1, count + 1)]
    calls: list[int] = []

    def building(chunk: Sequence[MigrationFile]) -> None:
        calls.append(len(chunk))
        if len(calls) == 2:  # the first stream is on the server now
            time.sleep(0.35)  # a few of its files commit first
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the signal arrives here, at the latest

    outcome = _apply_watching_texts(db_conn, files, building)
    assert calls == [pipeline.STREAM_FIRST_FILES, 10]
    assert outcome.interrupted == "SIGINT"
    history = [r[0] for r in db_conn.execute(
        "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version").fetchall()]
    assert 1 <= len(history) < pipeline.STREAM_FIRST_FILES
    assert outcome.committed == history == [_version(n) for n in range(1, len(history) + 1)]
    statuses = [r.status for r in outcome.results]
    assert statuses == ["applied"] * len(history) + ["failed"] + ["skipped"] * (count - len(history) - 1)
    # The file in flight ran at most up to its sleep; none after it started.
    last, called = db_conn.execute("SELECT last_value, is_called FROM public.probe").fetchone()  # type: ignore[misc]
    assert (int(last) if called else 0) in (len(history), len(history) + 1)
    assert db_conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone() == (0,)


@pytest.mark.parametrize("made_by", ["before", "release"])
@pytest.mark.parametrize("lock_retries", [0, 1])  # streamed, and one file at a time
def test_a_rule_on_the_history_table_works_as_one_file_at_a_time(ready: Project, made_by: str, lock_retries: int) -> None:
    """A DO ALSO rule on the history table makes its INSERT two queries, and PostgreSQL refuses
    a WITH in such a query: a streamed file's records then go as two statements, as they do
    one file at a time. The rule may be there before the run or made by a file of it."""
    rule = ("CREATE RULE audit AS ON INSERT TO supabase_migrations.schema_migrations "
            "DO ALSO INSERT INTO public.audit VALUES (NEW.version)")
    from guard.migrations.history import CREATE_HISTORY

    ready.query("CREATE TABLE public.audit (version text)")
    if made_by == "before":
        for statement in CREATE_HISTORY:
            ready.query(statement)
        ready.query(rule)
    else:
        ready.add(f"{_version(0)}_rule.sql", rule + ";\n")
    _three_files_applied(ready, lock_retries)
    versions = [_version(n) for n in range(0 if made_by == "release" else 1, 4)]
    assert ready.history() == versions and _journal_committed(ready) == versions
    # The rule's own file is audited too: its history row comes after its statements.
    assert sorted(r[0] for r in ready.query("SELECT version FROM public.audit")) == versions
    assert _tables(ready) == 3


def test_a_signal_while_the_stream_is_sent_cancels_it_and_settles_from_the_history(
    db_conn: psycopg.Connection[Any],
) -> None:
    """Ctrl-C lands while the stream is being sent (a big stream, a busy server): psycopg
    cancels on the server and finishes sending, but reads no answer. The answer must still be
    read before guard asks the history what committed, and nothing of the stream may go on
    running: the outcome names exactly the files the history holds."""
    from psycopg import generators

    ensure_history(db_conn)
    db_conn.execute("CREATE SEQUENCE public.probe")
    count = 12
    files = [_file(n, f"create table public.s{n} (id int);\nselect nextval('public.probe'), pg_sleep(0.1);\n")
             for n in range(1, count + 1)]
    real, sent = generators.send, []

    def send_then_signal(pgconn: Any) -> Any:
        result = yield from real(pgconn)
        sent.append(1)
        if len(sent) > 1:
            return result
        time.sleep(0.35)  # a few files commit first
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the signal arrives here, at the latest
        return result

    generators.send = send_then_signal  # type: ignore[assignment]
    try:
        outcome = apply_pending(db_conn, files, transaction="per-file", lock_timeout=5, statement_timeout=60,
                                display=lambda f: f.ref.path.name, server_major=15)
    finally:
        generators.send = real  # type: ignore[assignment]
    assert outcome.interrupted == "SIGINT"
    time.sleep(1.5)  # anything still running on the server would commit more meanwhile
    history = [r[0] for r in db_conn.execute(
        "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version").fetchall()]
    assert 1 <= len(history) < count
    assert outcome.committed == history == [_version(n) for n in range(1, len(history) + 1)]
    statuses = [r.status for r in outcome.results]
    assert statuses == ["applied"] * len(history) + ["failed"] + ["skipped"] * (count - len(history) - 1)
    assert db_conn.execute("SELECT count(*) FROM pg_stat_activity WHERE wait_event = 'PgSleep'").fetchone() == (0,)


def test_a_connection_ended_while_the_next_stream_is_built_leaves_every_file_of_it_unknown(
    db_conn: psycopg.Connection[Any], db_url: str,
) -> None:
    """The server ends guard's session (pg_terminate_backend) while the client builds the
    second stream's text: the first stream's files are "unknown" until the history, read
    after reconnecting, says (run/apply.py reconcile); what the history holds is a prefix,
    and nothing of the second stream ran."""
    from guard.migrations import pipeline

    ensure_history(db_conn)
    db_conn.execute("CREATE SEQUENCE public.probe")
    count = pipeline.STREAM_FIRST_FILES + 10
    files = [_file(n, f"create table public.k{n} (id int);\nselect nextval('public.probe'), pg_sleep(0.1);\n")
             for n in range(1, count + 1)]
    real, calls = pipeline._stream_text, []
    pid = db_conn.info.backend_pid

    def building(run: Any, chunk: Any) -> Any:
        calls.append(len(chunk))
        if len(calls) == 2:  # the first stream is on the server now
            time.sleep(0.35)
            with psycopg.connect(db_url, autocommit=True) as other:
                other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        return real(run, chunk)

    pipeline._stream_text = building
    try:
        outcome = apply_pending(db_conn, files, transaction="per-file", lock_timeout=5, statement_timeout=60,
                                display=lambda f: f.ref.path.name, server_major=15)
    finally:
        pipeline._stream_text = real
    assert outcome.connection_lost and outcome.unknown and outcome.committed == []
    statuses = [r.status for r in outcome.results]
    first = pipeline.STREAM_FIRST_FILES
    assert statuses == ["unknown"] * first + ["skipped"] * (count - first)
    with psycopg.connect(db_url, autocommit=True) as conn:
        history = [r[0] for r in conn.execute(
            "SELECT version FROM supabase_migrations.schema_migrations ORDER BY version").fetchall()]
        assert 1 <= len(history) < first and history == [_version(n) for n in range(1, len(history) + 1)]
        last, called = conn.execute("SELECT last_value, is_called FROM public.probe").fetchone()  # type: ignore[misc]
        assert (int(last) if called else 0) in (len(history), len(history) + 1)


@pytest.mark.parametrize("lock_retries", [0, 1])  # streamed, and one file at a time
def test_a_temp_table_with_deferred_checks_pending_applies_as_one_file_at_a_time(ready: Project, lock_retries: int) -> None:
    """A file leaves deferred constraint checks pending on a temp table: one file at a time
    they run at its COMMIT, before the session reset drops the table; streamed, the reset
    runs before the COMMIT and DISCARD TEMP refused the table (55006). A violation still
    fails its file (23503), the file before it committed, the one after it never run."""
    temp = ("create temp table tp (id int primary key);\n"
            "create temp table tc (p int references tp deferrable initially deferred);\n"
            "insert into tc values ({p});\ninsert into tp values (1);\ninsert into public.a select p from tc;\n")
    ready.add(f"{_version(1)}_a.sql", "create table public.a (id int);\n")
    ready.add(f"{_version(2)}_b.sql", temp.format(p=1))
    ready.add(f"{_version(3)}_c.sql", "create table public.c (id int);\n")
    ready.add(f"{_version(4)}_d.sql", temp.format(p=2))
    ready.add(f"{_version(5)}_e.sql", "create table public.e (id int);\n")
    if lock_retries:
        (ready.root / "guard.yml").write_text(f"migrations:\n  lock_retries: {lock_retries}\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None
    migrations = result.report["migrations"]
    assert [m["status"] for m in migrations] == ["applied"] * 3 + ["failed", "skipped"]
    assert {m["path"] for m in migrations[:4]} == ({"pipeline"} if not lock_retries else {"single"})
    assert migrations[3]["error"]["sqlstate"] == "23503"
    assert ready.history() == [_version(n) for n in (1, 2, 3)] == _journal_committed(ready)
    assert ready.query("SELECT id FROM public.a") == [(1,)] and not ready.table_exists("public.e")
