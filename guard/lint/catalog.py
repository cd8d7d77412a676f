"""The lint's questions to a connected database, answered from its catalog (read-only).

Each question is one named query; identifiers travel as regclass text (quoted by the lint)
and values as parameters. Source for each rule the answer feeds: guard.lint.locks.
"""

from __future__ import annotations

from typing import Any

TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
PARTITIONED = "SELECT relkind IN ('p', 'I') FROM pg_class WHERE oid = to_regclass(%s)"
# A valid CHECK whose whole expression is (column IS NOT NULL): PostgreSQL 12+ then skips the
# scan of SET NOT NULL (tablecmds.c NotNullImpliedByRelConstraints).
NOT_NULL_PROVEN = """
SELECT EXISTS (
  SELECT FROM pg_constraint c
   WHERE c.conrelid = to_regclass(%(table)s) AND c.contype = 'c' AND c.convalidated
     AND pg_get_constraintdef(c.oid) = format('CHECK ((%%s IS NOT NULL))', quote_ident(%(column)s)))
"""
FUNCTION_SCHEMAS = """
SELECT DISTINCT n.nspname FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = %(name)s AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
"""
# Objects that depend on it with a normal dependency (columns of its type, views over it,
# foreign keys to it, ...): what DROP ... CASCADE would drop too (catalogs.sgml, pg_depend).
HAS_DEPENDENTS = """
SELECT EXISTS (
  SELECT FROM pg_depend d, (SELECT {lookup}(%s)::oid AS oid) o
   WHERE d.refobjid = o.oid AND d.deptype = 'n'
     AND NOT (d.classid = 'pg_rewrite'::regclass  -- a view's own rule refers to the view itself
              AND d.objid IN (SELECT r.oid FROM pg_rewrite r WHERE r.ev_class = o.oid)))
"""
DEPENDENT_LOOKUPS = {"relation": "to_regclass", "type": "to_regtype", "function": "to_regprocedure",
                     "schema": "to_regnamespace"}
COLUMN_TYPE = """
SELECT a.atttypid, a.atttypmod FROM pg_attribute a
 WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = %(column)s AND NOT a.attisdropped
"""
# Whether changing a column from one type to another needs no rewrite: the same type with a
# typmod that only grows (varchar(20) -> varchar(50)) or drops, or a binary-coercible cast
# (pg_cast.castmethod 'b', e.g. varchar -> text) to a type without typmod. As
# tablecmds.c ATColumnChangeRequiresRewrite decides for these common cases.
BINARY_COERCIBLE = """
SELECT %(old)s::oid = t.oid AND (%(new_mod)s = -1 OR (%(old_mod)s <> -1 AND %(new_mod)s >= %(old_mod)s))
    OR (%(new_mod)s = -1 AND EXISTS (SELECT FROM pg_cast c WHERE c.castsource = %(old)s::oid
                                       AND c.casttarget = t.oid AND c.castmethod = 'b'))
  FROM (SELECT to_regtype(%(new)s)::oid AS oid) t
"""


class PgCatalog:
    """Answers guard.lint.Catalog's questions with one query each on `conn` (psycopg)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def exists(self, name: str) -> bool:
        """The relation `name` (quoted, possibly qualified text) exists."""
        row = self.conn.execute(TABLE_EXISTS, (name,)).fetchone()
        return bool(row and row[0])

    def partitioned(self, name: str) -> bool:
        """The relation `name` is a partitioned table or index."""
        row = self.conn.execute(PARTITIONED, (name,)).fetchone()
        return bool(row and row[0])

    def not_null_proven(self, table: str, column: str) -> bool:
        row = self.conn.execute(NOT_NULL_PROVEN, {"table": table, "column": column}).fetchone()
        return bool(row and row[0])

    def function_kind(self, name: str) -> str | None:
        schema, _, short = name.rpartition(".")
        rows = self.conn.execute(FUNCTION_SCHEMAS, {"name": short, "schema": schema or None}).fetchall()
        schemas = {r[0] for r in rows}
        if not schemas:
            return None
        return "builtin" if schemas == {"pg_catalog"} else "user"

    def has_dependents(self, kind: str, name: str) -> bool | None:
        """Whether anything depends on the object (kind: relation, type, function, schema; name as
        PostgreSQL prints it); None when it cannot be looked up."""
        from psycopg import sql

        lookup = DEPENDENT_LOOKUPS.get(kind)
        if lookup is None:
            return None
        query = sql.SQL(HAS_DEPENDENTS.format(lookup="{lookup}")).format(lookup=sql.Identifier(lookup))
        try:
            row = self.conn.execute(query, (name,)).fetchone()
        except Exception:  # noqa: BLE001 - a name the lookup cannot parse: unknown, stay conservative
            return None
        return None if row is None else bool(row[0])

    def type_change_rewrites(self, table: str, column: str, new_type: str, new_typmod: int | None) -> bool | None:
        """False when ALTER COLUMN ... TYPE new_type keeps the stored values as they are; True when
        it rewrites; None when the column or type is unknown (new_typmod None: not worked out)."""
        row = self.conn.execute(COLUMN_TYPE, {"table": table, "column": column}).fetchone()
        if row is None or new_typmod is None:
            return None
        found = self.conn.execute(BINARY_COERCIBLE, {"old": row[0], "old_mod": row[1], "new": new_type,
                                                     "new_mod": new_typmod}).fetchone()
        if found is None or found[0] is None:
            return None
        return not found[0]
