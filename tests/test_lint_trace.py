"""The lock trace: what the server shows a statement took, scanned and rewrote (guard.lint.trace),
and `guard lint --trace --shadow` putting it beside the static verdict."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from guard.embedded import Cluster
from guard.lint.trace import trace_statements
from tests.support import Project

ROWS = """
create domain positive_int as int check (value > 0);
create table public.t (id int primary key, note text);
create table public.u (id int primary key);
insert into public.t select g, 'n' from generate_series(1, 500) g;
insert into public.u select g from generate_series(1, 500) g;
"""


def test_trace_shows_locks_rewrites_and_scans(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute(ROWS)
    plain, volatile, index, check = trace_statements(db_conn, [
        "alter table public.t add column a text",
        "alter table public.t add column b uuid default gen_random_uuid()",
        "create index t_note on public.t (note)",
        "alter table public.u add constraint pos check (id > 0)",
    ])
    assert plain.locks == {"public.t": "ACCESS EXCLUSIVE"} and not plain.rewritten and not plain.scanned
    assert plain.blocking_work == ()
    assert volatile.rewritten == ("public.t",) and volatile.blocking_work == ("public.t",)
    assert index.scanned == ("public.t",) and not index.rewritten
    assert check.scanned == ("public.u",) and check.locks["public.u"] == "ACCESS EXCLUSIVE"
    # rolled back: nothing of it stays
    assert db_conn.execute("SELECT count(*) FROM pg_attribute WHERE attrelid = 'public.t'::regclass "
                           "AND attname IN ('a', 'b')").fetchone() == (0,)


def test_a_lock_taken_earlier_in_the_transaction_is_held_while_validate_scans(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute(ROWS)
    add, validate = trace_statements(db_conn, [
        "alter table public.t add constraint fk foreign key (id) references public.u (id) not valid",
        "alter table public.t validate constraint fk",
    ])
    assert add.blocking_work == () and add.locks["public.t"] == "SHARE ROW EXCLUSIVE"
    assert "public.t" in validate.blocking_work  # the scan runs under the NOT VALID statement's lock
    alone = trace_statements(db_conn, ["alter table public.t add constraint fk foreign key (id) "
                                       "references public.u (id) not valid"], commit=True)
    assert alone[0].error is None
    later = trace_statements(db_conn, ["alter table public.t validate constraint fk"])[0]
    assert later.scanned and later.blocking_work == ()  # SHARE UPDATE EXCLUSIVE: writers go on


def test_materialized_views_count_only_locks_that_block_readers(db_conn: psycopg.Connection[Any]) -> None:
    """REFRESH ... CONCURRENTLY holds EXCLUSIVE (nobody but REFRESH writes a materialized view, and
    readers go on): not blocking work. WITH NO DATA empties it: the trace says so, not a traceback."""
    db_conn.execute(ROWS + "create materialized view public.mv as select id, note from public.t;\n"
                    "create unique index mv_id on public.mv (id);")
    concurrent, plain, empty = trace_statements(db_conn, [
        "refresh materialized view concurrently public.mv",
        "refresh materialized view public.mv",
        "refresh materialized view public.mv with no data",
    ])
    assert concurrent.locks["public.mv"] == "EXCLUSIVE" and concurrent.scanned and concurrent.blocking_work == ()
    assert plain.blocking_work == ("public.mv",)
    assert empty.error is None and "public.mv" in empty.destroyed


def test_destruction_shows_in_the_trace(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute(ROWS)
    for statement in ("truncate public.t", "delete from public.t where id < 3", "drop table public.u",
                      "alter table public.t drop column note", "update public.t set note = 'x' where id = 1"):
        result = trace_statements(db_conn, [statement])[0]
        assert result.error is None and result.destroyed, (statement, result)
    harmless = trace_statements(db_conn, ["insert into public.t values (9999, 'x')", "select count(*) from public.t"])
    assert [r.destroyed for r in harmless] == [(), ()]


def test_a_failing_statement_ends_the_trace(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute(ROWS)
    results = trace_statements(db_conn, ["alter table public.t add column c int", "select 1/0", "select 2"])
    assert [r.error is None for r in results] == [True, False]
    assert results[1].sqlstate == "22012"
    assert db_conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    refused = trace_statements(db_conn, ["create index concurrently i on public.t (id)"])[0]
    assert refused.sqlstate == "25001"


@pytest.fixture
def shadow_url(pg_cluster: Cluster, db_url: str) -> Iterator[str]:
    name = db_url.rsplit("/", 1)[1] + "_sh"
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_cluster.url(name)
    finally:
        with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_guard_lint_trace_shows_locks_and_reports_what_the_rules_missed(project: Project, shadow_url: str) -> None:
    project.add("20240101000000_base.sql", ROWS)
    # SQL a DO block builds at run time forces a rewrite that no static rule can see: the trace
    # catches it, and says so as a finding.
    project.add("20240102000000_cols.sql", "do $$ begin execute format('alter table public.t add column p uuid "
                "default %s', 'gen_random_uuid()'); end $$;\ncreate index t_note on public.t (note);\n")
    text = project.guard("lint", "--database-url", "", "--trace", "--shadow", shadow_url)
    assert "20240102000000_cols.sql:1: trace: ACCESS EXCLUSIVE on public.t; rewrote public.t" in text.stdout
    # the index is flagged by its rule; the DO block's rewrite only by the trace
    traced = [line for line in text.stdout.splitlines() if "warning trace:" in line]
    assert len(traced) == 1 and "_cols.sql:1:" in traced[0] and "rewritten" in traced[0], text.stdout
    # The trace applies the files to the shadow (as check's dry run does): a second run needs a
    # fresh shadow; an embedded one is thrown away afterwards.
    data = json.loads(project.guard("lint", "--database-url", "", "--format", "json", "--trace",
                                    "--shadow", "embedded").stdout)
    assert "trace" in {f["rule"] for f in data["findings"]}
    assert any(t["trace"] and t["trace"]["rewritten"] == ["public.t"] for t in data["traces"])
    assert project.query("SELECT to_regclass('public.t')") == [(None,)]  # the target is untouched


def test_trace_flags_need_each_other_and_refuse_the_target_as_shadow(project: Project) -> None:
    project.add("20240101000000_a.sql", "select 1;\n")
    assert project.guard("lint", "--trace").code == 2
    assert project.guard("lint", "--shadow", "embedded").code == 2
    same = project.guard("lint", "--trace", "--shadow", project.db_url)
    assert same.code == 2 and "target database itself" in same.stderr
    assert "pw-" not in same.stderr


def test_trace_reports_a_statement_failing_on_the_shadow_without_a_traceback(project: Project, shadow_url: str) -> None:
    project.add("20240101000000_a.sql", "create table public.t (id int);\n")
    project.add("20240102000000_b.sql", "create index concurrently on public.t (id);\ncreate index concurrently on public.nope (id);\n")
    project.add("20240103000000_c.sql", "select 1/0;\n")
    result = project.guard("lint", "--database-url", "", "--trace", "--shadow", shadow_url)
    assert "Traceback" not in result.output
    assert "_b.sql:1: trace: runs outside a transaction" in result.stdout
    assert "_b.sql:2: trace: failed on the shadow: relation \"public.nope\" does not exist" in result.stdout
    assert "_c.sql:1: trace" not in result.stdout  # the trace stops at the first failure
    bad = project.guard("lint", "--trace", "--shadow", "not-a-url")
    assert bad.code == 2 and "--shadow" in bad.stderr
