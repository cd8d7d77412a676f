"""`guard undo` never silently destroys what the application wrote since the run: without
--force it keeps it, says what and why, and exits 4 (history kept); with --force it overwrites
and says so. Real PostgreSQL, the real CLI, round trips by checksum and fingerprint."""

from __future__ import annotations

import sys

import pytest

from tests.support import Project, Result
from tests.test_undo import SCHEMA, state


@pytest.fixture
def shop(ready: Project) -> Project:
    ready.query(SCHEMA)
    return ready


def _run(project: Project, *files: str) -> str:
    for n, text in enumerate(files, start=1):
        project.add(f"2024010100000{n}_release.sql", text)
    run = project.guard("run")
    assert run.code in (0, 4) and run.report is not None, run.output
    return str(run.report["run_id"])


def _undone_as_before(project: Project, *files: str) -> None:
    """Run ``files``, then `guard undo --yes`: exit 0 and the database exactly as before."""
    before = state(project)
    _run(project, *files)
    done = project.guard("undo", "--yes")
    assert done.code == 0, done.output
    assert state(project) == before


# ------------------------------------------------------------------ 1. writes since the run

def test_rows_the_run_updated_and_the_app_updated_again_are_kept(shop: Project) -> None:
    before = state(shop)
    _run(shop, "update public.accounts set plan = 'gold' where id <= 10;\n")
    shop.query("UPDATE public.accounts SET plan = 'app' WHERE id IN (1, 2, 3)")  # the application, since
    shop.query("DELETE FROM public.orders WHERE account = 4; DELETE FROM public.accounts WHERE id = 4")

    dry = shop.guard("undo")
    assert dry.code == 0 and "4 of the 10 row(s) the run updated were changed or deleted" in dry.stdout, dry.output
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "kept: table public.accounts: 4 of the 10 row(s)" in kept.stdout
    assert shop.query("SELECT id, plan FROM public.accounts WHERE id <= 10 ORDER BY id") == [
        (1, "app"), (2, "app"), (3, "app"), (5, "free"), (6, "pro"), (7, "free"), (8, "free"), (9, "pro"), (10, "free")]
    assert shop.history() == ["20240101000001"]  # its effect remains in part
    assert state(shop) != before


def test_force_puts_the_runs_before_values_over_the_apps(shop: Project) -> None:
    before = state(shop)
    _run(shop, "update public.accounts set plan = 'gold' where id <= 10;\n")
    shop.query("UPDATE public.accounts SET plan = 'app' WHERE id IN (1, 2)")
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 0, forced.output
    assert "2 row(s) written since overwritten: --force" in forced.stdout
    assert state(shop) == before and shop.history() == []


def test_a_column_the_run_added_and_the_app_filled_is_kept(shop: Project) -> None:
    before = state(shop)
    _run(shop, "alter table public.orders add column note text default 'none';\n")
    shop.query("UPDATE public.orders SET note = 'gift' WHERE id <= 3")
    shop.query("INSERT INTO public.orders (id, account, total, note) VALUES (9001, 1, 1, 'new')")
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "column public.orders.note: kept, 4 row(s) written since the run hold values" in kept.stdout
    assert shop.query("SELECT count(*) FROM public.orders WHERE note IN ('gift', 'new')") == [(4,)]
    assert shop.history() == ["20240101000001"]
    shop.query("DELETE FROM public.orders WHERE id = 9001")
    assert shop.guard("undo", "--yes", "--force").code in (0, 3)  # undone already (partly): refused, or done
    assert state(shop) != before or shop.history() == []


def test_an_added_column_untouched_since_goes_even_with_new_rows_leaving_it_empty(shop: Project) -> None:
    _run(shop, "alter table public.orders add column note text;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (9001, 1, 1)")  # note stays NULL
    done = shop.guard("undo", "--yes")
    assert done.code == 0, done.output
    assert not shop.query("SELECT 1 FROM pg_attribute WHERE attrelid = 'public.orders'::regclass AND attname = 'note'")
    assert shop.query("SELECT total FROM public.orders WHERE id = 9001") != []  # the app's row stays


