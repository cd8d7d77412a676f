"""The runtime tripwire (issue #13, item 2): whatever the parser cannot see (DO blocks, CALL,
functions, triggers, data-modifying WITH queries) and destroys existing data without a copy or
an explicit decision rolls its file back, and the data is as it was (same checksum)."""

from __future__ import annotations

import pytest

from tests.safety_support import data, restore
from tests.support import Project, cover

ITEMS = (
    "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric);"
    "INSERT INTO public.items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 500) g;"
)


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    return ready


def _blocked(project: Project, sql: str, *needles: str, code: int = 1) -> None:
    """The file fails with ``code``, its message names ``needles``, ``items`` is unchanged."""
    before = data(project, "public.items")
    project.add("20240101000000_unseen.sql", sql)
    result = project.guard("run")
    assert result.code == code, result.output
    assert result.report is not None
    failed = next(m for m in result.report["migrations"] if m["status"] == "failed")
    message = failed["error"]["message"]
    assert message.startswith("tripwire:"), message
    for needle in needles:
        assert needle in message, message
    assert project.table_exists("public.items")
    assert data(project, "public.items") == before
    assert "20240101000000" not in project.history()


def test_do_block_dropping_a_table_is_rolled_back(items: Project) -> None:
    _blocked(items, "do $$ begin execute 'drop table items'; end $$;\n", "dropped table public.items")


def test_do_block_truncating_is_rolled_back(items: Project) -> None:
    _blocked(items, "do $$ begin execute 'truncate ' || 'items'; end $$;\n", "truncated public.items")


def test_truncate_and_reload_in_a_do_block_is_rolled_back(items: Project) -> None:
    _blocked(items, "do $$ begin truncate items; insert into items values (1, 'new', 1); end $$;\n",
             "truncated public.items")


def test_a_function_that_deletes_rows_is_rolled_back(items: Project) -> None:
    items.query("CREATE FUNCTION public.purge(n int) RETURNS int LANGUAGE sql AS "
                "$$ WITH d AS (DELETE FROM public.items WHERE id <= n RETURNING 1) SELECT count(*)::int FROM d $$")
    _blocked(items, "select public.purge(10);\n", "deleted 10 row(s) of public.items")


def test_a_stable_function_is_not_trusted(items: Project) -> None:
    items.query("CREATE FUNCTION public.tidy() RETURNS void LANGUAGE plpgsql STABLE AS "
                "$$ BEGIN PERFORM 1; END $$;"
                "CREATE FUNCTION public.harmless_looking() RETURNS int LANGUAGE plpgsql AS "
                "$$ BEGIN UPDATE public.items SET price = 0 WHERE id < 4; RETURN 1; END $$")
    _blocked(items, "select public.tidy(); select public.harmless_looking();\n", "updated 3 row(s) of public.items")


def test_a_data_modifying_with_query_in_a_do_block_is_rolled_back(items: Project) -> None:
    # Outside a DO block the Protector copies a writing WITH query's table first
    # (tests/test_today_break.py); inside one only the tripwire sees it.
    _blocked(items, "do $$ declare n int; begin with d as (delete from items where id > 490 returning *) "
                    "select count(*) into n from d; end $$;\n", "deleted 10 row(s) of public.items")


def test_a_procedure_that_updates_rows_is_rolled_back(items: Project) -> None:
    items.query("CREATE PROCEDURE public.reprice() LANGUAGE sql AS $$ UPDATE public.items SET price = 1 $$")
    _blocked(items, "call public.reprice();\n", "updated 500 row(s) of public.items")


def test_a_column_dropped_in_a_do_block_is_rolled_back(items: Project) -> None:
    _blocked(items, "do $$ begin alter table items drop column price; end $$;\n",
             "dropped a column of public.items")


def test_a_trigger_that_deletes_rows_is_rolled_back(items: Project) -> None:
    items.query(
        "CREATE TABLE public.events (id int);"
        "CREATE FUNCTION public.on_event() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN DELETE FROM public.items WHERE id = NEW.id; RETURN NEW; END $$;"
        "CREATE TRIGGER ev AFTER INSERT ON public.events FOR EACH ROW EXECUTE FUNCTION public.on_event()")
    _blocked(items, "insert into events select generate_series(1, 3);\n", "deleted 3 row(s) of public.items")


