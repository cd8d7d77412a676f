"""Inputs a breaker found against the safety net (issue #13): each asserts the invariant on a
real database (checksum before, run, then unchanged or restored from the report's copies, in
the order the restore plan gives, to the same checksum) or that guard's copies stay closed."""

from __future__ import annotations

import pytest

from guard.protect.order import restore_order
from tests.safety_support import data, restore, run_with_copies
from tests.support import Project
from tests.test_safety_roles import ITEMS, LEFT_TO, SCHEMA_LEFT_TO


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    return ready


LONG = '"ßß ""q"" ' + "x" * 50 + '"'


def _invariant(project: Project, sql: str, tables: list[str]) -> dict:  # type: ignore[type-arg]
    before = {t: data(project, t) for t in tables}
    report = run_with_copies(project, "20240101000000_a.sql", sql)
    restore(project, report)
    assert {t: data(project, t) for t in tables} == before
    return report


@pytest.mark.parametrize(("setup", "sql", "tables"), [
    ("", "delete from items where id < 10;\ndrop table items;\n", ["public.items"]),
    ("", "update items set v = 'u' where id < 50;\ndelete from items where id < 20;\n", ["public.items"]),
    ("", "delete from items where id < 10;\ntruncate items;\n", ["public.items"]),
    ("", "alter table items drop column v;\ndrop table items;\n", ["public.items"]),
    (f"CREATE TABLE public.{LONG} (id int PRIMARY KEY, v text);"
     f"INSERT INTO public.{LONG} SELECT g, g::text FROM generate_series(1, 20) g;",
     f"delete from {LONG} where id < 5;\nupdate {LONG} set v = 'w';\ndrop table {LONG};\n", [f"public.{LONG}"]),
    ("CREATE SCHEMA plain; CREATE TABLE plain.a (id int PRIMARY KEY);"
     "CREATE TABLE plain.b (id int PRIMARY KEY, a int REFERENCES plain.a);"
     "INSERT INTO plain.a SELECT generate_series(1, 9); INSERT INTO plain.b SELECT g, g FROM generate_series(1, 9) g;",
     "delete from plain.b where id < 4;\ndrop schema plain cascade;\n", ["plain.a", "plain.b"]),
])
def test_the_same_data_destroyed_in_steps_comes_back(items: Project, setup: str, sql: str, tables: list[str]) -> None:
    """A DELETE then a DROP of the same table: the DELETE's rows can only go back into the
    table the DROP's restore SQL recreated, so the plan runs the last destruction first."""
    if setup:
        items.query(setup)
    report = _invariant(items, sql, tables)
    plan = items.guard("restore-plan", report["run_id"])
    assert plan.code == 0, plan.output
    statements = list(dict.fromkeys(c["statement"] for c in restore_order(report["protective_copies"])))
    places = [plan.stdout.find(f" at {where}") for where in statements]
    assert -1 not in places and places == sorted(places), plan.stdout


@pytest.mark.parametrize("grants", [
    "ALTER DEFAULT PRIVILEGES GRANT SELECT, INSERT ON TABLES TO app; ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO app",
    "CREATE SCHEMA IF NOT EXISTS guard_backup; ALTER DEFAULT PRIVILEGES IN SCHEMA guard_backup GRANT ALL ON TABLES TO app;"
    "CREATE SCHEMA IF NOT EXISTS guard; ALTER DEFAULT PRIVILEGES IN SCHEMA guard GRANT SELECT ON TABLES TO app;",
])
@pytest.mark.parametrize("sql", [
    "delete from items where id < 10;\n",
    "set role app;\ndelete from items where id < 10;\n",
    "drop table items;\n",
])
def test_default_privileges_give_no_role_the_copies(items: Project, grants: str, sql: str) -> None:
    """Default privileges (global or IN SCHEMA) hand every table guard creates to their
    grantees: the copies, guard.copies and both schemas must still be closed to them."""
    items.query(grants)
    _invariant(items, sql, ["public.items"] if "drop" not in sql else [])
    assert items.query(LEFT_TO, {"r": "app"})[0][0] == 0
    assert items.query(SCHEMA_LEFT_TO, {"r": "app"})[0][0] is False
    assert items.query("SELECT has_schema_privilege('app', 'guard', 'USAGE')")[0][0] is False


