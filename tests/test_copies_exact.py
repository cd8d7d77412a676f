"""Protective copies hold exactly what a statement destroyed (issue #13, items 3-5): checksum
before, run, restore with the report's SQL, same checksum. Volatile conditions, LIMIT without
order, now(), sequences and odd names do not matter."""

from __future__ import annotations

import pytest

from tests.safety_support import data, restore, run_with_copies, shape
from tests.support import Project

ITEMS = (
    "CREATE SEQUENCE public.pick;"
    "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric, "
    "  added timestamptz DEFAULT now(), gen int GENERATED ALWAYS AS (id * 2) STORED, "
    "  ident int GENERATED ALWAYS AS IDENTITY);"
    "INSERT INTO public.items (id, name, price, added) "
    "SELECT g, 'item ' || g, g * 1.5, now() - g * interval '1 hour' FROM generate_series(1, 300) g;"
    "CREATE TABLE public.prices (id int PRIMARY KEY, price numeric);"
    "INSERT INTO public.prices SELECT g, g FROM generate_series(1, 300, 3) g;"
)


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    return ready


def _round_trip(project: Project, sql: str, table: str = "public.items", *, changed: bool = True) -> dict:  # type: ignore[type-arg]
    before = data(project, table)
    report = run_with_copies(project, "20240101000000_destroy.sql", sql + "\n")
    if changed:
        assert not project.table_exists(table) or data(project, table) != before
    restore(project, report)
    assert data(project, table) == before
    return report


@pytest.mark.parametrize("sql", [
    "delete from items where id in (select id from items order by random() limit 10);",
    "delete from items where random() < 0.2;",
    "delete from items where id in (select id from items limit 7);",
    "delete from items where added > now() - interval '10 hours';",
    "delete from items where id % 5 = nextval('pick') % 5;",
    "with doomed as (select id from items order by random() limit 5) delete from items i using doomed d where i.id = d.id;",
    "delete from items as i where i.price > 400 returning i.id;",
    "delete from only items where id > 250;",
    "delete from items;",
])
def test_delete_copies_exactly_the_rows_it_deleted(items: Project, sql: str) -> None:
    report = _round_trip(items, sql)
    copy = report["protective_copies"][0]
    assert copy["kind"] == "rows" and copy["rows"] is not None and copy["rows"] > 0


@pytest.mark.parametrize("sql", [
    "update items set price = 0 where id in (select id from items order by random() limit 10);",
    "update items set price = price * random(), name = 'x' where random() < 0.3;",
    "update items i set price = p.price + 1 from prices p where i.id = p.id;",
    "update items set price = nextval('pick');",
    "with few as (select id from items limit 3) update items set name = upper(name) where id in (select id from few);",
    # The primary key itself: restore SQL finds each row by its new key (its old one is gone).
    "update items set id = id + 1000 where id % 10 = 0;",
    "update items set id = -id, name = 'negative' where id < 20;",
])
def test_update_copies_the_old_values_of_exactly_the_rows_it_changed(items: Project, sql: str) -> None:
    report = _round_trip(items, sql)
    assert report["protective_copies"][0]["kind"] == "rows"


def test_the_copy_of_a_random_delete_holds_the_deleted_rows_not_others(items: Project) -> None:
    items.add("20240101000000_d.sql",
              "delete from items where id in (select id from items order by random() limit 10);\n")
    result = items.guard("run")
    assert result.code == 0 and result.report is not None
    copy = result.report["protective_copies"][0]["copy"]
    assert items.query(f"SELECT count(*) FROM {copy}")[0][0] == 10
    assert items.query(f"SELECT count(*) FROM {copy} c JOIN items i USING (id)")[0][0] == 0


def test_merge_is_copied_and_restored(items: Project) -> None:
    _round_trip(items, "merge into items i using prices p on i.id = p.id "
                       "when matched and p.id < 100 then delete when matched then update set price = 0;")


def test_truncate_and_drop_column_are_restored(items: Project) -> None:
    _round_trip(items, "truncate items;")


@pytest.mark.parametrize("table", ['"User"', '"Order Items"', '"' + "a" * 63 + '"', '"Ünïcødé tablé"'])
def test_odd_table_names_are_copied_and_restored(ready: Project, table: str) -> None:
    ready.query(f"CREATE TABLE public.{table} (id int PRIMARY KEY, v text);"
                f"INSERT INTO public.{table} SELECT g, 'v' || g FROM generate_series(1, 50) g;"
                "CREATE TABLE public.\"user\" (id int)")
    report = _round_trip(ready, f"delete from {table} where id > 40;", f"public.{table}")
    assert report["protective_copies"][0]["source"].replace('"', "") == f"public.{table}".replace('"', "")
    ready.query('DROP TABLE public."user"')


def test_a_quoted_table_is_not_confused_with_its_lower_case_namesake(ready: Project) -> None:
    ready.query('CREATE TABLE public."User" (id int PRIMARY KEY, email text);'
                'INSERT INTO public."User" SELECT g, g || \'@x\' FROM generate_series(1, 20) g;'
                "CREATE TABLE public.user_audit (id int)")
    before = shape(ready, 'public."User"')
    report = _round_trip(ready, 'drop table "User";', 'public."User"')
    assert shape(ready, 'public."User"') == before
    assert report["protective_copies"][0]["rows"] == 20