def test_a_retyped_column_with_rows_inserted_since_is_kept(shop: Project) -> None:
    before = state(shop)
    _run(shop, "alter table public.orders alter column total type text;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (9001, 1, 'about ten')")
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "column public.orders.total: kept as text, 1 row(s) written since the run" in kept.stdout
    assert shop.query("SELECT total FROM public.orders WHERE id = 9001") == [("about ten",)]
    assert shop.query("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                      "'public.orders'::regclass AND attname = 'total'") == [("text",)]
    assert state(shop) != before


def test_force_casts_a_retyped_columns_new_rows_back_or_fails_cleanly(shop: Project) -> None:
    _run(shop, "alter table public.orders alter column total type text;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (9001, 1, 'about ten')")
    after = state(shop)
    failed = shop.guard("undo", "--yes", "--force")
    assert failed.code == 1, failed.output
    assert "rolled back, nothing changed: invalid input syntax for type numeric" in failed.stdout
    assert "Traceback" not in failed.output and state(shop) == after
    shop.query("UPDATE public.orders SET total = '10.50' WHERE id = 9001")
    done = shop.guard("undo", "--yes", "--force")
    assert done.code == 0, done.output
    assert shop.query("SELECT total FROM public.orders WHERE id IN (2, 9001) ORDER BY id") == [(3, ), (10.5,)] or \
        [tuple(map(float, r)) for r in shop.query("SELECT total FROM public.orders WHERE id IN (2, 9001) ORDER BY id")] \
        == [(3.0,), (10.5,)]


def test_deleted_rows_whose_key_the_app_inserted_again_are_kept(shop: Project) -> None:
    before = state(shop)
    _run(shop, "delete from public.orders where id <= 20;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (5, 2, 99.99), (6, 2, 1)")
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "2 of the 20 row(s) the run deleted were inserted again since with the same primary key" in kept.stdout
    assert shop.query("SELECT count(*) FROM public.orders WHERE id <= 20") == [(20,)]
    assert shop.query("SELECT total::text FROM public.orders WHERE id IN (5, 6, 7) ORDER BY id") == [
        ("99.99",), ("1.00",), ("10.50",)]  # the application's two, and one put back
    assert shop.history() == ["20240101000001"]
    assert state(shop) != before


def test_force_replaces_rows_inserted_again_with_the_deleted_ones(shop: Project) -> None:
    before = state(shop)
    _run(shop, "delete from public.orders where id <= 20;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (5, 2, 99.99)")
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 0, forced.output
    assert "remove 1 row(s) of public.orders inserted since with a key the run deleted (--force)" in forced.stdout
    assert state(shop) == before


def test_truncated_table_with_rows_written_since(shop: Project) -> None:
    _run(shop, "truncate public.orders;\n")
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (1, 1, 5), (9001, 1, 7)")
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert shop.query("SELECT count(*) FROM public.orders") == [(501,)]  # 499 put back + the app's two
    assert shop.query("SELECT total FROM public.orders WHERE id = 1")[0][0] == 5


def test_not_null_the_app_violated_since_is_kept_off_and_force_fails_cleanly(shop: Project) -> None:
    _run(shop, "alter table public.accounts alter column email drop not null;\n")
    shop.query("INSERT INTO public.accounts (id, email) VALUES (9001, NULL), (9002, NULL)")
    after = state(shop)
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 1, forced.output
    assert "column \"email\" of relation \"accounts\" contains null values" in forced.stdout
    assert "table public.accounts" in forced.stdout and "Traceback" not in forced.output
    assert state(shop) == after
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "public.accounts.email: NOT NULL again: not done, 2 row(s) written since the run violate it" in kept.stdout
    assert shop.query("SELECT count(*) FROM public.accounts WHERE email IS NULL") == [(2,)]


def test_a_dropped_column_comes_back_with_its_default_for_rows_inserted_since(shop: Project) -> None:
    _run(shop, "alter table public.accounts drop column credits;\n")
    shop.query("INSERT INTO public.accounts (id, email) VALUES (9001, 'new@example.com')")
    done = shop.guard("undo", "--yes")
    assert done.code == 0, done.output
    assert shop.query("SELECT credits FROM public.accounts WHERE id IN (7, 9001) ORDER BY id") == [(7,), (0,)]


def test_added_table_written_since_and_a_view_the_app_built_on_it(shop: Project) -> None:
    _run(shop, "create table public.tags (id int primary key, label text);\n")
    shop.query("CREATE VIEW public.tag_labels AS SELECT label FROM public.tags")
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 4, forced.output
    assert "cannot invert: drop table public.tags the run added: not done, cannot drop table" in forced.stdout
    assert shop.table_exists("public.tags")


# ------------------------------------------------------------------ 2. copies checked

def test_a_tampered_copy_refuses_the_undo_and_changes_nothing(shop: Project) -> None:
    run_id = _run(shop, "delete from public.orders where id <= 20;\n", "alter table public.accounts add column x int;\n")
    copy = shop.query("SELECT copy FROM guard.copies WHERE run_id = %s", (run_id,))[0][0]
    shop.query(f"UPDATE {copy} SET total = 0 WHERE id = 3")
    after = state(shop)
    for args in (("undo",), ("undo", "--yes")):
        refused = shop.guard(*args)
        assert refused.code == 3, refused.output
        assert f"copy {copy} of public.orders no longer matches the checksum recorded" in refused.stdout
    assert state(shop) == after and shop.history() == ["20240101000001", "20240101000002"]


# ------------------------------------------------------------------ 4. clear errors, types

def test_a_table_with_an_enum_column_dropped_by_cascade_comes_back(shop: Project) -> None:
    _undone_as_before(shop, "drop table public.accounts cascade;\n")


def test_generated_columns_come_back_computed(shop: Project) -> None:
    shop.query("CREATE TABLE public.lines (id int PRIMARY KEY, qty int, price numeric, "
               "amount numeric GENERATED ALWAYS AS (qty * price) STORED);"
               "INSERT INTO public.lines SELECT g, g, 2.5 FROM generate_series(1, 10) g")
    _undone_as_before(shop, "drop table public.lines;\n")


# ------------------------------------------------------------------ 7. other objects

OBJECTS = """
create view public.big_orders as select * from public.orders where total > 100;
create function public.double(x int) returns int language sql immutable as 'select x * 2';
create function public.touch() returns trigger language plpgsql as 'begin new.seen := now(); return new; end';
create trigger accounts_touch before update on public.accounts for each row execute function public.touch();
create sequence public.invoice_no;
create domain public.positive as int check (value > 0);
alter table public.orders enable row level security;
create policy orders_read on public.orders for select using (true);
create schema reporting;
create view reporting.totals as select account, sum(total) from public.orders group by account;
"""


def test_views_functions_triggers_sequences_policies_domains_schemas_the_run_added_are_dropped(shop: Project) -> None:
    before = state(shop)
    _run(shop, OBJECTS)
    done = shop.guard("undo", "--yes")
    assert done.code in (0, 4), done.output
    fp, tables = state(shop)
    assert tables == before[1]
    left = sorted(k for k in set(fp) | set(before[0]) if fp.get(k) != before[0].get(k))
    assert left == ["table public.orders"]  # row level security stays on: named, exit 4
    assert done.code == 4 and "still differs: table public.orders changed" in done.stdout


def test_a_sequence_advanced_since_the_run_is_kept(shop: Project) -> None:
    _run(shop, "create sequence public.invoice_no;\n")
    shop.query("SELECT nextval('public.invoice_no')")
    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "sequence public.invoice_no: kept, advanced since the run" in kept.stdout
    assert shop.query("SELECT to_regclass('public.invoice_no') IS NOT NULL") == [(True,)]


def test_a_function_something_new_depends_on_is_named_not_dropped(shop: Project) -> None:
    _run(shop, "create function public.double(x int) returns int language sql immutable as 'select x * 2';\n")
    shop.query("CREATE TABLE public.app_made (n int CHECK (public.double(n) < 100))")
    result = shop.guard("undo", "--yes")
    assert result.code == 4, result.output
    assert "cannot invert: drop function public.double(x integer) the run added: not done" in result.stdout, result.stdout


# ------------------------------------------------------------------ 3. and 6.

def test_manual_plan_restores_into_a_scratch_database_never_the_live_one(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("snapshot:\n  mode: schema\n  when: always\n  dir: snaps\n  encrypt: false\n")
    ready.add("20240101000001_a.sql", "create table public.a (id int);\n")
    run = ready.guard("run")
    assert run.code == 0, run.output
    ready.query("DELETE FROM guard.run_catalogs")
    refused = ready.guard("undo")
    assert refused.code == 3, refused.output
    snapshot = next(line for line in refused.stdout.splitlines() if "snapshot" in line)
    assert "into a new, empty scratch database" in snapshot and "never the live database" in snapshot
    assert 'pg_restore --no-owner --dbname "$TARGET_DATABASE_URL"' in snapshot
    assert ready.db_url not in refused.stdout


def _wrapped(project: Project, statement: str) -> Result:
    code = f"import os, psycopg; psycopg.connect(os.environ['DATABASE_URL'], autocommit=True).execute({statement!r})"
    return project.guard("run", "--", sys.executable, "-c", code)


def test_a_wrapped_run_is_never_said_to_have_changed_nothing(ready: Project) -> None:
    ready.query("CREATE TABLE public.items (id int PRIMARY KEY, name text); INSERT INTO public.items VALUES (1, 'a')")
    result = _wrapped(ready, "ALTER TABLE public.items ADD COLUMN price int; UPDATE public.items SET name = 'b'")
    assert result.code == 0, result.output
    undo = ready.guard("undo", "--yes")
    assert undo.code == 4, undo.output
    assert "committed nothing" not in undo.output and "nothing to undo" not in undo.output
    assert "drop column public.items.price the run added" in undo.stdout
    assert "its data changes are not undone" in undo.stdout
    assert ready.query("SELECT name FROM public.items") == [("b",)]


# ------------------------------------------------------------------ 5. partial undos, undoing an undo

def test_an_undo_is_undone_by_its_own_id_and_the_run_again(shop: Project) -> None:
    before = state(shop)
    _run(shop, "delete from public.orders where total > 600;\n",
         "alter table public.accounts drop column plan;\ncreate table public.tags (id int primary key);\n"
         "insert into public.tags values (1);\nupdate public.accounts set credits = 0 where id < 50;\n")
    after_run = state(shop)
    history = shop.history()
    assert shop.guard("undo", "--yes").code == 0
    assert state(shop) == before and shop.history() == []
    undo_id = shop.query("SELECT run_id FROM guard.runs WHERE command = 'undo'")[0][0]

    back = shop.guard("undo", undo_id, "--yes")
    assert back.code == 0, back.output
    assert state(shop) == after_run and shop.history() == history
    again = shop.guard("undo", "--yes")  # the run is in place again: it can be undone again
    assert again.code == 0, again.output
    assert state(shop) == before and shop.history() == []


def test_a_partial_undo_leaves_the_run_in_place_and_is_finished_through_its_undo(shop: Project) -> None:
    before = state(shop)
    run_id = _run(shop, "create table public.tags (id int primary key, label text);\n"
                  "alter table public.orders add column note text;\n")
    shop.query("INSERT INTO public.tags VALUES (7, 'written by the app')")
    after_app = state(shop)
    partial = shop.guard("undo", "--yes")
    assert partial.code == 4, partial.output
    assert shop.history() == ["20240101000001"]
    undo_id = shop.query("SELECT run_id FROM guard.runs WHERE command = 'undo'")[0][0]
    refused = shop.guard("undo", "--yes")
    assert refused.code == 3 and f"run {run_id} was partly undone by {undo_id}" in refused.stderr, refused.output

    back = shop.guard("undo", undo_id, "--yes")
    assert back.code == 0, back.output
    assert state(shop) == after_app
    forced = shop.guard("undo", run_id, "--yes", "--force")
    assert forced.code == 0, forced.output
    assert state(shop) == before and shop.history() == []


# ------------------------------------------------------------------ inputs of our own

def test_updated_rows_of_a_table_without_primary_key_are_named_never_inserted_twice(shop: Project) -> None:
    shop.query("CREATE TABLE public.loose (n int, label text); INSERT INTO public.loose SELECT g, 'a' FROM generate_series(1, 5) g")
    _run(shop, "update public.loose set label = 'b' where n < 3;\n")
    result = shop.guard("undo", "--yes")
    assert result.code in (3, 4), result.output
    assert "has no primary key" in result.stdout
    assert shop.query("SELECT count(*) FROM public.loose") == [(5,)]


def test_an_enum_type_dropped_with_cascade_takes_a_column_and_undo_says_what_it_lost(shop: Project) -> None:
    _run(shop, "-- guard:allow drop-cascade the mood column goes with it\ndrop type public.mood cascade;\n")
    result = shop.guard("undo", "--yes")
    assert result.code in (0, 4), result.output
    assert "Traceback" not in result.output
    assert shop.query("SELECT count(*) FROM pg_type WHERE typname = 'mood'") == [(1,)]
    if result.code == 4:
        assert "column public.accounts.mood: re-added, the run kept no copy of its values" in result.stdout


def test_guards_own_records_broken_is_one_clear_line(shop: Project) -> None:
    _run(shop, "update public.accounts set plan = 'gold' where id <= 10;\n")
    shop.query("DROP TABLE guard.run_rows")
    result = shop.guard("undo")
    assert result.code == 1, result.output
    assert "could not plan the undo, nothing changed: relation \"guard.run_rows\" does not exist" in result.stdout
    assert "Traceback" not in result.output


def test_app_writes_of_every_kind_between_run_and_undo_are_all_kept(shop: Project) -> None:
    """Inserts, updates and deletes by the application in every table the release touched."""
    _run(shop, "update public.orders set total = total * 2 where id <= 50;\n"
               "delete from public.orders where id between 51 and 60;\n"
               "alter table public.accounts add column vip boolean;\n")
    shop.query("UPDATE public.orders SET total = 1 WHERE id IN (1, 2)")       # over the run's update
    shop.query("DELETE FROM public.orders WHERE id = 3")                      # a row the run updated
    shop.query("INSERT INTO public.orders (id, account, total) VALUES (55, 1, 7), (9001, 1, 8)")  # key again, new
    shop.query("UPDATE public.accounts SET vip = true WHERE id = 1")          # the added column
    app_rows = {r[0]: r[1] for r in shop.query("SELECT id, total::text FROM public.orders WHERE id IN (1, 2, 55, 9001)")}
    result = shop.guard("undo", "--yes")
    assert result.code == 4, result.output
    assert "3 of the 50 row(s) the run updated were changed or deleted" in result.stdout
    assert "1 of the 10 row(s) the run deleted were inserted again" in result.stdout
    assert "column public.accounts.vip: kept, 1 row(s) written since" in result.stdout
    assert {r[0]: r[1] for r in shop.query("SELECT id, total::text FROM public.orders WHERE id IN (1, 2, 55, 9001)")} == app_rows
    assert shop.query("SELECT count(*) FROM public.orders WHERE id = 3") == [(0,)]
    assert shop.query("SELECT total::text FROM public.orders WHERE id IN (4, 52) ORDER BY id") == [("6.00",), ("78.00",)]
    assert shop.history() == ["20240101000001"]


def test_a_wrapped_run_that_only_wrote_rows_is_not_said_to_have_changed_nothing(ready: Project) -> None:
    ready.query("CREATE TABLE public.items (id int PRIMARY KEY, name text); INSERT INTO public.items VALUES (1, 'a')")
    result = _wrapped(ready, "UPDATE public.items SET name = 'b'")
    assert result.code == 0 and result.report is not None, result.output
    undo = ready.guard("undo", str(result.report["run_id"]))
    assert undo.code == 3, undo.output
    assert "guard saw no change to the catalog or the migration history, and cannot see or undo rows" in undo.stderr
    assert "committed nothing" not in undo.output


def test_views_and_functions_the_run_dropped_are_named(shop: Project) -> None:
    shop.query("CREATE VIEW public.pro AS SELECT id FROM public.accounts WHERE plan = 'pro';"
               "CREATE FUNCTION public.one() RETURNS int LANGUAGE sql AS 'select 1'")
    _run(shop, "drop view public.pro;\ndrop function public.one();\nalter table public.orders add column x int;\n")
    result = shop.guard("undo", "--yes")
    assert result.code == 4, result.output
    assert "cannot invert: view public.pro: dropped by the run; guard recorded no definition" in result.stdout
    assert "cannot invert: function public.one(): dropped by the run" in result.stdout
    assert shop.history() == ["20240101000001"]


def test_undos_own_records_and_copies_are_closed_to_the_api_roles(tmp_path: object, db_url: str) -> None:
    from tests.hostile.test_hostile_grants import DEFAULT_PRIVILEGES, _roles

    project = Project(tmp_path, db_url)  # type: ignore[arg-type]
    _roles(project)
    for statement in DEFAULT_PRIVILEGES["global"]:
        project.query(statement)
    assert project.guard("init").code == 0
    project.log_automated_backup()
    project.query("CREATE TABLE public.items (id int PRIMARY KEY, n int); INSERT INTO public.items VALUES (1, 1), (2, 2)")
    project.add("20240101000001_a.sql", "update public.items set n = 0;\nalter table public.items add column x int;\n")
    assert project.guard("run").code == 0
    assert project.guard("undo", "--yes").code == 0
    open_ = project.query(
        "SELECT r.rolname, c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, "
        "pg_roles r WHERE n.nspname IN ('guard', 'guard_backup') AND c.relkind = 'r' "
        "AND r.rolname IN ('anon', 'authenticated') AND has_table_privilege(r.oid, c.oid, 'SELECT')")
    assert open_ == []


@pytest.mark.parametrize("since", [
    "CREATE TABLE public.orders (id int PRIMARY KEY, note text); INSERT INTO public.orders VALUES (1, 'app')",
    "CREATE VIEW public.orders AS SELECT 1 AS id",
    "CREATE SEQUENCE public.orders",
])
def test_a_name_the_run_freed_and_the_app_took_since_refuses_in_the_dry_run_too(shop: Project, since: str) -> None:
    """The dry run says 0 only when --yes would undo: a relation created since where the run's
    dropped table would come back refuses both (exit 3), and nothing of the app's is touched."""
    _run(shop, "drop table public.orders;\n")
    shop.query(since)
    after = state(shop)
    for args in (("undo",), ("undo", "--yes"), ("undo", "--yes", "--force")):
        refused = shop.guard(*args)
        assert refused.code == 3, refused.output
        assert "table public.orders: the run dropped it and a relation of that name was created since" in refused.stdout
    assert state(shop) == after and shop.history() == ["20240101000001"]


def test_a_table_the_run_replaced_by_a_view_of_the_same_name_comes_back(shop: Project) -> None:
    _undone_as_before(shop, "drop table public.orders;\ncreate view public.orders as select 1 as id;\n")