@pytest.mark.parametrize("sql", [
    "truncate items;\ninsert into items values (1, 'o', 'seed'), (2, 'o', 'seed');\n",
    "delete from items where id < 10;\ninsert into items values (1, 'o', 'seed');\n",
    "delete from items;\ninsert into items select g, 'seed', null from generate_series(1, 200) g;\n",
    "begin;\ndelete from items where id in (select id from items order by random() limit 7);\n"
    "insert into items select g, 'seed', 'again' from generate_series(1, 120) g on conflict do nothing;\ncommit;\n",
])
def test_rows_deleted_then_seeded_again_with_their_keys_come_back(items: Project, sql: str) -> None:
    """A seed migration (TRUNCATE or DELETE, then INSERT with the same keys): restore SQL
    inserting the copy failed on the duplicate key and put nothing back; each old row takes
    its key back."""
    before = data(items, "public.items")
    restore(items, run_with_copies(items, "20240101000000_a.sql", sql))
    # The rows that existed before have their old values; rows the seed added beyond them stay.
    assert data(items, "(SELECT * FROM public.items WHERE id <= 120)") == before


# With standard_conforming_strings off (a legacy setting, from the database's defaults or set by
# the file itself) the server reads `'a\''` as a closed string and runs what follows it, where
# guard's parser (PostgreSQL's default lexing) sees one SELECT of a string. The parser layer
# cannot vouch for that file; the tripwire still sees the drop and rolls it back.
HIDDEN_DROP = "select 'a\\''; drop table public.victim; --'\n"


@pytest.mark.parametrize("where", ["database default", "set in the file"])
def test_a_drop_hidden_by_legacy_string_lexing_is_caught_by_the_tripwire(ready: Project, where: str) -> None:
    ready.query("create table public.victim (id int); insert into public.victim select generate_series(1, 5)")
    before = data(ready, "public.victim")
    if where == "database default":
        name = ready.query("select current_database()")[0][0]
        ready.query(f'alter database "{name}" set standard_conforming_strings = off')
        ready.add("20240101000000_a.sql", HIDDEN_DROP)
    else:
        ready.add("20240101000000_a.sql", "set standard_conforming_strings = off;\n" + HIDDEN_DROP)
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert "tripwire" in result.stdout and "public.victim" in result.stdout
    assert data(ready, "public.victim") == before
    assert ready.history() == []


# A schema listed before pg_catalog in the search_path can stand in for the functions and
# operators of guard's own statements: these traps turned the tripwire's snapshot into "{}",
# and a DO block's DELETE (which the parser cannot see) went through with exit 0 and no copy.
TRAPS = (
    "CREATE SCHEMA trap;"
    "CREATE FUNCTION trap.set_config(text, text, boolean) RETURNS text LANGUAGE sql"
    "  AS $$ SELECT pg_catalog.set_config($1, '{}', $3) $$;"
    "CREATE FUNCTION trap.current_setting(text, boolean) RETURNS text LANGUAGE sql AS $$ SELECT '{}'::text $$;"
)
TRAP_PATH = "trap, pg_catalog, public"
HIDDEN_DELETE = "do $$ begin delete from public.victim; end $$;\n"


@pytest.mark.parametrize(("where", "sql", "code"), [
    ("database", HIDDEN_DELETE, 1),
    ("database", "begin;\n" + HIDDEN_DELETE + "commit;\n", 1),
    # 4: the SET before the file's own BEGIN took effect outside a transaction (the session's)
    ("file", f"set search_path = {TRAP_PATH};\nbegin;\n" + HIDDEN_DELETE + "commit;\n", 4),
    # the copy TRUNCATE makes comes after the hidden DELETE: the tripwire must refuse it, mid-file
    ("file", f"set search_path = {TRAP_PATH};\n" + HIDDEN_DELETE + "truncate public.victim;\n", 1),
    ("database", HIDDEN_DELETE + "truncate public.victim;\n", 1),
])
def test_a_search_path_trap_does_not_blind_the_tripwire(ready: Project, where: str, sql: str, code: int) -> None:
    ready.query("create table public.victim (id int primary key); "
                "insert into public.victim select generate_series(1, 5)")
    ready.query(TRAPS)
    before = data(ready, "public.victim")
    if where == "database":
        name = ready.query("select current_database()")[0][0]
        ready.query(f'alter database "{name}" set search_path = {TRAP_PATH}')
    ready.add("20240101000000_a.sql", sql)
    result = ready.guard("run")
    assert result.code == code, result.output
    assert "tripwire" in result.stdout and "public.victim" in result.stdout
    assert data(ready, "public.victim") == before
    assert ready.history() == []


def test_the_files_own_search_path_is_kept_around_the_tripwire(ready: Project) -> None:
    """Guard's snapshot runs under its own search_path and puts the file's back: a file (armed:
    it has a DO block) that set its path before its BEGIN creates its table where it asked."""
    ready.query("create schema app; create table public.victim (id int)")
    ready.add("20240101000000_a.sql", "set search_path = app, public;\nbegin;\ncreate table t (id int);\n"
              "do $$ begin perform 1; end $$;\ncommit;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("select to_regclass('app.t') is not null, to_regclass('public.t') is null") == [(True, True)]