def test_after_a_committed_file_the_tripwire_exits_4(items: Project) -> None:
    items.add("20231231000000_add.sql", "create table public.notes (id int);\n")
    _blocked(items, "do $$ begin delete from items where id = 1; end $$;\n",
             "deleted 1 row(s) of public.items", code=4)
    assert items.history() == ["20231231000000"]


def test_transaction_all_rolls_everything_back(items: Project) -> None:
    (items.root / "guard.yml").write_text("migrations:\n  transaction: all\n")
    items.add("20231231000000_add.sql", "create table public.notes (id int);\n")
    _blocked(items, "do $$ begin execute 'drop table items'; end $$;\n", "dropped table public.items")
    assert not items.table_exists("public.notes") and items.history() == []


def test_a_backfill_of_a_column_the_run_added_destroys_nothing(items: Project) -> None:
    items.add("20240101000000_add.sql", "alter table items add column slug text;\n")
    items.add("20240102000000_fill.sql", "do $$ begin update items set slug = 'item-' || id; end $$;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT count(*) FROM items WHERE slug IS NULL")[0][0] == 0


def test_tables_created_earlier_in_the_run_are_not_existing_data(items: Project) -> None:
    items.add("20240101000000_add.sql", "create table public.staging as select * from items;\n")
    items.add("20240102000000_use.sql",
              "do $$ begin delete from staging where id > 5; execute 'drop table staging'; end $$;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert not items.table_exists("public.staging")


@pytest.mark.parametrize("sql", [
    "do $$ begin insert into items values (1000, 'new', 1); end $$;",
    # text to varchar: binary coercible, nothing rewritten (a lossy retype is rolled back: below)
    "do $$ begin alter table items alter column name type varchar; end $$;",
    "select count(*) from items;",
    "do $$ begin create table public.fresh (id int); insert into fresh values (1); delete from fresh; end $$;",
])
def test_what_destroys_nothing_passes(items: Project, sql: str) -> None:
    items.add("20240101000000_harmless.sql", sql + "\n")
    result = items.guard("run")
    assert result.code == 0, result.output


def test_counters_of_earlier_transactions_of_the_session_do_not_count(items: Project) -> None:
    # The first file's protected DELETE commits in guard's session; its counters are not yet
    # flushed when the second file's transaction starts.
    items.add("20240101000000_delete.sql", "delete from items where id <= 100;\n")
    items.add("20240102000000_do.sql", "do $$ begin perform 1; end $$;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT count(*) FROM items")[0][0] == 400


def test_a_copy_in_the_same_file_covers_what_it_holds(items: Project) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_mixed.sql",
              "delete from items where id <= 20;\ndo $$ begin perform 1; end $$;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"][0]["rows"] == 20
    from tests.safety_support import restore

    restore(items, result.report)
    assert data(items, "public.items") == before


def test_an_explicit_decision_disarms_it_and_is_recorded(items: Project) -> None:
    (items.root / "guard.yml").write_text("lint:\n  destructive: warn\n")
    items.add("20240101000000_purge.sql", "do $$ begin delete from items where id = 1; end $$;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT count(*) FROM items")[0][0] == 499


def test_plain_ddl_needs_no_tripwire() -> None:
    from guard.migrations.files import Statement
    from guard.tripwire import needs_tripwire

    def s(text: str, kind: str) -> Statement:
        return Statement(text, 0, 1, 1, kind)

    assert not needs_tripwire([s("create table t (id int)", "CreateStmt"),
                               s("create index on t (id)", "IndexStmt"),
                               s("alter table t add column x int", "AlterTableStmt")])
    assert needs_tripwire([s("do $$ begin end $$", "DoStmt")])
    assert needs_tripwire([s("alter table t drop column x", "AlterTableStmt")])
    assert needs_tripwire([s("select f()", "SelectStmt")])


