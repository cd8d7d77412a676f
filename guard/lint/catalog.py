"""The lint's questions to a connected database, answered from its catalog (read-only).

Each question is one named query; identifiers travel as regclass text (quoted by the lint)
and values as parameters. Source for each rule the answer feeds: guard.lint.locks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guard.lint.partition import PartitionFacts

TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
DEFAULT_PARTITION = """
SELECT p.partdefid, n.nspname, c.relname FROM pg_partitioned_table p
  JOIN pg_class c ON c.oid = p.partdefid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE p.partrelid = to_regclass(%s)
"""
STORAGE = """
SELECT c.relpersistence::text, coalesce(s.spcname, 'pg_default'), coalesce(a.amname, '')
  FROM pg_class c LEFT JOIN pg_tablespace s ON s.oid = c.reltablespace LEFT JOIN pg_am a ON a.oid = c.relam
 WHERE c.oid = to_regclass(%s)
"""
ROW_SECURITY = """
SELECT c.relrowsecurity, (SELECT count(*) FROM pg_policy p WHERE p.polrelid = c.oid)
  FROM pg_class c WHERE c.oid = to_regclass(%s)
"""
FOREIGN_KEYS = """
SELECT to_regclass(%(t)s) IS NOT NULL, EXISTS (SELECT FROM pg_constraint WHERE contype = 'f'
   AND (conrelid = to_regclass(%(t)s) OR confrelid = to_regclass(%(t)s)))
"""
SEQUENCE_START = """
SELECT s.seqstart, EXISTS (SELECT FROM pg_proc p WHERE p.prosrc ILIKE '%%' || c.relname || '%%')
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid WHERE s.seqrelid = to_regclass(%s)
"""
# Columns drawing from a sequence: it is owned by them (serial, OWNED BY: deptype 'a'; identity:
# 'i'), or their default calls nextval of it (the default depends on the sequence).
SEQUENCE_USERS = """
SELECT format('%%I.%%I', n.nspname, c.relname), a.attname::text
  FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE d.classid = 'pg_class'::regclass AND d.objid = to_regclass(%(seq)s)
   AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
UNION
SELECT format('%%I.%%I', n.nspname, c.relname), a.attname::text
  FROM pg_depend d JOIN pg_attrdef ad ON ad.oid = d.objid
  JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
  JOIN pg_class c ON c.oid = ad.adrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE d.classid = 'pg_attrdef'::regclass AND d.refclassid = 'pg_class'::regclass
   AND d.refobjid = to_regclass(%(seq)s)
"""
PARTITIONED = "SELECT relkind IN ('p', 'I') FROM pg_class WHERE oid = to_regclass(%s)"
# The column is NOT NULL already, or a valid CHECK whose whole expression is (column IS NOT NULL):
# PostgreSQL 12+ then skips the
# scan of SET NOT NULL (tablecmds.c NotNullImpliedByRelConstraints).
NOT_NULL_PROVEN = """
SELECT EXISTS (
  SELECT FROM pg_constraint c
   WHERE c.conrelid = to_regclass(%(table)s) AND c.contype = 'c' AND c.convalidated
     AND pg_get_constraintdef(c.oid) = format('CHECK ((%%s IS NOT NULL))', quote_ident(%(column)s)))
    -- already NOT NULL: SET NOT NULL does nothing (tablecmds.c ATExecSetNotNull)
    OR EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = to_regclass(%(table)s)
                  AND a.attname = %(column)s AND a.attnotnull)
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
SELECT a.atttypid, a.atttypmod, t.typname, t.typtype, t.typbasetype, t.typtypmod FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
 WHERE a.attrelid = to_regclass(%(table)s) AND a.attname = %(column)s AND NOT a.attisdropped
"""
NEW_TYPE = """
SELECT t.oid, t.typname,
       EXISTS (SELECT FROM pg_cast c WHERE c.castsource = %(old)s AND c.casttarget = t.oid AND c.castmethod = 'b'),
       current_setting('TimeZone')
  FROM pg_type t WHERE t.oid = to_regtype(%(new)s)
