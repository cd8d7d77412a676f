"""Objects resolved as the server resolves them (#13, the parser layer), on a real database.

Quoted and unquoted identifiers ("User" is not user), schema qualification, the search_path
in force at that point of the file, objects created or renamed earlier in the batch; and the
statement forms that destroy data, or whose effect no parser can know (the tripwire's files).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from guard.lint import Finding, lint_paths, needs_tripwire
from guard.lint.catalog import PgCatalog

SCHEMA = """
create schema scratch;
create schema "Billing";
create table public."User" (id int primary key, email text);
create table public.users (id int primary key);
create table scratch.users (id int primary key);
create table public.items (id int primary key, note text, price numeric);
create table "Billing".invoices (id int);
create type mood as enum ('ok');
create table public.moods (m mood);
create materialized view public.totals as select count(*) from public.items;
create function public.purge() returns void language sql as $$ delete from public.items $$;
create procedure public.backfill_v2(batch int) language sql as $$ select 1 $$;
insert into public."User" values (1, 'a'); insert into public.users values (1); insert into scratch.users values (1);
insert into public.items values (1, 'n', 1);
"""


def _lint(conn: psycopg.Connection[Any], tmp_path: Path, *files: str) -> list[Finding]:
    paths = []
    for n, text in enumerate(files):
        path = tmp_path / f"2024010100000{n}_f{n}.sql"
        path.write_text(text)
        paths.append(path)
    catalog = PgCatalog(conn)
    return lint_paths(paths, display_root=tmp_path, server_major=15, existing_tables=catalog.exists, catalog=catalog)


def _rules(findings: list[Finding]) -> list[str]:
    return [f.rule for f in findings if f.category != "effect-unknown"]


@pytest.fixture
def db(db_conn: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
    db_conn.execute(SCHEMA)
    return db_conn


# (files of one batch, the destructive or locking rule expected on the last file, text its message names)
FOUND = [
    (['drop table "User";'], "drop-table", '"User"'),
    (['create table "user" (id int);\ndrop table "User";'], "drop-table", '"User"'),
    (['drop table public."User" cascade;'], "drop-table", '"User"'),
    (["drop table public.users;"], "drop-table", "public.users"),
    (["drop table scratch.users;"], "drop-table", "scratch.users"),
    (["set search_path = scratch;\ndrop table users;"], "drop-table", "scratch.users"),
    (["set search_path to scratch, public;\ntruncate users;"], "truncate", "scratch.users"),
    (["select pg_catalog.set_config('search_path', 'scratch', false);\ndelete from users;"],
     "delete-without-where", "scratch.users"),
    (["set search_path = scratch;", "drop table users;"], "drop-table", "users"),  # a new file: path reset
    (["alter table public.items rename to items_old;\ndrop table items_old;"], "drop-table", "public.items"),
    (["alter table public.items rename to items_old;", "drop table public.items_old;"], "drop-table", "public.items"),
    (["alter table public.items set schema scratch;\ndrop table scratch.items;"], "drop-table", "public.items"),
    (["alter table public.items rename to a;\nalter table a rename to b;\ntruncate b;"], "truncate", "public.items"),
    (['drop table "Billing".invoices;'], "drop-table", '"Billing".invoices'),
    (['create index on "User" (email);'], "create-index", '"User"'),
    (['alter table "User" add column token uuid default gen_random_uuid();'], "volatile-default", '"User"'),
    (['alter table "User" alter column email set not null;'], "set-not-null", '"User"'),
    (["with d as (delete from public.items returning *) select count(*) from d;"], "delete-without-where", "items"),
    (["with u as (update public.items set note = '' returning id) select count(*) from u;"],
     "update-without-where", "items"),
    (["merge into public.items t using (select 1 as id) s on t.id = s.id when matched then delete;"],
     "merge", "items"),
    (["drop materialized view public.totals;"], "drop-materialized-view", "public.totals"),
    (["drop type mood cascade;"], "drop-cascade", "mood"),
    (["truncate public.items cascade;"], "truncate", "public.items"),
    (["alter table public.items alter column price type int;"], "alter-column-type", "public.items"),
    (["explain analyze delete from public.items;"], "delete-without-where", "public.items"),
    (["explain (analyze, costs off) update public.items set note = '';"], "update-without-where", "public.items"),
    (["prepare wipe as delete from public.items;\nexecute wipe;"], "delete-without-where", "public.items"),
]
NOT_FOUND = [
    ['create table "user" (id int);\ndrop table "user";'],
    ['create table public.tmp (id int);\nalter table public.tmp rename to tmp2;\ndrop table public.tmp2;'],
    ["create table scratch.fresh (id int);\nset search_path = scratch;\ndrop table fresh;"],
    ["set search_path = scratch;\ncreate table fresh (id int);\ndelete from fresh;"],
    ['create table "New" (id int);', 'create index on "New" (id);'],
    ["drop table billing.invoices;"],  # no such table: the server fails it, nothing is lost
    ["create table public.t (id int);\nwith d as (delete from public.t returning *) select count(*) from d;"],
    ["select * into public.items_copy from public.items;\ndrop table public.items_copy;"],
    ["explain delete from public.items;"],  # planned, not run
]


@pytest.mark.parametrize(("files", "rule", "named"), FOUND, ids=[f"{r}-{i}" for i, (_, r, _) in enumerate(FOUND)])
def test_statement_on_an_existing_object_is_found(db: psycopg.Connection[Any], tmp_path: Path,
                                                  files: list[str], rule: str, named: str) -> None:
    findings = _lint(db, tmp_path, *files)
    hits = [f for f in findings if f.rule == rule and f.file.endswith(f"_f{len(files) - 1}.sql")]
    assert hits, _rules(findings)
    assert named in hits[0].message, hits[0].message


@pytest.mark.parametrize("files", NOT_FOUND, ids=[str(i) for i in range(len(NOT_FOUND))])
def test_objects_of_the_batch_hold_no_existing_data(db: psycopg.Connection[Any], tmp_path: Path,
                                                    files: list[str]) -> None:
    findings = _lint(db, tmp_path, *files)
    assert not [f for f in findings if f.category in ("destructive", "locking")], _rules(findings)


@pytest.mark.parametrize(("sql", "named"), [
    ("drop procedure public.backfill_v2(int);", "DROP PROCEDURE public.backfill_v2(integer)"),
    ("drop function public.purge();", "DROP FUNCTION public.purge()"),
    ("drop function if exists f(int, text), g;", "DROP FUNCTION f(integer, text), g"),
    ("drop routine public.backfill_v2;", "DROP ROUTINE public.backfill_v2"),
    ("drop aggregate my_sum(numeric);", "DROP AGGREGATE my_sum(numeric)"),
    ('drop function "Calc"(bigint);', 'DROP FUNCTION "Calc"(bigint)'),
])
def test_objects_with_arguments_are_named_as_postgresql_prints_them(db: psycopg.Connection[Any], tmp_path: Path,
                                                                     sql: str, named: str) -> None:
    findings = _lint(db, tmp_path, sql)
    assert any(named in f.message for f in findings), [f.message for f in findings]
    assert not any("ObjectWithArgs" in f.message for f in findings)


@pytest.mark.parametrize(("sql", "tripwire"), [
    ("do $$ begin execute 'drop table items'; end $$;", True),
    ("call public.backfill_v2(10);", True),
    ("select public.purge();", True),
    ("select purge();", True),
    ("insert into public.items select id + 10, public.purge()::text, 1 from public.items;", True),
    ("create table public.t (id int);\nalter table public.t add column n int;", False),
    ("select count(*) from public.items;", False),
    ("prepare p as select 1;\nexecute p;", True),
    ("create rule r as on insert to public.items do instead delete from public.users;", True),
    ("select pg_catalog.set_config('search_path', '', false);", False),
    ("create function public.f() returns int language sql as $$ select 1 $$;", False),
])
def test_effect_unknown_marks_the_file_for_the_tripwire(db: psycopg.Connection[Any], tmp_path: Path,
                                                        sql: str, tripwire: bool) -> None:
    findings = _lint(db, tmp_path, sql)
    assert needs_tripwire(findings) is tripwire, [f.message for f in findings]
    assert all(f.severity == "info" for f in findings if f.category == "effect-unknown")


@pytest.mark.parametrize(("files", "rule"), [
    (["create table if not exists public.items (id int);\ndrop table public.items;"], "drop-table"),
    (["create temporary table items (id int);\ndrop table public.items;"], "drop-table"),
    (["set search_path = scratch;\nreset all;\ndrop table users;"], "drop-table"),
    (["set search_path = scratch;\nset search_path to default;\ntruncate public.users;"], "truncate"),
])
def test_names_that_only_look_new_still_hold_existing_rows(db: psycopg.Connection[Any], tmp_path: Path,
                                                          files: list[str], rule: str) -> None:
    assert rule in _rules(_lint(db, tmp_path, *files))


def test_a_temporary_table_hides_the_permanent_one(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    assert "drop-table" not in _rules(_lint(db, tmp_path, "create temporary table items (id int);\ndrop table items;"))


def test_drop_cascade_is_destructive_where_it_reaches_other_objects(db: psycopg.Connection[Any], tmp_path: Path) -> None:
    db.execute("create type lonely as enum ('a'); create view public.v_alone as select 1 as x;"
               "create function public.unused() returns int language sql as $$ select 1 $$;")
    reaching = ["drop type mood cascade;", "drop table public.items cascade;"]  # a column; a materialized view
    alone = ["drop type lonely cascade;", "drop view public.v_alone cascade;", "drop function public.unused() cascade;",
             "drop function public.no_such_function(int) cascade;"]  # nothing of it exists before the batch
    for sql in reaching:
        assert "drop-cascade" in _rules(_lint(db, tmp_path, sql)), sql
    for sql in alone:
        assert "drop-cascade" not in _rules(_lint(db, tmp_path, sql)), sql
