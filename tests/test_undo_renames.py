"""`guard undo` of releases that renamed, moved or reshaped tables and columns AND wrote rows,
on a real PostgreSQL through the real CLI: the database ends exactly as before (catalog
fingerprint and every table's checksum), a dry run changes nothing, and the undo itself can
be undone. Each shape below failed once (the undo rolled back with an error, or refused, or
said less than it did)."""

from __future__ import annotations

import pytest

from tests.support import Project, undo_then_undo_the_undo
from tests.test_undo import SCHEMA, run_then_dry_undo, state

EXTRA = """
CREATE TABLE public.lines (order_id int, line int, qty int, note text, PRIMARY KEY (order_id, line));
INSERT INTO public.lines SELECT g / 4 + 1, g % 4, g, 'n' || g FROM generate_series(0, 79) g;
CREATE TABLE public.parted (id int, region text, amount int, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE public.parted_eu PARTITION OF public.parted FOR VALUES IN ('eu');
CREATE TABLE public.parted_us PARTITION OF public.parted FOR VALUES IN ('us');
INSERT INTO public.parted SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, g * 10 FROM generate_series(1, 40) g;
CREATE SCHEMA archive;
CREATE TABLE public.loose (a int, b text, c numeric);
INSERT INTO public.loose SELECT g, 'b' || g, g * 2 FROM generate_series(1, 30) g;
"""


@pytest.fixture
def shop(ready: Project) -> Project:
    ready.query(SCHEMA)
    ready.query(EXTRA)
    return ready