def test_create_table_as_calling_a_destructive_function_is_rolled_back(items: Project) -> None:
    items.query("CREATE FUNCTION public.take(n int) RETURNS SETOF public.items LANGUAGE sql AS "
                "$$ DELETE FROM public.items WHERE id <= n RETURNING * $$")
    _blocked(items, "create table public.taken as select * from public.take(5);\n",
             "deleted 5 row(s) of public.items")


def test_a_delete_too_large_to_copy_needs_a_decision(items: Project) -> None:
    (items.root / "guard.yml").write_text("protect:\n  max_bytes: 1kB\n")
    _blocked(items, "delete from items where id < 3;\n", "deleted 2 row(s) of public.items")
    (items.root / "guard.yml").write_text("protect:\n  max_bytes: 1kB\nlint:\n  destructive: warn\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert any("above protect.max_bytes" in w for w in (result.report or {}).get("warnings", []))


def test_on_delete_cascade_reached_from_a_do_block_is_rolled_back(items: Project) -> None:
    items.query("CREATE TABLE public.reviews (id int PRIMARY KEY, item int REFERENCES public.items ON DELETE CASCADE);"
                "INSERT INTO public.reviews SELECT g, g FROM generate_series(1, 30) g;"
                "CREATE TABLE public.scratchpad (id int PRIMARY KEY);")
    before = data(items, "public.reviews")
    _blocked(items, "do $$ begin delete from items where id <= 4; end $$;\n", "4 row(s) of public.reviews")
    assert data(items, "public.reviews") == before


@pytest.mark.parametrize(("setup", "sql", "table"), [
    ('CREATE TABLE public."User" (id int PRIMARY KEY, email text);'
     'INSERT INTO public."User" SELECT g, md5(g::text) FROM generate_series(1, 200) g;'
     "CREATE TABLE public.user (id int);",
     'drop table "User";', 'public."User"'),
    ("CREATE SCHEMA scratch; CREATE TABLE scratch.users (id int);"
     "CREATE TABLE public.users (id int PRIMARY KEY, email text);"
     "INSERT INTO public.users SELECT g, md5(g::text) FROM generate_series(1, 200) g;",
     "drop table public.users;", "public.users"),
])
def test_a_table_too_large_to_copy_is_not_dropped_unseen(ready: Project, setup: str, sql: str, table: str) -> None:
    """Issue #13's first example: above protect.max_bytes, whatever the parser decides about the
    name, the drop is measured and rolled back."""
    ready.query(setup)
    (ready.root / "guard.yml").write_text("protect:\n  max_bytes: 1kB\n")
    before = data(ready, table)
    ready.add("20240101000000_drop.sql", sql + "\n")
    result = ready.guard("run")
    assert result.code in (1, 3), result.output
    assert ready.table_exists(table) and data(ready, table) == before


# A copy covers only what it holds: a column copy holds one column, not rows; a copy of the whole
# table made after the file already destroyed rows of it holds none of them.
@pytest.mark.parametrize(("sql", "needle"), [
    ("alter table items alter column price type numeric(12,2);\n"
     "do $$ begin delete from items where id <= 100; end $$;\n", "deleted 100 row(s) of public.items"),
    ("alter table items drop column price;\ndo $$ begin delete from items where id <= 100; end $$;\n",
     "deleted 100 row(s) of public.items"),
    ("do $$ begin delete from items where id <= 100; end $$;\ntruncate items;\n", "deleted 100 row(s) of public.items"),
    ("do $$ begin update items set name = 'x'; end $$;\ndrop table items;\n", "updated 500 row(s) of public.items"),
    ("do $$ begin delete from items where id < 50; end $$;\n"
     "merge into items t using (select 1 as id) s on t.id = s.id when matched then update set name = 'm';\n",
     "deleted 49 row(s) of public.items"),
    ("do $$ begin truncate items; insert into items values (1, 'one', 1); end $$;\ndrop table items;\n",
     "truncated public.items"),
    ("do $$ begin alter table items drop column name; end $$;\ndrop table items;\n", "dropped a column of public.items"),
    ("alter table items drop column price;\ndo $$ begin alter table items drop column name; end $$;\n",
     "dropped a column of public.items"),
])
def test_a_copy_does_not_cover_what_it_does_not_hold(items: Project, sql: str, needle: str) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_mixed.sql", sql)
    result = items.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    message = next(m for m in result.report["migrations"] if m["status"] == "failed")["error"]["message"]
    assert "tripwire:" in message and needle in message, message
    assert data(items, "public.items") == before


@pytest.mark.parametrize("sql", [
    "savepoint s;\ndelete from items where id <= 10;\nrelease savepoint s;\n",
    "begin;\nsavepoint s;\nupdate items set name = 'x' where id <= 10;\nrelease savepoint s;\ncommit;\n",
    "savepoint a;\ncreate table public.tmp (id int);\nrollback to savepoint a;\ndelete from items where id > 490;\n",
    "truncate items;\ninsert into items values (1, 'one', 1);\ndrop table items;\n",
])
def test_copies_after_a_savepoint_or_an_earlier_copy_count(items: Project, sql: str) -> None:
    """A copy made in a subtransaction (the file's SAVEPOINT) belongs to the file's transaction;
    a whole copy made earlier in the file covers what a later statement destroys."""
    before = data(items, "public.items")
    items.add("20240101000000_sp.sql", sql)
    result = items.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    if "drop table" in sql:  # the drop's copy recreates the table (with the row added), the TRUNCATE's has the rest
        restore(items, result.report, only=1)
        items.query("DELETE FROM public.items WHERE id = 1")
        restore(items, result.report, only=0)
    else:
        restore(items, result.report)
    assert data(items, "public.items") == before


def test_dropping_a_partitioned_table_is_covered_by_its_copy(ready: Project) -> None:
    ready.query(
        "CREATE TABLE public.m (id int, at date, v text) PARTITION BY RANGE (at);"
        "CREATE TABLE public.m_2024 PARTITION OF public.m FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');"
        "CREATE TABLE public.m_2025 PARTITION OF public.m FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');"
        "INSERT INTO public.m SELECT g, date '2024-01-01' + g, 'v' || g FROM generate_series(1, 600) g")
    before = data(ready, "public.m")
    ready.add("20240101000000_drop.sql", "drop table m;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert not ready.table_exists("public.m") and result.report is not None
    restore(ready, result.report)
    assert data(ready, "public.m") == before


OTHER = ("CREATE TABLE public.other (id int); INSERT INTO public.other SELECT generate_series(1, 20);"
         "CREATE FUNCTION public.zapv(int) RETURNS int LANGUAGE plpgsql AS "
         "$$ BEGIN DELETE FROM public.other WHERE id = $1; RETURN $1; END $$;"
         "CREATE FUNCTION public.zapi(int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$ BEGIN RETURN public.zapv($1); END $$;"
         "CREATE FUNCTION public.zapb(int) RETURNS boolean LANGUAGE plpgsql AS "
         "$$ BEGIN DELETE FROM public.other WHERE id = $1; RETURN true; END $$;")


# DDL that runs code on every existing row: the functions it calls can destroy anything.
@pytest.mark.parametrize(("setup", "sql", "table", "needle"), [
    ("", "alter table items add column z int default public.zapv(3);\n", "public.other", "deleted 1 row(s) of public.other"),
    ("", "alter table items add constraint c check (public.zapb(id));\n", "public.other", "deleted 20 row(s) of public.other"),
    ("", "create index on items (public.zapi(id));\n", "public.other", "deleted 20 row(s) of public.other"),
    ("", "alter table items add column g int generated always as (public.zapi(id)) stored;\n", "public.other",
     "deleted 20 row(s) of public.other"),
    ("ALTER TABLE public.items ADD CONSTRAINT c CHECK (public.zapb(id)) NOT VALID;",
     "alter table items validate constraint c;\n", "public.other", "deleted 20 row(s) of public.other"),
    ("CREATE TYPE public.comp AS (a int, b text); CREATE TABLE public.tt OF public.comp;"
     "INSERT INTO public.tt SELECT g, 'b' || g FROM generate_series(1, 50) g;",
     "alter type comp drop attribute b cascade;\n", "public.tt", "dropped a column of public.tt"),
])
def test_ddl_running_code_on_existing_rows_is_watched(items: Project, setup: str, sql: str, table: str,
                                                      needle: str) -> None:
    items.query(OTHER + setup)
    before = data(items, table)
    items.add("20240101000000_ddl.sql", sql)
    result = items.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    message = next(m for m in result.report["migrations"] if m["status"] == "failed")["error"]["message"]
    assert "tripwire:" in message and needle in message, message
    assert data(items, table) == before


def test_ddl_calling_only_built_ins_needs_no_tripwire() -> None:
    from guard.migrations.files import Statement
    from guard.tripwire import needs_tripwire

    def s(text: str, kind: str) -> Statement:
        return Statement(text, 0, 1, 1, kind)

    assert not needs_tripwire([s("alter table t add column at timestamptz default now()", "AlterTableStmt"),
                               s("alter table t add column u uuid default gen_random_uuid()", "AlterTableStmt"),
                               s("create index on t (lower(email))", "IndexStmt"),
                               s("alter table t add constraint c check (pg_catalog.length(x) < 9)", "AlterTableStmt")])
    assert needs_tripwire([s("create index on t (app.norm(email))", "IndexStmt")])
    assert needs_tripwire([s("alter table t add column x int default next_code()", "AlterTableStmt")])


# Files run statement by statement (transactions of their own, or statements PostgreSQL refuses
# in a transaction block): each of their transactions is watched before it commits.
@pytest.mark.parametrize(("sql", "needle"), [
    ("begin;\ncreate table public.t1 (id int);\ncommit;\ndo $$ begin execute 'drop table items'; end $$;\n",
     "dropped table public.items"),
    ("begin;\ndo $$ begin delete from items where id < 50; end $$;\ncommit;\nbegin;\ncommit;\n",
     "deleted 49 row(s) of public.items"),
    ("create index concurrently items_name on items (name);\ndo $$ begin delete from items where id < 50; end $$;\n",
     "deleted 49 row(s) of public.items"),
    ("begin;\nselect 1;\ncommit and chain;\ndo $$ begin update items set name = 'x'; end $$;\ncommit;\nbegin;\ncommit;\n",
     "updated 500 row(s) of public.items"),
])
def test_files_with_their_own_transactions_are_watched(items: Project, sql: str, needle: str) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_own.sql", sql)
    result = items.guard("run")
    assert result.code in (1, 4), result.output
    assert result.report is not None
    message = next(m for m in result.report["migrations"] if m["status"] == "failed")["error"]["message"]
    assert "tripwire:" in message and needle in message, message
    assert items.table_exists("public.items") and data(items, "public.items") == before


def test_a_protected_delete_in_a_file_of_its_own_transactions_applies(items: Project) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_own.sql",
              "create index concurrently items_name on items (name);\n"
              "begin;\ndelete from items where id <= 10;\ncommit;\ndelete from items where id > 490;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT count(*) FROM items")[0][0] == 480
    assert result.report is not None
    restore(items, result.report)
    assert data(items, "public.items") == before


# A rewrite the parser cannot see (a DO block, dynamic SQL) that changes a column's type or
# modifier may round or cut values: rolled back unless a column copy covers it.
@pytest.mark.parametrize("sql", [
    "do $$ begin alter table items alter column price type numeric(10,0); end $$;\n",
    "do $$ begin execute format('alter table %I alter column %I type varchar(3) using left(name, 3)', 'items', 'name'); end $$;\n",
    "do $$ begin alter table items alter column price type int using price::int; end $$;\n",
    # numeric to float8 keeps 1.5 but not 0.1 + 0.2's 17th digit: any rewrite to another type counts
    "do $$ begin alter table items alter column price type float8; end $$;\n",
])
def test_a_column_retyped_unseen_is_rolled_back(items: Project, sql: str) -> None:
    _blocked(items, sql, "changed the type of a column of public.items")


def test_a_retype_the_parser_sees_is_covered_by_its_copy(items: Project) -> None:
    items.add("20240101000000_retype.sql", "alter table items alter column price type numeric(10,0);\n"
                                           "select count(*) from items;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                       "WHERE attrelid = 'public.items'::regclass AND attname = 'price'") == [("numeric(10,0)",)]


# Invented inputs of the kind "data destroyed with exit 0, no copy, no finding": each is rolled
# back by the tripwire, the data unchanged.
@pytest.mark.parametrize(("setup", "sql", "needle"), [
    ("CREATE TABLE public.archive (LIKE public.items)",
     "do $$ begin with d as (delete from items where id < 10 returning *) insert into archive select * from d; "
     "end $$;\n",
     "deleted 9 row(s) of public.items"),
    ("CREATE TABLE public.events (id int)",
     "create rule purge as on insert to events do also delete from items where id = new.id;\n"
     "insert into events values (1), (2);\n", "deleted 2 row(s) of public.items"),
    ("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'leaver') THEN CREATE ROLE leaver; END IF; END $$;"
     "ALTER TABLE public.items OWNER TO leaver",
     # plain DROP OWNED is blocked by lint before any change (drop-owned); inside a DO block
     # only the tripwire can tell what it dropped
     "do $$ begin drop owned by leaver; end $$;\n", "dropped table public.items"),
    ("", "do $$ begin execute format('alter table %I drop column %I', 'items', 'price'); end $$;\n",
     "dropped a column of public.items"),
    ("CREATE TABLE public.prices (id int PRIMARY KEY, price numeric);"
     "INSERT INTO public.prices SELECT g, 0 FROM generate_series(1, 500, 7) g",
     "do $$ begin update items i set price = p.price from prices p where p.id = i.id; end $$;\n",
     "updated 72 row(s) of public.items"),
])
def test_invented_destroyers_are_rolled_back(items: Project, setup: str, sql: str, needle: str) -> None:
    if setup:
        items.query(setup)
    _blocked(items, sql, needle)


def test_reassign_owned_destroys_nothing(items: Project) -> None:
    items.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'leaver') THEN CREATE ROLE leaver; "
                "END IF; END $$; ALTER TABLE public.items OWNER TO leaver")
    before = data(items, "public.items")
    items.add("20240101000000_reassign.sql", "reassign owned by leaver to current_user;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert data(items, "public.items") == before


@pytest.mark.parametrize(("reset", "lock_retries"), cover([
    "RESET ALL;", "reset all;", "RESET guard.tripwire;", "SET LOCAL guard.tripwire = '';",
    "SELECT set_config('guard.tripwire', '', true);", "do $$ begin reset all; end $$;",
], [0, 1]))
def test_a_file_that_resets_the_snapshot_is_refused_not_let_through(items: Project, reset: str, lock_retries: int) -> None:
    """RESET ALL at the top of a file took the tripwire's snapshot (a transaction-local setting)
    away: its check compared with nothing, and a DELETE in a DO block went through with exit 0."""
    if lock_retries:
        (items.root / "guard.yml").write_text("migrations:\n  lock_retries: 1\n")
    _blocked(items, f"{reset}\ndo $$ begin execute 'delete from public.items where id > 3'; end $$;\n",
             "reset guard's snapshot")


def test_a_reset_all_in_a_later_streamed_file_is_refused_and_earlier_files_stay(items: Project) -> None:
    items.add("20231231000000_add.sql", "create table public.notes (id int);\n")
    _blocked(items, "RESET ALL;\ndo $$ begin delete from items where id = 1; end $$;\n",
             "reset guard's snapshot", code=4)
    assert items.history() == ["20231231000000"]


@pytest.mark.parametrize("lock_retries", [0, 1])
def test_a_file_that_narrows_the_check_to_another_table_is_still_checked_whole(items: Project, lock_retries: int) -> None:
    """guard.tripwire_only narrows the check to one table just before a whole-table copy; set by
    the file itself, it hid every other table's loss from the check at COMMIT."""
    if lock_retries:
        (items.root / "guard.yml").write_text("migrations:\n  lock_retries: 1\n")
    items.query("CREATE TABLE public.other (id int)")
    _blocked(items, "SELECT set_config('guard.tripwire_only', 'public.other'::regclass::oid::text, true);\n"
             "do $$ begin delete from public.items where id > 3; end $$;\n", "deleted 497 row(s) of public.items")