"""
# Types whose length coercion keeps the stored value when the typmod grows or goes (each one's
# support function: varchar_support, numeric_support, timestamp_support, ...).
_GROWS_FREELY = frozenset({"varchar", "varbit", "timestamp", "timestamptz", "time", "timetz"})
# Zones with a fixed offset of 0: there timestamp <-> timestamptz keeps the stored value
# (tablecmds.c ATColumnChangeRequiresRewrite, TimestampTimestampTzRequiresRewrite, PostgreSQL 12+).
_UTC = frozenset({"utc", "etc/utc", "gmt", "etc/gmt", "uct", "etc/uct", "zulu", "etc/zulu", "universal",
                  "etc/universal", "gmt0", "etc/gmt0", "etc/gmt+0", "etc/gmt-0", "greenwich", "etc/greenwich"})


def _keeps_stored_value(old: tuple[Any, ...], new: tuple[Any, ...], new_mod: int) -> bool:
    """Whether ALTER COLUMN ... TYPE from `old` (COLUMN_TYPE's row) to `new` (NEW_TYPE's row)
    keeps every stored value as it is: no rewrite. As ATColumnChangeRequiresRewrite decides."""
    old_oid, old_mod, old_name, old_kind, old_base, base_mod = old
    new_oid, new_name, binary, zone = new
    if old_oid == new_oid:
        if new_mod == old_mod or new_mod == -1 and old_name != "bpchar":
            return True
        if old_mod == -1:
            return False
        if old_name in _GROWS_FREELY:
            return new_mod >= old_mod
        if old_name == "numeric":  # typmod: (precision << 16 | scale) + 4; same scale, no less precision
            return (new_mod - 4) & 0xFFFF == (old_mod - 4) & 0xFFFF and new_mod >= old_mod
        return False
    if old_kind == "d" and old_base == new_oid:  # a domain to its base type: a relabel
        return new_mod in (-1, base_mod)
    if {old_name, new_name} == {"timestamp", "timestamptz"}:
        return new_mod in (-1, old_mod) and str(zone).lower() in _UTC
    return bool(binary) and new_mod == -1


# A domain (or a domain over one) with a CHECK or NOT NULL: ADD COLUMN of it checks every row,
# i.e. rewrites the table (tablecmds.c ATExecAddColumn: DomainHasConstraints).
DOMAIN_CHECKED = """
WITH RECURSIVE d(oid) AS (
  SELECT to_regtype(%s)::oid
  UNION SELECT t.typbasetype FROM pg_type t JOIN d ON t.oid = d.oid WHERE t.typtype = 'd')
SELECT EXISTS (SELECT FROM pg_constraint c JOIN d ON c.contypid = d.oid)
    OR EXISTS (SELECT FROM pg_type t JOIN d ON t.oid = d.oid WHERE t.typtype = 'd' AND t.typnotnull)
"""
# ADD PRIMARY KEY USING INDEX sets NOT NULL on the index's columns: a scan when one is nullable
# (tablecmds.c ATExecAddIndexConstraint -> index_check_primary_key).
INDEX_NULLABLE = """
SELECT bool_or(NOT a.attnotnull) FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
 WHERE i.indexrelid = to_regclass(%s)
"""
# The volatility PostgreSQL records for every function of that name ('i', 's' or 'v').
VOLATILITY = """
SELECT array_agg(DISTINCT p.provolatile::text) FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE p.proname = %(name)s AND (%(schema)s::text IS NULL OR n.nspname = %(schema)s)
"""


# ATTACH PARTITION: the parent's strategy and key columns (NULL for an expression key), the
# partition's valid CHECKs and NOT NULL columns (guard.lint.partition proves the bound from them).
PARTITION_KEY = """
SELECT p.partstrat::text,
       ARRAY(SELECT a.attname::text FROM unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum ORDER BY k.n),
       ARRAY(SELECT t.typname::text FROM unnest(p.partattrs::int2[]) WITH ORDINALITY k(attnum, n)
               JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = k.attnum
               JOIN pg_type t ON t.oid = a.atttypid ORDER BY k.n),
       0 = ANY (p.partattrs::int2[])
  FROM pg_partitioned_table p WHERE p.partrelid = to_regclass(%s)
"""
PARTITION_CHECKS = """
SELECT pg_get_constraintdef(oid) FROM pg_constraint
 WHERE conrelid = to_regclass(%s) AND contype = 'c' AND (convalidated OR conname = ANY (%s))