SHAPES: dict[str, list[str]] = {
    # Partitions: their columns are renamed, re-added and retyped through the parent's
    # (PostgreSQL refuses each on an inherited column: the undo rolled back, exit 1).
    "partitioned_rename_then_delete": ["alter table public.parted rename column amount to amt;\n"
                                       "delete from public.parted where amt > 300;\n"],
    "partitioned_rename_then_update": ["alter table public.parted rename column amount to amt;\n"
                                       "update public.parted set amt = 0 where id < 10;\n"],
    "partitioned_drop_column": ["alter table public.parted drop column amount;\n"],
    "partitioned_retype_then_update": ["alter table public.parted alter column amount type text;\n"
                                       "update public.parted set amount = 'x' where id < 5;\n"],
    # A copy made after a retype names the column by its name after a rename (exit 1: the
    # type went back by a cast of 'zz' instead of from the copy).
    "rename_retype_then_update": ["alter table public.orders rename column total to amount;\n"
                                  "alter table public.orders alter column amount type text;\n"
                                  "update public.orders set amount = 'zz' where id < 30;\n"],
    # A column added under the name a renamed column had (exit 1: 'already exists'; the copy's
    # column of that name was refused as 'cannot be matched').
    "rename_then_add_old_name_then_delete": ["alter table public.orders rename column total to amount;\n"
                                             "alter table public.orders add column total text;\n"
                                             "delete from public.orders where id > 450;\n"],
    "rename_then_add_old_name_then_update": ["alter table public.orders rename column total to amount;\n"
                                             "alter table public.orders add column total text;\n"
                                             "update public.orders set total = 'x', amount = 0 where id < 50;\n"
                                             "update public.orders set total = 'y' where id < 30;\n"],
    # Dropped, then added again by name: before d64d98c, exit 0 and exactly as before; after it,
    # both copies refused (exit 4).
    "drop_add_same_name_then_update": ["alter table public.orders drop column total;\n"
                                       "alter table public.orders add column total text;\n"
                                       "update public.orders set total = 'x' where id < 20;\n"],
    "drop_add_same_name_then_update_twice": ["alter table public.orders drop column total;\n"
                                             "alter table public.orders add column total text;\n"
                                             "update public.orders set total = 'x' where id < 20;\n"
                                             "update public.orders set total = 'y' where id < 10;\n"],
    # Tables moved to another schema (refused as 'moved', then exit 1 writing to the name before).
    "set_schema_then_delete": ["alter table public.orders set schema archive;\n"
                               "delete from archive.orders where id > 450;\n"],
    "set_schema_rename_then_update": ["alter table public.accounts set schema archive;\n"
                                      "alter table archive.accounts rename to users;\n"
                                      "update archive.users set plan = 'z' where id < 20;\n"],
    # Tables that swapped names, or a table made under a renamed one's name (exit 1, 42P07).
    "tables_swap_names_then_delete": ["alter table public.events rename to tmp;\n"
                                      'alter table public."OddName" rename to events;\n'
                                      'alter table public.tmp rename to "OddName";\n'
                                      "delete from public.events where id > 15;\n"],
    "rename_table_then_create_old_name": ["alter table public.events rename to events_old;\n"
                                          "create table public.events (id int primary key);\n"
                                          "delete from public.events_old where id > 30;\n"],
    'dotted_table_name': ['alter table public."OddName" rename to "a.b";\n'
                          'delete from public."a.b" where id > 10;\n'],
    # An UPDATE of the primary key: the copy keeps each row's new key (refused, exit 3; before
    # d64d98c exit 1), also with the key renamed before or after, and a composite key.
    "update_key": ["update public.orders set id = id + 1000 where id > 490;\n"],
    "rename_key_then_update_key": ["alter table public.orders rename column id to oid2;\n"
                                   "update public.orders set oid2 = oid2 + 1000 where oid2 > 490;\n"],
    "update_key_then_rename_key": ["update public.orders set id = id + 1000, total = 1 where id > 495;\n"
                                   "alter table public.orders rename column id to order_id;\n"],
    "composite_key_rename_then_update_key": ["alter table public.lines rename column line to ln;\n"
                                             "update public.lines set ln = ln + 10, qty = 0 where order_id < 3;\n"],
    # Updated, then the key renamed: the end of the run joined the copy by the new name and
    # recorded no catalog at all (undo refused: nothing can be inverted locally).
    "update_then_rename_key": ["update public.orders set total = 0 where id < 10;\n"
                               "alter table public.orders rename column id to order_id;\n"],
    # Dropped, added again by name, written, dropped again: the last two copies hold the
    # second column, which was put back into the first ('x'::numeric, exit 1).
    "drop_add_drop_same_name": ["alter table public.orders drop column total;\n"
                                "alter table public.orders add column total text;\n"
                                "update public.orders set total = 'x' where id < 20;\n"
                                "alter table public.orders drop column total;\n"],
    # A referenced key renamed: its constraint was dropped before the foreign key that depends
    # on it (2BP01, exit 1).
    "referenced_key_renamed_then_delete": ["alter table public.accounts rename column id to acc_id;\n"
                                           "delete from public.orders where account > 250;\n"
                                           "delete from public.accounts where acc_id > 250;\n"],
    "set_schema_into_a_new_schema": ["create schema s2;\nalter table public.orders set schema s2;\n"
                                     "delete from s2.orders where id > 450;\n"],
    # Renamed tables were neither copied nor locked by the undo (its actions named them by the
    # name before): the undo of the undo said 'as before' with the truncated rows gone.
    "partitioned_renamed_then_truncate": ["alter table public.parted rename to p2;\n"
                                          "alter table public.p2 rename column amount to amt;\ntruncate public.p2;\n"],
    "partition_renamed_then_delete": ["alter table public.parted_eu rename to parted_europe;\n"
                                      "delete from public.parted_europe where id > 30;\n"],
    # Triggers, policies and views the run added on a renamed table (or under its old name)
    # were dropped after the rename back: by the name now, so not at all (exit 4, 'still
    # differs'), or the rename hit the view (42P07, exit 1).
    "rename_table_then_trigger": ["alter table public.orders rename to purchases;\n"
                                  "create function public.f() returns trigger language plpgsql as $$ begin return new; end $$;\n"
                                  "create trigger trg before update on public.purchases for each row execute function public.f();\n"
                                  "delete from public.purchases where id > 490;\n"],
    "rename_table_then_view_under_its_old_name": ["alter table public.orders rename to purchases;\n"
                                                  "create view public.orders as select * from public.purchases;\n"
                                                  "delete from public.purchases where id > 490;\n"],
    "rename_table_then_policy": ["alter table public.orders rename to purchases;\n"
                                 "create policy p on public.purchases using (true);\n"
                                 "update public.purchases set total = 0 where id < 5;\n"],
    # The column put back exactly, yet 'the run kept no copy of its values' (exit 4): the copy
    # names the table as it was renamed.
    "rename_table_then_drop_column": ["alter table public.orders rename to purchases;\n"
                                      "alter table public.purchases drop column total;\n"],
    # Already held; the same kind.
    "composite_key_renamed_then_delete": ['alter table public.lines rename column order_id to "Order Id";\n'
                                          "alter table public.lines rename column line to ln;\n",
                                          "delete from public.lines where qty > 50;\n"],
    "table_renamed_twice_with_deletes": ["alter table public.orders rename to o1;\ndelete from public.o1 where id > 480;\n",
                                         "alter table public.o1 rename to o2;\ndelete from public.o2 where id < 10;\n"],
    "enum_column_renamed_then_update": ["alter table public.accounts rename column mood to feeling;\n"
                                        "update public.accounts set feeling = 'ok' where id < 40;\n"],
    "identity_key_renamed_then_delete": ["alter table public.logins rename column id to login_id;\n"
                                         "delete from public.logins where login_id > 20;\n"],
    "unicode_and_quoted_names": ['alter table public."OddName" rename column "Mixed Col" to "Ünï ""q"" col";\n'
                                'alter table public."OddName" rename column id to "ID key";\n'
                                'update public."OddName" set "Ünï ""q"" col" = \'w\' where "ID key" < 5;\n'
                                'delete from public."OddName" where "ID key" > 17;\n'],
    "truncate_after_rename_in_another_file": ["alter table public.orders rename column total to amount;\n",
                                              "truncate public.orders;\n"],
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_undo_of_a_renaming_release_is_exact_and_undoable(shop: Project, shape: str) -> None:
    before = run_then_dry_undo(shop, shape, SHAPES[shape], codes=(0,))

    undone = shop.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert state(shop) == before
    assert shop.history() == []


def test_rows_written_since_a_rename_release_are_kept(shop: Project) -> None:
    shop.add("20240101000001_release.sql", "alter table public.orders rename column id to order_id;\n"
             "alter table public.orders rename column total to amount;\n"
             "update public.orders set amount = 0 where order_id <= 10;\n")
    assert shop.guard("run").code == 0
    shop.query("UPDATE public.orders SET amount = 99 WHERE order_id IN (1, 2)")  # the application, since

    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "2 of the 10 row(s) the run updated were changed or deleted by the application since" in kept.stdout
    assert shop.query("SELECT id, total FROM public.orders WHERE id <= 4 ORDER BY id") == [
        (1, 99), (2, 99), (3, 4.5), (4, 6)]


def test_force_after_a_rename_release_puts_everything_back(shop: Project) -> None:
    before = state(shop)
    shop.add("20240101000001_release.sql", "alter table public.orders rename column id to order_id;\n"
             "alter table public.orders rename column total to amount;\n"
             "update public.orders set amount = 0 where order_id <= 10;\n")
    assert shop.guard("run").code == 0
    shop.query("UPDATE public.orders SET amount = 99 WHERE order_id IN (1, 2)")
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 0, forced.output
    assert state(shop) == before


@pytest.mark.parametrize("shape", ["tables_swap_names_then_delete", "set_schema_rename_then_update",
                                   "rename_then_add_old_name_then_update", "update_key_then_rename_key",
                                   "partitioned_renamed_then_truncate", "partition_renamed_then_delete",
                                   "drop_add_drop_same_name", "referenced_key_renamed_then_delete"])
def test_the_undo_of_a_renaming_release_can_be_undone(shop: Project, shape: str) -> None:
    for n, text in enumerate(SHAPES[shape], start=1):
        shop.add(f"2024010100000{n}_{shape}.sql", text)
    assert shop.guard("run").code == 0
    after_run = state(shop)
    undo_then_undo_the_undo(shop)
    assert state(shop) == after_run


def test_a_key_updated_away_and_inserted_again_since_is_kept(shop: Project) -> None:
    """The run moved keys 491..500 to 1491..1500; the application then inserted a row with key
    495: putting 1495 back to 495 would violate the primary key (the undo rolled back, exit 1)."""
    shop.add("20240101000001_release.sql", "update public.orders set id = id + 1000 where id > 490;\n")
    assert shop.guard("run").code == 0
    shop.query("INSERT INTO public.orders VALUES (495, 1, 1)")

    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "1 of the 10 row(s) the run updated the key of have their key from before the run held" in kept.stdout
    assert shop.query("SELECT id, total FROM public.orders WHERE id IN (495, 1495, 496, 1496) ORDER BY id") == [
        (495, 1), (496, 744), (1495, 742.5)]
    assert shop.history() == ["20240101000001"]


def test_force_replaces_a_row_inserted_since_under_a_key_the_run_moved(shop: Project) -> None:
    before = state(shop)
    shop.add("20240101000001_release.sql", "update public.orders set id = id + 1000 where id > 490;\n")
    assert shop.guard("run").code == 0
    shop.query("INSERT INTO public.orders VALUES (495, 1, 1)")
    forced = shop.guard("undo", "--yes", "--force")
    assert forced.code == 0, forced.output
    assert state(shop) == before


def test_a_renamed_then_dropped_column_without_a_key_is_named_not_guessed(shop: Project) -> None:
    """No primary key, and the column was renamed, then dropped: the copy holds whole rows under
    a name neither catalog has. Undo re-adds the column empty and names the copy (exit 4)."""
    shop.add("20240101000001_release.sql", "alter table public.loose rename column c to cee;\n"
             "alter table public.loose drop column cee;\n")
    assert shop.guard("run").code == 0
    undone = shop.guard("undo", "--yes")
    assert undone.code == 4, undone.output
    assert 'public.loose has no primary key: the copy holds whole rows; put "cee" back by matching rows' in undone.stdout
    assert shop.query("SELECT count(*), count(c) FROM public.loose") == [(30, 0)]  # re-added, nothing put in wrong
