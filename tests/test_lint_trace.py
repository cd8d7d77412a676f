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
from tests.support import Project, clean_env, run_guard

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
    project.add("20240102000000_cols.sql", "do $$ declare d text; begin select 'gen_random_uuid()' into d; execute "
                "format('alter table public.t add column p uuid default %s', d); end $$;\n"
                "create index t_note on public.t (note);\n")
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


def test_trace_of_named_files_first_applies_the_files_before_them(project: Project, shadow_url: str) -> None:
    """The static verdict of one file reads the earlier files as applied; the trace must too (it
    traced the file alone, which failed on "relation does not exist" and traced nothing)."""
    project.add("20240101000000_base.sql", ROWS)
    project.add("20240102000000_idx.sql", "create index t_note on public.t (note);\n")
    project.add("20240103000000_later.sql", "drop table public.t;\n")
    result = project.guard("lint", "--database-url", "", "--trace", "--shadow", shadow_url,
                           "supabase/migrations/20240102000000_idx.sql")
    assert "_idx.sql:1: trace: SHARE on public.t; scanned public.t" in result.stdout, result.output
    assert "_base.sql:" not in result.stdout and "_later.sql" not in result.stdout  # context runs untraced
    broken = project.guard("lint", "--database-url", "", "--trace", "--shadow", "embedded",
                           "supabase/migrations/20240103000000_later.sql")
    assert "Traceback" not in broken.output and "_later.sql:1: trace: ACCESS EXCLUSIVE on public.t" in broken.stdout
    project.add("20240101500000_bad.sql", "select 1/0;\n")
    failed = project.guard("lint", "--database-url", "", "--trace", "--shadow", "embedded",
                           "supabase/migrations/20240102000000_idx.sql")
    assert "_bad.sql:1: trace: earlier file failed on the shadow (division by zero)" in failed.stdout, failed.output
    assert "Traceback" not in failed.output and "_idx.sql:1: trace" not in failed.stdout


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


# --------------------------------------------------------------------------- guard check --shadow


@pytest.fixture
def scratch_url(db_url: str) -> Iterator[str]:
    """A second, empty database on the test cluster, as a CI `services: postgres` would be."""
    base, name = db_url.rsplit("/", 1)
    scratch = f"{name}_trace"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    yield f"{base}/{scratch}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


APPLIED = """
create table public.t (id int primary key, note text, n int, constraint n_present check (n is not null));
create function public.retype_t() returns void language plpgsql as $$
begin alter table public.t alter column n type bigint; end $$;
"""


def test_check_traces_each_pending_statement_beside_its_static_verdict(ready: Project, scratch_url: str) -> None:
    ready.add("20240101000000_t.sql", APPLIED)
    applied = ready.guard("run", "--reason", "first")
    assert applied.code == 0, applied.output
    ready.add("20240102000000_lock.sql", "alter table public.t alter column note set not null;\n"
                                         "alter table public.t alter column n set not null;\n")
    ready.add("20240103000000_call.sql", "create table public.fresh (id int);\ncreate index on public.fresh (id);\n"
                                         "select public.retype_t();\n")
    ready.add("20240104000000_must.sql", "alter table public.t add column must int not null;\n")
    ready.add("20240105000000_idx.sql", "create index concurrently t_note on public.t (note);\n")
    summary = ready.root / "summary.md"
    result = ready.guard("check", "--shadow", scratch_url, "--summary", str(summary))
    assert result.code == 0, result.output
    assert result.report is not None
    rows = {(r["file"].rsplit("/", 1)[-1], r["line"]): r for r in result.report["shadow"]["trace"]}
    note = rows[("20240102000000_lock.sql", 1)]
    # the shadow's table got rows, the statement scanned it under ACCESS EXCLUSIVE: agrees with the lint
    assert note["locks"] == {"public.t": "ACCESS EXCLUSIVE"} and note["scanned"] == ["public.t"]
    assert note["static"] == ["set-not-null"] and note["verdict"] == "agrees" and "made-up rows" in note["note"]
    # the valid CHECK proves it (PostgreSQL 12+): no scan, and the lint (reading the target's catalog) agrees
    proven = rows[("20240102000000_lock.sql", 2)]
    assert proven["scanned"] == [] and proven["static"] == [] and proven["verdict"] == "agrees"
    # a table a pending file creates is empty in production: its index build is no finding
    assert rows[("20240103000000_call.sql", 2)]["verdict"] == "agrees"
    # the function call rewrote the table: the lint could not see it, the trace did
    call = rows[("20240103000000_call.sql", 3)]
    assert call["verdict"] == "trace" and call["rewritten"] == ["public.t"] and call["held_ms"] >= call["ms"]
    traced = [f for f in result.report["findings"] if f["rule"] == "trace"]
    assert [(f["file"].rsplit("/", 1)[-1], f["line"]) for f in traced] == [("20240103000000_call.sql", 3)]
    assert "Lock trace (shadow):" in result.stdout and "public.t" in result.stdout
    markdown = summary.read_text()
    assert "### Lock trace on the shadow" in markdown and "**trace**" in markdown
    # a NOT NULL column without a default fails on rows: traced again on the empty tables, and said so
    must = rows[("20240104000000_must.sql", 1)]
    assert must["verdict"] == "fails with rows" and "failed on made-up rows" in must["note"], must
    assert "null" in must["error_with_rows"]
    assert rows[("20240105000000_idx.sql", 1)]["verdict"] == "not traced"
    # the dry run itself applied the files without the made-up rows, and the target is untouched
    assert result.report["shadow"]["applied"] == ["20240101000000", "20240102000000", "20240103000000",
                                                  "20240104000000", "20240105000000"]
    assert ready.query("SELECT count(*) FROM public.t") == [(0,)]
    assert ready.history() == ["20240101000000"]


def test_check_without_target_reports_a_static_finding_the_trace_does_not_confirm(project: Project,
                                                                                   scratch_url: str) -> None:
    """No database URL: the lint reads what earlier files declare, but a table a function made is
    hidden from it, so SET NOT NULL is flagged; the shadow shows the CHECK made the scan
    unnecessary: an info finding, not a block."""
    project.add("20240101000000_t.sql", "create function public.mk() returns void language plpgsql as $$ begin "
                                        "create table public.t (id int, n int, constraint n_present "
                                        "check (n is not null)); end $$;\nselect public.mk();\n")
    project.add("20240102000000_nn.sql", "alter table public.t alter column n set not null;\n")
    result = run_guard("check", "--shadow", scratch_url, "--json", cwd=project.root, env=clean_env())
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    row = next(r for r in report["shadow"]["trace"] if r["file"].endswith("_nn.sql"))
    assert row["verdict"] == "trace-unconfirmed" and row["locks"] == {"public.t": "ACCESS EXCLUSIVE"}
    unconfirmed = [f for f in report["findings"] if f["rule"] == "trace-unconfirmed"]
    assert len(unconfirmed) == 1 and unconfirmed[0]["severity"] == "info"
