"""The checksums the run records for the tables it added (guard.undo.catalog.checksums) equal
the one-table checksum undo compares them with, whatever shape the table has: the shortcut
for tables without a page must never call a table with rows empty."""

from __future__ import annotations

from typing import Any

import psycopg

from guard.undo import catalog

SHAPES = '''
CREATE TABLE public.empty (id int);
CREATE TABLE public.filled (id int PRIMARY KEY, note text);
INSERT INTO public.filled SELECT g, md5(g::text) FROM generate_series(1, 500) g;
CREATE TABLE public.emptied (id int);
INSERT INTO public.emptied VALUES (1), (2);
DELETE FROM public.emptied;
CREATE TABLE public.truncated (id int);
INSERT INTO public.truncated VALUES (1);
TRUNCATE public.truncated;
CREATE TABLE public.parted (id int) PARTITION BY RANGE (id);
CREATE TABLE public.parted_low PARTITION OF public.parted FOR VALUES FROM (0) TO (10);
CREATE TABLE public.parted_high PARTITION OF public.parted FOR VALUES FROM (10) TO (20);
INSERT INTO public.parted VALUES (3), (4);
CREATE UNLOGGED TABLE public.unlogged (id int);
INSERT INTO public.unlogged VALUES (7);
CREATE TABLE public."Odd ""name""" (v jsonb);
INSERT INTO public."Odd ""name""" VALUES ('{"a": 1}');
CREATE TABLE public.toasted (big text);
INSERT INTO public.toasted VALUES (repeat(md5('x'), 10000));
CREATE SCHEMA "Other";
CREATE TABLE "Other".t (id int);
'''


def _one_by_one(conn: psycopg.Connection[Any], tables: dict[str, str]) -> dict[str, str]:
    return {oid: catalog.checksum(conn, name) for oid, name in tables.items()}


def test_checksums_equal_the_one_table_checksum_for_every_shape(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute(SHAPES)
    tables = catalog.read(db_conn).tables
    names = {name: oid for oid, name in tables.items()}
    found = catalog.checksums(db_conn, tables)
    assert found == _one_by_one(db_conn, tables)
    # The figures themselves: rows where there are rows, none where there are none.
    rows = {name: int(found[oid].split(":")[0]) for name, oid in names.items()}
    assert rows["public.filled"] == 500 and rows["public.parted"] == 2 and rows["public.parted_low"] == 2
    assert rows["public.unlogged"] == 1 and rows['public."Odd ""name"""'] == 1 and rows["public.toasted"] == 1
    assert rows["public.empty"] == rows["public.emptied"] == rows["public.truncated"] == rows['"Other".t'] == 0
    assert catalog.checksums(db_conn, {}) == {}


def test_checksums_of_more_tables_than_one_query_holds(db_conn: psycopg.Connection[Any]) -> None:
    count = catalog.CHECKSUMS_PER_QUERY * 2 + 7
    db_conn.execute("".join(f"CREATE TABLE public.t{i} (id int); " for i in range(count)))
    # Every third table gets rows (a page): those go through the batched UNION ALL queries.
    db_conn.execute("".join(f"INSERT INTO public.t{i} SELECT generate_series(1, {i}); " for i in range(1, count, 3)))
    tables = catalog.read(db_conn).tables
    assert len(tables) == count
    found = catalog.checksums(db_conn, tables)
    assert found == _one_by_one(db_conn, tables)
    assert sum(int(v.split(":")[0]) for v in found.values()) == sum(range(1, count, 3))
