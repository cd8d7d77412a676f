"""Rows for the lock trace: a shadow's tables are empty, production's are not.

A statement that scans or rewrites a table does so on an empty one too (the trace sees the
seq_scan counter and the relfilenode move), but its time, and whether it fails at all (SET NOT
NULL, a new NOT NULL column without default, a unique index), depend on rows. Before a file is
traced, `seed_rows` fills the tables the file names (and the tables they reference) with a
bounded number of made-up rows, inside the trace's transaction, which is rolled back: the dry
run never sees them.

Values follow each column's type (pg_type.typcategory, docs "pg_type"); columns with a default,
identity or generated columns get theirs. Integers count 1..n in every table, so a foreign key
on an integer usually finds its row in the referenced table seeded first. A table whose rows
PostgreSQL refuses (a CHECK, a foreign key, a trigger) is left as it was: best effort, never an
error (each table in its own savepoint).
"""

from __future__ import annotations

import re
from typing import Any

ROWS_PER_TABLE = 200
MAX_TABLES = 50

CANDIDATES = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relname,
       ARRAY(SELECT confrelid FROM pg_constraint WHERE conrelid = c.oid AND contype = 'f')
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp%%'
"""
COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), format_type(coalesce(bt.oid, t.oid), NULL),
       coalesce(bt.typcategory, t.typcategory)::text, coalesce(bt.typname, t.typname)::text,
       a.atthasdef OR a.attidentity <> '' OR a.attgenerated <> ''
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type bt ON t.typtype = 'd' AND bt.oid = t.typbasetype
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""


def named_tables(conn: Any, text: str) -> list[tuple[int, str]]:
    """(oid, qualified name) of the ordinary and partitioned tables whose name appears as a
    word in `text` (a migration file), then the tables they reference by foreign key; at most
    MAX_TABLES, referenced tables first."""
    words = {w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_$]*", text)}
    rows = conn.execute(CANDIDATES).fetchall()
    by_oid = {oid: (name, refs) for oid, name, short, refs in rows}
    chosen = [oid for oid, _name, short, _refs in rows if short.lower() in words]
    ordered: list[int] = []
    for oid in chosen:
        for ref in by_oid[oid][1] or ():
            if ref in by_oid and ref not in ordered and ref != oid:
                ordered.append(ref)
        if oid not in ordered:
            ordered.append(oid)
    return [(oid, by_oid[oid][0]) for oid in ordered[:MAX_TABLES]]


def _value(type_sql: str, base_sql: str, category: str, base_name: str) -> str | None:
    """An SQL expression of row number g for a column of that type, or None (left NULL)."""
    if category == "N":
        return f"(g)::{type_sql}"
    if category == "S":
        return f"('s' || g)::{type_sql}"
    if category == "B":
        return f"(g % 2 = 0)::{type_sql}"
    if category == "D":
        if base_name == "interval":
            return f"(g * interval '1 minute')::{type_sql}"
        return f"(timestamp '2024-01-01' + g * interval '1 hour')::{type_sql}"
    if category == "E":
        return f"((enum_range(NULL::{base_sql}))[1])::{type_sql}"
    if category == "A" or base_name in ("json", "jsonb"):
        return f"('{{}}')::{type_sql}"
    if base_name == "uuid":
        return f"(md5(g::text)::uuid)::{type_sql}"
    if category == "I":
        return f"('10.0.0.1')::{type_sql}"
    return None


def _insert(conn: Any, oid: int, name: str, rows: int) -> str:
    from psycopg import sql

    columns, values = [], []
    for attname, type_sql, base_sql, category, base_name, has_default in conn.execute(COLUMNS, (oid,)).fetchall():
        value = None if has_default else _value(type_sql, base_sql, category, base_name)
        if value is not None:
            columns.append(sql.Identifier(attname).as_string(conn))
            values.append(value)
    target = f"{name} ({', '.join(columns)})" if columns else name
    return f"INSERT INTO {target} SELECT {', '.join(values)} FROM generate_series(1, {int(rows)}) AS g"


def seed_rows(conn: Any, text: str, *, rows: int = ROWS_PER_TABLE, only: set[str] | None = None) -> dict[str, int]:
    """Insert up to `rows` rows into each empty table `text` names (see named_tables), inside
    the caller's open transaction on `conn`; returns {table: rows inserted}. A table PostgreSQL
    refuses the rows of is rolled back to its savepoint and tried again after the others (a
    foreign key to a table seeded later), twice at most; then left empty. only: seed no table
    outside this set of names (format('%I.%I'))."""
    import psycopg

    seeded: dict[str, int] = {}
    todo = [(oid, name) for oid, name in named_tables(conn, text) if only is None or name in only]
    for _attempt in range(3):
        failed = []
        for oid, name in todo:
            conn.execute("SAVEPOINT guard_seed")
            try:
                held = conn.execute(f"SELECT EXISTS (SELECT FROM {name})").fetchone()
                count = 0 if held and held[0] else conn.execute(_insert(conn, oid, name, rows)).rowcount
                conn.execute("RELEASE SAVEPOINT guard_seed")
                if count:
                    seeded[name] = count
            except psycopg.Error:
                conn.execute("ROLLBACK TO SAVEPOINT guard_seed")
                conn.execute("RELEASE SAVEPOINT guard_seed")
                failed.append((oid, name))
        if not failed or len(failed) == len(todo):
            break
        todo = failed
    return seeded
