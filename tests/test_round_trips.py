"""Round trips: how many times guard waits for the server (each costs the network's latency
against a hosted database), and the pipelined helpers that cut them keep transaction
semantics (guard.db.fetch_all, pipelined_transaction, committed).

Counted through bench/network.py's proxy on loopback: a count, not a time, so it does not
depend on the machine's speed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from guard.db import committed, fetch_all, pipelined_transaction
from tests.support import Project, Result, clean_env, run_guard

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from network import DelayProxy  # noqa: E402

# Measured (bench/network.py's count of the same run): 67 before the round-trip cuts of session
# 6, 33 after them, 30 after session 7's (the backup gate's clock, the journal's state and the
# record tables' facts each ride another read), 31 with the read-back of the committed files'
# rows after the last COMMIT (history.rows_gone_after_commit); this test's run counts 33. A
# change that adds waits to every run shows here; raise it only with a reason.
ONE_FILE_BUDGET = 34


@pytest.fixture
def proxy(db_url: str) -> Iterator[DelayProxy]:
    info = conninfo_to_dict(db_url)
    server = DelayProxy((str(info.get("hostaddr") or info.get("host") or "127.0.0.1"), int(str(info["port"]))), 0.0)
    try:
        yield server
    finally:
        server.close()


def _run_through(proxy: DelayProxy, project: Project) -> Result:
    url = make_conninfo(project.db_url, host="127.0.0.1", hostaddr="127.0.0.1", port=str(proxy.port),
                        sslmode="disable")
    return run_guard("run", cwd=project.root, env=clean_env(GUARD_DATABASE_URL=url))


@pytest.fixture
def inited(ready: Project) -> Project:
    """As a project that uses guard: `guard init` has made its tables (a first run makes them)."""
    result = ready.guard("init")
    assert result.code == 0, result.stderr
    return ready


def test_a_one_file_run_waits_for_the_server_at_most_its_budget(inited: Project, proxy: DelayProxy) -> None:
    ready = inited
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    proxy.reset()
    result = _run_through(proxy, ready)
    counts = proxy.reset()
    assert result.code == 0, result.stderr
    assert result.report["status"] == "applied" and ready.history() == ["20240101000000"]
    assert counts.connections == 1
    assert 10 < counts.round_trips <= ONE_FILE_BUDGET, counts


def test_many_files_cost_a_round_trip_per_stream_not_per_file(inited: Project, proxy: DelayProxy) -> None:
    ready = inited
    for i in range(60):
        ready.add(f"{20240101000000 + i}_t{i}.sql", f"create table public.t{i} (id int);\n")
    proxy.reset()
    result = _run_through(proxy, ready)
    trips = proxy.reset().round_trips
    assert result.code == 0, result.stderr
    assert len(ready.history()) == 60
    # psql's script would wait 4 times a file (BEGIN, the file, the history row, COMMIT): 240.
    assert trips <= ONE_FILE_BUDGET + 6, trips


def test_fetch_all_returns_each_querys_rows_in_order_and_sees_the_transaction(db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.x (id int)")
    with pipelined_transaction(db_conn):
        db_conn.execute("INSERT INTO public.x VALUES (1), (2)")
        rows = fetch_all(db_conn, [("SELECT count(*) FROM public.x", None), ("SELECT %s::int + 1", (41,)),
                                   ("SELECT id FROM public.x ORDER BY id", None)])
    assert rows == [[(2,)], [(42,)], [(1,), (2,)]]
    assert fetch_all(db_conn, []) == []


def test_pipelined_transaction_rolls_back_on_a_server_error(db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.x (id int)")
    with pytest.raises(psycopg.errors.DivisionByZero):
        with pipelined_transaction(db_conn):
            db_conn.execute("INSERT INTO public.x VALUES (1)")
            fetch_all(db_conn, [("SELECT 1 / 0", None)])
    assert db_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert db_conn.execute("SELECT count(*) FROM public.x").fetchone() == (0,)


def test_pipelined_transaction_rolls_back_on_a_python_error(db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.x (id int)")
    with pytest.raises(KeyError):
        with pipelined_transaction(db_conn):
            db_conn.execute("INSERT INTO public.x VALUES (1)")
            raise KeyError("boom")
    assert db_conn.execute("SELECT count(*) FROM public.x").fetchone() == (0,)


def test_pipelined_transaction_raises_a_failing_commit_and_keeps_nothing(db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.p (id int PRIMARY KEY)")
    db_conn.execute("CREATE TABLE public.c (p int REFERENCES public.p DEFERRABLE INITIALLY DEFERRED)")
    with pytest.raises(psycopg.errors.ForeignKeyViolation):
        with pipelined_transaction(db_conn):
            db_conn.execute("INSERT INTO public.c VALUES (7)")  # checked at COMMIT
    assert db_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert db_conn.execute("SELECT count(*) FROM public.c").fetchone() == (0,)


def test_inside_a_callers_transaction_the_helpers_join_it(db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.x (id int)")
    with pytest.raises(psycopg.errors.UniqueViolation):
        with db_conn.transaction():
            with pipelined_transaction(db_conn):
                db_conn.execute("INSERT INTO public.x VALUES (1)")
            assert committed(db_conn, "INSERT INTO public.x VALUES (2) RETURNING id") == (2,)
            db_conn.execute("CREATE UNIQUE INDEX ON public.x ((1))")  # fails: two rows
    assert db_conn.execute("SELECT count(*) FROM public.x").fetchone() == (0,)


def test_committed_is_one_statement_committed_on_return(db_url: str, db_conn: Any) -> None:
    db_conn.execute("CREATE TABLE public.x (id int)")
    assert committed(db_conn, "INSERT INTO public.x VALUES (5) RETURNING id") == (5,)
    assert committed(db_conn, "INSERT INTO public.x VALUES (6)") is None
    with psycopg.connect(db_url, autocommit=True) as other:
        assert other.execute("SELECT array_agg(id ORDER BY id) FROM public.x").fetchone() == ([5, 6],)


# ------------------------------------------------------------------ what a migration does to guard's own tables


def _catalog_after(project: Project) -> dict[str, Any]:
    rows = project.query("SELECT catalog FROM guard.run_catalogs WHERE phase = 'after'")
    assert len(rows) == 1, rows
    return dict(rows[0][0])


def test_a_migration_that_drops_guard_run_rows_still_gets_its_after_catalog(inited: Project) -> None:
    """The after-catalog remakes guard.run_rows inside its pipelined transaction, where a query
    string of two statements is refused: each statement goes alone."""
    inited.query("CREATE TABLE public.items (id int PRIMARY KEY, v int)")
    inited.add("20240101000000_t.sql", "DROP TABLE guard.run_rows;\nALTER TABLE public.items ALTER v TYPE bigint;\n")
    result = inited.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["warnings"] == []
    assert inited.table_exists("guard.run_rows")
    assert "col:" in " ".join(_catalog_after(inited)["parts"])


def test_the_after_catalog_counts_the_row_hashes_it_recorded(inited: Project) -> None:
    """after.parts holds how many rows each part recorded; in pipeline mode a cursor's rowcount
    is -1 until its results are read, so the count comes from the server."""
    inited.query("CREATE TABLE public.items (id int PRIMARY KEY, v text)")
    inited.query("INSERT INTO public.items SELECT g, 'x' FROM generate_series(1, 7) g")
    inited.add("20240101000000_t.sql",
               "UPDATE public.items SET v = 'y' WHERE id <= 3;\nALTER TABLE public.items ALTER v TYPE varchar(10);\n")
    result = inited.guard("run")
    assert result.code == 0, result.output
    parts = _catalog_after(inited)["parts"]
    assert sorted(v for k, v in parts.items() if k.startswith("rows:")) == [3], parts
    assert sorted(v for k, v in parts.items() if k.startswith("col:")) == [7], parts
    assert inited.query("SELECT count(*) FROM guard.run_rows")[0][0] == 10


# ------------------------------------------------------------------ a role with fewer rights than a superuser

ROLE_PASSWORD = "rt-migrator-pw-5521"


def _limited_role_url(ready: Project, *grants: str) -> str:
    """A login role that owns nothing but may migrate schema public; ``grants`` run first (as
    the superuser, in the test's database: function privileges are per database)."""
    ready.query("DO $$ BEGIN CREATE ROLE rt_migrator LOGIN PASSWORD 'rt-migrator-pw-5521'; "
                "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    db = ready.query("SELECT current_database()")[0][0]
    for statement in (f'GRANT ALL ON DATABASE "{db}" TO rt_migrator', "GRANT ALL ON SCHEMA public TO rt_migrator",
                      "GRANT ALL ON ALL TABLES IN SCHEMA public TO rt_migrator",
                      "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO rt_migrator",
                      "ALTER TABLE public.backup_logs OWNER TO rt_migrator", *grants):
        ready.query(statement)
    info = conninfo_to_dict(ready.db_url)
    return make_conninfo(ready.db_url, user="rt_migrator", password=ROLE_PASSWORD, dbname=str(info["dbname"]))


@pytest.mark.parametrize("point_granted", [False, True])
def test_a_role_without_pg_current_wal_lsn_still_runs_with_the_clock_as_its_target(
        ready: Project, point_granted: bool) -> None:
    """EXECUTE on pg_current_wal_lsn revoked: PostgreSQL refuses any statement naming it (a CASE
    branch never taken included), so the restore target is the clock alone, and the named
    point is still made where the role may make one."""
    grants = ["REVOKE EXECUTE ON FUNCTION pg_current_wal_lsn() FROM PUBLIC"]
    if point_granted:
        grants.append("GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO rt_migrator")
    url = _limited_role_url(ready, *grants)
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    result = ready.guard("run", "--database-url", url)
    assert result.code == 0, result.output
    assert result.report is not None and ready.history() == ["20240101000000"]
    target = result.report["restore_target"]
    assert target["lsn"] is None and target["timestamp"]
    if point_granted:
        assert target["restore_point"] == f"guard-{result.report['run_id']}" and target["restore_point_note"] is None
    else:
        assert target["restore_point"] is None and "pg_create_restore_point" in target["restore_point_note"]
    assert ROLE_PASSWORD not in result.output


def test_a_role_granted_pg_create_restore_point_gets_its_named_point(ready: Project) -> None:
    url = _limited_role_url(ready, "GRANT EXECUTE ON FUNCTION pg_create_restore_point(text) TO rt_migrator")
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    result = ready.guard("run", "--database-url", url)
    assert result.code == 0, result.output
    assert result.report is not None
    target = result.report["restore_target"]
    assert target["restore_point"] == f"guard-{result.report['run_id']}" and target["lsn"]


# ------------------------------------------------------------------ the report's JSON form in one walk


def _mask_after_json(value: Any, mask: Any) -> Any:
    """What render did before mask_values took the JSON form itself: json.dumps(default=str),
    json.loads, then every string masked."""
    import json

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            return mask(v)
        if isinstance(v, dict):
            return {mask(k): walk(x) for k, x in v.items()}
        if isinstance(v, list):
            return [walk(x) for x in v]
        return v

    return walk(json.loads(json.dumps(value, default=str)))


def test_mask_values_matches_the_json_round_trip_for_odd_values_and_keys() -> None:
    import datetime as dt
    import enum
    import json
    import math
    import uuid
    from collections import OrderedDict, namedtuple
    from decimal import Decimal
    from pathlib import PurePosixPath

    from guard.report.mask import Masker, mask_values

    secret = 'pä"ss\\wörd-9Zq'
    masker = Masker([secret])

    class Kind(str, enum.Enum):
        A = secret

    class Level(enum.IntEnum):
        HIGH = 3

    class Text(str):
        def __str__(self) -> str:
            return "not what json writes"

    class Odd:
        def __str__(self) -> str:
            return f"odd({secret})"

    Pair = namedtuple("Pair", "a b")
    value = {
        "bytes": secret.encode(), "error": ValueError(f"connect failed: {secret}"), "set": frozenset([secret]),
        "path": PurePosixPath("/x") / secret, "decimal": Decimal("NaN"), "when": dt.datetime(2024, 1, 2, 3, 4, 5),
        "uuid": uuid.UUID(int=7), "odd": Odd(), "pair": Pair(secret, (1, [2.5, None])), "enum": Kind.A,
        "level": Level.HIGH, "text": Text(f"x{secret}"), "floats": [math.inf, -0.0, 1e300],
        "ordered": OrderedDict([(secret, 1)]),
        float("inf"): 1, float("nan"): 2, -1.5: 3, True: 4, None: 5, 10**30: 6, Level.HIGH: 7, Kind.A: 8,
    }
    got, want = mask_values(value, masker), _mask_after_json(value, masker)
    assert json.dumps(got) == json.dumps(want)
    text = json.dumps(got)
    for form in (secret, json.dumps(secret)[1:-1], secret.encode("unicode_escape").decode()):
        assert form not in text and form not in masker(text)


# ------------------------------------------------------------------ the setting that rides a pooler probe


def test_the_setup_riding_a_probe_is_never_left_on_a_pooled_server_session(db_url: str, pg_cluster: Any) -> None:
    """Behind a transaction-mode pooler guard refuses; the session setting it sends with a
    probe must not have landed first on a server connection the pooler hands to others."""
    from guard.db import refuse_if_transaction_pooled
    from guard.errors import UsageError
    from tests.conftest import TEST_PASSWORD
    from tests.pooler import TransactionPooler

    setup = "SELECT set_config('application_name', 'rt-leaked-setting', false)"
    pooler = TransactionPooler(pg_cluster.port, TEST_PASSWORD)
    try:
        url = pooler.url(str(conninfo_to_dict(db_url)["dbname"]))
        with psycopg.connect(url, autocommit=True, prepare_threshold=None) as conn:
            with pytest.raises(UsageError, match="transaction-mode pooler"):
                refuse_if_transaction_pooled(conn, url, setup)
            with psycopg.connect(db_url, autocommit=True) as direct:
                leaked = direct.execute("SELECT count(*) FROM pg_stat_activity "
                                        "WHERE application_name = 'rt-leaked-setting'").fetchone()
            assert leaked == (0,)
    finally:
        pooler.close()


def test_the_setup_rides_a_direct_connections_probe(db_url: str) -> None:
    from guard.db import connect
    from guard.migrations.session import CLIENT_CHECK

    conn = connect(db_url, application_name="rt", setup=CLIENT_CHECK)
    try:
        assert conn.execute("SHOW client_connection_check_interval").fetchone() != ("0",)
    finally:
        conn.close()


def test_the_servers_clock_is_estimated_from_the_facts_never_behind_it(db_conn: Any) -> None:
    """The backup gate judges ages by ServerFacts.server_now, not a clock read of its own: the
    estimate counts the time since the facts were asked, and is never behind the server's
    clock (a backup never looks younger than it is)."""
    import time

    from guard.db import server_facts

    facts = server_facts(db_conn)
    for pause in (0.0, 0.3):
        time.sleep(pause)
        actual = db_conn.execute("SELECT clock_timestamp()").fetchone()[0]
        estimate = facts.server_now()  # after the server read its clock: must not be earlier
        assert estimate >= actual, (estimate, actual)
        assert (estimate - actual).total_seconds() < 0.25, (estimate, actual)
    assert (facts.server_now() - facts.now).total_seconds() >= 0.3
