"""The catalog queries of protective copies: keys, columns, sequences and the tables a
statement reaches (guard.protect reads them; names come back quoted with quote_ident())."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

if TYPE_CHECKING:
    import psycopg

PRIMARY_KEY = """
SELECT quote_ident(a.attname) FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
 WHERE i.indrelid = %s AND i.indisprimary
 ORDER BY array_position(i.indkey, a.attnum)
"""
# A column of a type outside pg_catalog is kept as text in the copy (COPY_COLUMNS); restore SQL
# casts it back explicitly, to the type named with its schema (arrays: of the element type).
_TYPE_JOIN = """
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
  JOIN pg_namespace n ON n.oid = coalesce(e.typnamespace, t.typnamespace)
"""
_TYPE_CAST = """
CASE WHEN n.nspname <> 'pg_catalog' THEN quote_ident(n.nspname) || '.' || quote_ident(coalesce(e.typname, t.typname))
     || CASE WHEN e.oid IS NOT NULL THEN '[]' ELSE '' END END
"""
# Columns an INSERT or UPDATE can write (generated ones are computed again).
WRITABLE = """
SELECT quote_ident(a.attname), """ + _TYPE_CAST + """ FROM pg_attribute a """ + _TYPE_JOIN + """
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' ORDER BY a.attnum
"""
# Columns an UPDATE can set (an identity GENERATED ALWAYS column only to DEFAULT).
UPDATABLE = """
SELECT quote_ident(a.attname), """ + _TYPE_CAST + """ FROM pg_attribute a """ + _TYPE_JOIN + """
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' AND a.attidentity <> 'a'
 ORDER BY a.attnum
"""
COLUMN_TYPE = """
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = %s AND attname = %s AND NOT attisdropped
"""
SCHEMA_TABLES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p') AND c.relispartition IS NOT TRUE
 ORDER BY c.oid
"""
# The copy's columns. A column of a type outside pg_catalog (an enum, a domain, an extension's
# type) is kept as text: DROP SCHEMA/TYPE/EXTENSION ... CASCADE would otherwise drop it from the
# copy too. Text goes back into the type by assignment (I/O conversion casts).
COPY_COLUMNS = """
SELECT CASE WHEN n.nspname = 'pg_catalog' THEN quote_ident(a.attname)
            ELSE quote_ident(a.attname) || '::text AS ' || quote_ident(a.attname) END
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
COPY_SIZE = "SELECT pg_total_relation_size(%s::regclass)"
# Tables TRUNCATE ... CASCADE empties along with %s: those whose foreign keys point at it, and so
# on (PostgreSQL's heap_truncate_find_FKs, applied until nothing new is found).
REFERENCING_TABLES = """
WITH RECURSIVE refs(oid) AS (
  SELECT %s::oid
  UNION
  SELECT k.conrelid FROM pg_constraint k JOIN refs r ON k.confrelid = r.oid WHERE k.contype = 'f'
)
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM refs
  JOIN pg_class c ON c.oid = refs.oid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE refs.oid <> %s::oid AND c.relkind IN ('r', 'p')
"""
LOCK_WRITERS = "LOCK TABLE {rel} IN SHARE ROW EXCLUSIVE MODE"
# Rules on a table for some events (ev_type '2' UPDATE, '3' INSERT, '4' DELETE). PostgreSQL
# refuses a data-modifying WITH over most DELETE or UPDATE rules (DO ALSO, conditional or
# NOTHING DO INSTEAD, a DO INSTEAD without RETURNING) and INSERT ... ON CONFLICT over any
# INSERT or UPDATE rule (rewriteHandler.c): statements of those shapes are not written then.
HAS_RULES = ("SELECT EXISTS (SELECT FROM pg_catalog.pg_rewrite WHERE ev_class = %s "
             "AND ev_type = ANY(%s::\"char\"[]))")


def has_rules(conn: psycopg.Connection[Any], oid: int, events: str) -> bool:
    """Whether the table ``oid`` has a rule on any of ``events`` (pg_rewrite.ev_type letters:
    "2" UPDATE, "3" INSERT, "4" DELETE; queries.html "Data-Modifying Statements in WITH",
    sql-insert.html "ON CONFLICT")."""
    row = conn.execute(HAS_RULES, (oid, list(events))).fetchone()
    return bool(row and row[0])


def upsert_under_rules(
    table: str, copy: str, key: list[str], writable: list[tuple[str, str | None]], updatable: list[str],
) -> str:
    """Restore SQL putting the rows of ``copy`` back into ``table`` by ``key`` where the table
    has INSERT or UPDATE rules, which refuse ``INSERT ... ON CONFLICT``: rows whose key is
    there get their old values (``updatable`` columns), the others are inserted.
    ``writable`` is (column, cast back from the copy's text or None), names quoted."""
    cast = {name: kind for name, kind in writable}

    def value(name: str) -> str:
        return f"c.{name}::{cast[name]}" if cast.get(name) else f"c.{name}"

    match = " AND ".join(f"t.{k} = c.{k}" for k in key)
    sets = [c for c in updatable if c not in key]
    update = (f"UPDATE {table} AS t SET ({', '.join(sets)}) = ROW({', '.join(map(value, sets))}) "  # noqa: S608
              f"FROM {copy} AS c WHERE {match};\n") if sets else ""
    return (f"{update}INSERT INTO {table} ({', '.join(cast)}) OVERRIDING SYSTEM VALUE "  # noqa: S608
            f"SELECT {', '.join(map(value, cast))} FROM {copy} AS c "
            f"WHERE NOT EXISTS (SELECT FROM {table} AS t WHERE {match})")
# Ascending sequences owned by a column (serial, identity), schema-qualified.
OWNED_SEQUENCES = """
SELECT quote_ident(a.attname), quote_ident(n.nspname) || '.' || quote_ident(q.relname) FROM pg_depend d
  JOIN pg_sequence s ON s.seqrelid = d.objid
  JOIN pg_class q ON q.oid = s.seqrelid JOIN pg_namespace n ON n.oid = q.relnamespace
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.refobjid = %s
   AND d.deptype IN ('a', 'i') AND s.seqincrement > 0
"""


class Resolved(Struct):
    """A table a statement destroys, as the server resolved it."""

    oid: int
    name: str  # schema-qualified, quoted as needed: restore SQL must not depend on a search_path
    relname: str
    size: int
    relkind: str = "r"  # r: a table (read with ONLY: without the tables inheriting from it); p: partitioned; f: foreign
    parents: list[str] = field(default_factory=list)  # inheritance parents (guard.protect.family)

    @property
    def own(self) -> str:
        """The table's own rows: ONLY for a table (inheritance children are tables of their own),
        the whole tree for a partitioned table (its rows are in its partitions)."""
        return f"ONLY {self.name}" if self.relkind == "r" else self.name
