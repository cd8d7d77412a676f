"""What an independent review of the risk lint (#18) found, beyond the corpus: DO blocks read
by PL/pgSQL's parser, and the catalog's answers that depend on the session (time zone)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from guard.lint import Finding, lint_paths
from guard.lint.catalog import PgCatalog


def _lint(tmp_path: Path, sql: str, catalog: PgCatalog | None = None) -> list[Finding]:
    path = tmp_path / "20240101000000_review.sql"
    path.write_text(sql)
    return lint_paths([path], display_root=tmp_path, server_major=15, catalog=catalog,
                      existing_tables=catalog.exists if catalog else None)


def test_a_do_block_is_judged_by_the_sql_it_runs(tmp_path: Path) -> None:
    drizzle = ('DO $$ BEGIN\n ALTER TABLE "post" ADD CONSTRAINT "post_author_fk" FOREIGN KEY ("author_id") '
               'REFERENCES "public"."user"("id") ON DELETE cascade;\nEXCEPTION\n WHEN duplicate_object THEN null;\nEND $$;\n')
    found = [(f.rule, f.severity, f.line) for f in _lint(tmp_path, "select 1;\n" + drizzle)]
    assert found == [("effect-unknown", "info", 2), ("add-foreign-key", "warning", 2)]
    message = next(f.message for f in _lint(tmp_path, drizzle) if f.rule == "add-foreign-key")
    assert message.startswith("in the DO block: ")
    # A NOT VALID constraint is safe inside a DO block as outside; a drop is a warning there (the
    # tripwire watches the block at run time), never the error that would block the run.
    safe = _lint(tmp_path, "do $$ begin alter table t add constraint c check (a > 0) not valid; end $$;\n")
    assert [f.rule for f in safe] == ["effect-unknown"]
    drop = _lint(tmp_path, "do $$ begin drop table public.t; end $$;\n")
    assert [(f.rule, f.severity) for f in drop] == [("effect-unknown", "info"), ("drop-table", "warning")]


def test_sql_built_at_run_time_or_unparsable_stays_unknown(tmp_path: Path) -> None:
    for body in ("do $$ declare s text; begin select 'drop table t' into s; execute s; end $$;\n",
                 "do $$ begin execute (select 'drop table t'); end $$;\n",
                 "do language plpgsql $$ begin perform 1; end $$;\n",
                 "do $body$ begin if then; end $body$;\n"):
        assert [f.rule for f in _lint(tmp_path, body)] == ["effect-unknown"], body
    # built from constants (format() of constants, ||): read, and judged as what it is
    for body in ("do $$ begin execute format('drop table %I', 't'); end $$;\n",
                 "do $$ begin execute 'drop table ' || 't'; end $$;\n"):
        assert [f.rule for f in _lint(tmp_path, body)] == ["effect-unknown", "drop-table"], body
    # the statements a block holds follow the batch: a table it creates is new
    new = _lint(tmp_path, "do $$ begin create table public.fresh (id int); create index on public.fresh (id); end $$;\n")
    assert [f.rule for f in new] == ["effect-unknown"]


def test_timestamp_to_timestamptz_rewrites_unless_the_session_is_utc(db_conn: psycopg.Connection[Any],
                                                                      tmp_path: Path) -> None:
    """ATColumnChangeRequiresRewrite (PostgreSQL 12+): no rewrite when the session's zone has a
    fixed offset of 0; the catalog answers for the connection guard lints (and applies) with."""
    db_conn.execute("create table public.t (id int, at timestamp)")
    sql = "alter table public.t alter column at type timestamptz;\n"
    db_conn.execute("set timezone = 'UTC'")
    assert _lint(tmp_path, sql, PgCatalog(db_conn)) == []
    db_conn.execute("set timezone = 'Europe/Paris'")
    assert [f.rule for f in _lint(tmp_path, sql, PgCatalog(db_conn))] == ["alter-column-type"]
    assert [f.rule for f in _lint(tmp_path, sql)] == ["alter-column-type"]  # no database: unknown


def test_renaming_what_callers_name_is_breaking(tmp_path: Path) -> None:
    sql = ("alter function public.slugify(text) rename to slug;\nalter schema reporting rename to rpt;\n"
           "alter type mood rename to feeling;\nalter index public.i rename to j;\n"
           "alter table public.t rename constraint a to b;\n")
    found = [(f.rule, f.line) for f in _lint(tmp_path, sql)]
    assert found == [("rename", 1), ("rename", 2), ("rename", 3)]
    assert "public.slugify(text)" in _lint(tmp_path, sql)[0].message