def test_two_long_names_with_the_same_beginning_get_distinct_copies(ready: Project) -> None:
    stem = "x" * 60
    ready.query(f"CREATE TABLE public.{stem}_one (id int); INSERT INTO public.{stem}_one VALUES (1);"
                f"CREATE TABLE public.{stem}_two (id int); INSERT INTO public.{stem}_two VALUES (2);")
    ready.add("20240101000000_drop.sql", f"drop table {stem}_one;\ndrop table {stem}_two;\n")
    result = ready.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    copies = [c["copy"] for c in result.report["protective_copies"]]
    assert len(set(copies)) == 2
    assert all(len(c.split(".", 1)[1].strip('"').encode()) <= 63 for c in copies)
    restore(ready, result.report)
    assert ready.query(f"SELECT (SELECT id FROM {stem}_one), (SELECT id FROM {stem}_two)")[0] == (1, 2)


@pytest.mark.parametrize("schema", ["Guard Backups", "GuardBackup", "guard-copies"])
def test_protect_schema_in_mixed_case_or_with_spaces(items: Project, schema: str) -> None:
    (items.root / "guard.yml").write_text(f'protect:\n  schema: "{schema}"\n')
    report = _round_trip(items, "delete from items where id < 10;")
    assert report["protective_copies"][0]["copy"].startswith(f'"{schema}".')


def test_the_table_the_search_path_names_is_the_one_copied(items: Project) -> None:
    items.query("CREATE SCHEMA scratch; CREATE TABLE scratch.items (id int); INSERT INTO scratch.items VALUES (1)")
    report = _round_trip(items, "drop table public.items;")
    assert report["protective_copies"][0]["source"] == "public.items"
    assert items.query("SELECT count(*) FROM scratch.items")[0][0] == 1
    before = data(items, "scratch.items")
    items.add("20240102000000_scratch.sql", "set search_path = scratch, public;\ndelete from items;\n")
    result = items.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    assert result.report["protective_copies"][0]["source"] == "scratch.items"
    restore(items, result.report)
    assert data(items, "scratch.items") == before


def test_a_renamed_table_dropped_later_is_copied(items: Project) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_rename.sql", "alter table items rename to items_old;\n")
    items.add("20240102000000_drop.sql", "drop table items_old;\n")
    result = items.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    restore(items, result.report)
    assert data(items, "public.items_old") == before


def test_truncate_cascade_copies_the_tables_it_empties_too(items: Project) -> None:
    items.query("CREATE TABLE public.orders (id int PRIMARY KEY, item int REFERENCES public.items (id));"
                "INSERT INTO public.orders SELECT g, g FROM generate_series(1, 40) g;"
                "CREATE TABLE public.lines (id int PRIMARY KEY, o int REFERENCES public.orders (id));"
                "INSERT INTO public.lines SELECT g, g FROM generate_series(1, 20) g")
    before = {t: data(items, t) for t in ("public.items", "public.orders", "public.lines")}
    items.add("20240101000000_t.sql", "truncate items, orders cascade;\n")
    result = items.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    assert sorted(c["source"] for c in result.report["protective_copies"]) == [
        "public.items", "public.lines", "public.orders"]
    restore(items, result.report)
    assert {t: data(items, t) for t in before} == before


PARTITIONED = (
    "CREATE TABLE public.events (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
    "CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');"
    "CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM ('2024-07-01') TO ('2025-01-01');"
    "INSERT INTO public.events SELECT g, date '2024-01-01' + g, 'v' || g FROM generate_series(1, 300) g;"
)


@pytest.mark.parametrize("sql", [
    "delete from events where id in (select id from events order by random() limit 30);",
    "update events set v = 'changed' where id % 7 = 0;",
])
def test_partitioned_tables_round_trip(ready: Project, sql: str) -> None:
    ready.query(PARTITIONED)
    _round_trip(ready, sql, "public.events")


def test_a_do_block_deleting_from_partitions_is_rolled_back(ready: Project) -> None:
    ready.query(PARTITIONED)
    before = data(ready, "public.events")
    ready.add("20240101000000_d.sql", "do $$ begin delete from events where id < 5; end $$;\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert "public.events_a" in result.output
    assert data(ready, "public.events") == before


# ALTER COLUMN ... TYPE that rounds, cuts or converts: the restore SQL puts the old type back
# before the old values (an UPDATE into the new type would round or cut them again, or fail).
@pytest.mark.parametrize("sql", [
    "alter table items alter column price type numeric(10,0);",
    "alter table items alter column name type varchar(4) using name::varchar(4);",
    "alter table items alter column name type int using length(name);",
    "alter table items alter column added type date;",
    "alter table items alter column price type int using price::int;",
])
def test_a_retyped_column_is_restored_with_its_type(items: Project, sql: str) -> None:
    before_type = shape(items, "public.items")
    report = _round_trip(items, sql)
    assert report["protective_copies"][0]["kind"] == "column"
    assert shape(items, "public.items") == before_type


def test_a_temporary_table_of_the_same_name_gets_no_copy(items: Project) -> None:
    """A file's own temporary table shadows public.items: deleting from it destroys nothing that
    existed, and a copy of it could never be restored (every restore SQL of the report runs)."""
    report = _round_trip(items, "create temp table items (id int);\ninsert into items values (1);\n"
                                "delete from items;\ndelete from public.items where id < 3;")
    assert [c["source"] for c in report["protective_copies"]] == ["public.items"]


@pytest.mark.parametrize("sql", [
    "truncate items restart identity;",
    "delete from items where id > 100;\nalter sequence items_ident_seq restart;",
])
def test_restored_rows_are_not_handed_their_ids_again(items: Project, sql: str) -> None:
    """TRUNCATE ... RESTART IDENTITY sends the identity back to 1: after the restore the next
    row must not get an id a restored row holds (restore SQL moves the sequence past them)."""
    items.query("ALTER TABLE public.items ADD CONSTRAINT ident_unique UNIQUE (ident)")
    _round_trip(items, sql)
    items.query("INSERT INTO public.items (id, name) VALUES (100000, 'after the restore')")