"""
NOT_NULL_COLUMNS = "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND attnotnull"


class PgCatalog:
    """Answers guard.lint.Catalog's questions with one query each on `conn` (psycopg)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def exists(self, name: str) -> bool:
        """The relation `name` (quoted, possibly qualified text) exists."""
        row = self.conn.execute(TABLE_EXISTS, (name,)).fetchone()
        return bool(row and row[0])

    def default_partition(self, name: str) -> str | None:
        """The default partition of the partitioned table `name` when it holds a row, else None."""
        row = self.conn.execute(DEFAULT_PARTITION, (name,)).fetchone()
        if row is None or row[0] is None:
            return None
        from psycopg import sql

        filled = self.conn.execute(sql.SQL("SELECT EXISTS (SELECT FROM {})").format(
            sql.Identifier(row[1], row[2]))).fetchone()
        return f"{row[1]}.{row[2]}" if filled and filled[0] else None

    def partition_facts(self, parent: str, partition: str, validated: tuple[str, ...] = ()) -> PartitionFacts | None:
        """What guard.lint.partition needs to prove the bound of `partition` attached to `parent`;
        None when `parent` is not a partitioned table or its key holds an expression.
        validated: names of the partition's CHECKs the batch validates before the ATTACH."""
        from guard.lint.partition import PartitionFacts

        row = self.conn.execute(PARTITION_KEY, (parent,)).fetchone()
        if row is None or row[3]:
            return None
        checks = tuple(r[0] for r in self.conn.execute(PARTITION_CHECKS, (partition, list(validated))).fetchall())
        not_null = frozenset(r[0] for r in self.conn.execute(NOT_NULL_COLUMNS, (partition,)).fetchall())
        return PartitionFacts(str(row[0]), tuple(zip(row[1], row[2], strict=True)), checks, not_null)

    def relation_exists(self, name: str) -> bool:
        """Any relation (table, index, view...) `name` (quoted, possibly qualified text) exists."""
        return self.exists(name)

    def storage(self, name: str) -> tuple[str, str, str] | None:
        """(relpersistence, tablespace name, access method name) of the table `name`, None if absent."""
        row = self.conn.execute(STORAGE, (name,)).fetchone()
        return None if row is None else (str(row[0]), str(row[1]), str(row[2]))

    def partitioned(self, name: str) -> bool:
        """The relation `name` is a partitioned table or index."""
        row = self.conn.execute(PARTITIONED, (name,)).fetchone()
        return bool(row and row[0])

    def not_null_proven(self, table: str, column: str) -> bool:
        row = self.conn.execute(NOT_NULL_PROVEN, {"table": table, "column": column}).fetchone()
        return bool(row and row[0])

    def domain_checked(self, type_name: str) -> bool | None:
        """Whether `type_name` is a domain with constraints (None: not a type PostgreSQL knows)."""
        try:
            row = self.conn.execute(DOMAIN_CHECKED, (type_name,)).fetchone()
        except Exception:  # noqa: BLE001 - a name to_regtype cannot parse: unknown
            return None
        return None if row is None else bool(row[0])

    def index_nullable(self, index: str) -> bool | None:
        """Whether a column of the index `index` (quoted, possibly qualified) is nullable."""
        row = self.conn.execute(INDEX_NULLABLE, (index,)).fetchone()
        return None if row is None or row[0] is None else bool(row[0])

    def volatile(self, name: str) -> bool | None:
        """Whether the function `name` ([schema.]name) may be VOLATILE (any overload of it);
        None when no function of that name exists."""
        schema, _, short = name.rpartition(".")
        row = self.conn.execute(VOLATILITY, {"name": short, "schema": schema or None}).fetchone()
        if row is None or not row[0]:
            return None
        return "v" in row[0]

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
        try:
            new = self.conn.execute(NEW_TYPE, {"old": row[0], "new": new_type}).fetchone()
        except Exception:  # noqa: BLE001 - a type name to_regtype cannot parse: unknown
            return None
        if new is None:
            return None
        return not _keeps_stored_value(tuple(row), tuple(new), new_typmod)

    def row_security(self, table: str) -> tuple[bool, int] | None:
        """(pg_class.relrowsecurity, number of pg_policy rows) of `table`, None when it is absent."""
        row = self.conn.execute(ROW_SECURITY, (table,)).fetchone()
        return None if row is None else (bool(row[0]), int(row[1]))

    def foreign_keys(self, table: str) -> bool | None:
        """Whether a foreign key is on `table` or references it (pg_constraint), None when absent."""
        row = self.conn.execute(FOREIGN_KEYS, {"t": table}).fetchone()
        return None if row is None or not row[0] else bool(row[1])

    def identity_sequence(self, table: str, column: str) -> str | None:
        """The sequence of an identity or serial column (pg_get_serial_sequence), None if none."""
        try:
            row = self.conn.execute("SELECT pg_get_serial_sequence(%s, %s)", (table, column)).fetchone()
        except Exception:  # noqa: BLE001 - no such table or column: unknown
            return None
        return None if row is None or row[0] is None else str(row[0])

    def sequence_collides(self, sequence: str, next_value: int | None) -> bool | None:
        """Whether `next_value` (None: the sequence's START) is at or below the largest value a
        column drawing from `sequence` stores (its default calls nextval of it, or it owns it:
        pg_depend). False when no column draws from it; None when the sequence is absent, a
        function's body names it (pg_proc.prosrc), or a column's max() cannot be read within 2 s."""
        from psycopg import sql

        start = self.conn.execute(SEQUENCE_START, (sequence,)).fetchone()
        if start is None or start[1]:
            return None  # absent, or a function's body names it (a trigger handing out its ids)
        value = start[0] if next_value is None else next_value
        try:
            with self.conn.transaction():
                self.conn.execute("SET LOCAL statement_timeout = '2s'")
                for table, column in self.conn.execute(SEQUENCE_USERS, {"seq": sequence}).fetchall():
                    row = self.conn.execute(sql.SQL("SELECT max({})::numeric FROM {}").format(
                        sql.Identifier(column), sql.SQL(table))).fetchone()
                    if row is not None and row[0] is not None and value <= row[0]:
                        return True
        except Exception:  # noqa: BLE001 - a timeout or a column max() cannot order: unknown
            return None
        return False
