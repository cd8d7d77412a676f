"""The catalog of a run, before and after: what undo needs to invert a release.

guard's catalog fingerprint (guard/fingerprint.py) says *whether* objects changed; undo also
needs to know *what they were*. So the run records, in ``guard.run_catalogs``, a definitions
map of every table, column, index, constraint and enum type of the user's schemas, before its
first statement and after its last, and its fingerprint before (what undo must return to; an
after-phase record holds ``{}`` there: nothing reads it, and reading it cost every run a
catalog pass). Tables and columns are keyed by identity (``pg_class.oid``,
``attrelid.attnum``) so a rename is told apart from a drop and an add; the definitions are
PostgreSQL's own (``format_type``, ``pg_get_expr``, ``pg_get_indexdef``,
``pg_get_constraintdef``). Added tables also get a checksum at the end of the run, so undo
can tell whether the application wrote to them since.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.fingerprint import Fingerprint
from guard.undo.written import TABLE_CHECKSUM, checksum

__all__ = ["TABLE_CHECKSUM", "Catalog", "align", "checksum", "ensure", "load", "read", "record"]

if TYPE_CHECKING:
    import psycopg

# Schemas that are PostgreSQL's, guard's (journal, copies) or the migration history's.
EXCLUDED_SCHEMAS = ("pg_catalog", "information_schema", "pg_toast", "guard", "guard_backup", "supabase_migrations")
_USER = "n.nspname <> ALL(%(excluded)s) AND n.nspname NOT LIKE 'pg_temp_%%' AND n.nspname NOT LIKE 'pg_toast_temp_%%'"

CREATE_CATALOGS = """
CREATE TABLE IF NOT EXISTS guard.run_catalogs (
    run_id      text NOT NULL,
    phase       text NOT NULL CHECK (phase IN ('before', 'after')),
    taken_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    fingerprint jsonb NOT NULL,
    catalog     jsonb NOT NULL,
    PRIMARY KEY (run_id, phase)
)"""
REVOKE_CATALOGS = "REVOKE ALL ON TABLE guard.run_catalogs FROM PUBLIC"
SAVE_CATALOG = """
INSERT INTO guard.run_catalogs (run_id, phase, fingerprint, catalog) VALUES (%s, %s, %s, %s)
ON CONFLICT (run_id, phase) DO UPDATE SET fingerprint = EXCLUDED.fingerprint, catalog = EXCLUDED.catalog,
                                        taken_at = EXCLUDED.taken_at
"""
LOAD_CATALOG = "SELECT fingerprint, catalog FROM guard.run_catalogs WHERE run_id = %s AND phase = %s"
CATALOGS_EXIST = "SELECT to_regclass('guard.run_catalogs') IS NOT NULL"
TABLES_EXIST = "SELECT to_regclass('guard.run_catalogs') IS NOT NULL AND to_regclass('guard.run_rows') IS NOT NULL"

READ_TABLES = f"""
SELECT c.oid::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND {_USER}
"""
READ_COLUMNS = f"""
SELECT a.attrelid::text || '.' || a.attnum, a.attrelid::text, a.attname, a.attnum,
       format_type(a.atttypid, a.atttypmod), a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity::text,
       a.attgenerated::text
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p') AND {_USER}
"""
READ_INDEXES = f"""
SELECT i.indexrelid::text, quote_ident(n.nspname) || '.' || quote_ident(c.relname), i.indrelid::text,
       pg_get_indexdef(i.indexrelid),
       EXISTS (SELECT 1 FROM pg_constraint co WHERE co.conindid = i.indexrelid AND co.contype IN ('p', 'u', 'x'))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER}
"""
READ_CONSTRAINTS = f"""
SELECT co.conrelid::text || '.' || co.conname, co.conrelid::text, co.conname, co.contype::text,
       pg_get_constraintdef(co.oid)
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE co.contype <> 'n' AND {_USER}
"""
READ_ENUMS = f"""
SELECT t.oid::text, quote_ident(n.nspname) || '.' || quote_ident(t.typname),
       array(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder)
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'e' AND {_USER}
"""
# Objects other than tables, columns, indexes, constraints and enums, that undo drops when the
# run added them: kind, oid, the name a DROP takes, the table (for triggers and policies), and
# for sequences the last value (advanced since the run: written since). pg_depend is read by
# (classid, objid), its index: an object's oid is unique within its catalog only.
READ_OTHERS = f"""
SELECT CASE c.relkind WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' ELSE 'sequence' END, c.oid::text,
       quote_ident(n.nspname) || '.' || quote_ident(c.relname), '',
       CASE WHEN c.relkind <> 'S' THEN '' WHEN has_sequence_privilege(c.oid, 'SELECT') THEN pg_sequence_last_value(c.oid)::text END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('v', 'm', 'S') AND {_USER}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid
                   AND d.deptype IN ('a', 'i', 'e') AND d.refobjsubid > 0)
UNION ALL
SELECT CASE p.prokind WHEN 'p' THEN 'procedure' WHEN 'a' THEN 'aggregate' ELSE 'function' END, p.oid::text,
       quote_ident(n.nspname) || '.' || quote_ident(p.proname) || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       '', ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER} AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                                         AND d.deptype = 'e')
UNION ALL
SELECT 'trigger', t.oid::text, quote_ident(t.tgname), t.tgrelid::text, ''
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {_USER}
UNION ALL
SELECT 'policy', p.oid::text, quote_ident(p.polname), p.polrelid::text, ''
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER}
UNION ALL
SELECT CASE t.typtype WHEN 'd' THEN 'domain' ELSE 'type' END, t.oid::text,
       quote_ident(n.nspname) || '.' || quote_ident(t.typname), '', ''
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('d', 'r', 'm') AND {_USER}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass AND d.objid = t.oid
                   AND d.deptype IN ('e', 'i'))
UNION ALL
SELECT 'schema', n.oid::text, quote_ident(n.nspname), '', '' FROM pg_namespace n
 WHERE {_USER} AND n.nspname <> 'public'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_namespace'::regclass AND d.objid = n.oid
                   AND d.deptype = 'e')
"""



class Catalog(Struct):
    """The definitions undo inverts from; plain dicts so they round-trip through jsonb."""

    tables: dict[str, str] = field(default_factory=dict)  # oid -> quoted schema.name
    relnames: dict[str, str] = field(default_factory=dict)  # oid -> bare relname
    columns: dict[str, dict[str, Any]] = field(default_factory=dict)  # relid.attnum -> column
    indexes: dict[str, dict[str, Any]] = field(default_factory=dict)  # index oid -> index
    constraints: dict[str, dict[str, Any]] = field(default_factory=dict)  # relid.name -> constraint
    enums: dict[str, dict[str, Any]] = field(default_factory=dict)  # type oid -> enum
    checksums: dict[str, str] = field(default_factory=dict)  # table oid -> "rows:sum" (added/copied tables, after)
    copies: dict[str, str] = field(default_factory=dict)  # protective copy -> "rows:sum" at the end of the run
    others: dict[str, dict[str, Any]] = field(default_factory=dict)  # "kind:oid" -> view, function, trigger...
    parts: dict[str, int] = field(default_factory=dict)  # guard.run_rows part -> rows recorded (after)
    sealed: bool = False  # loaded from a record that lists the run's copies (every copy not in it is forged)

    def to_json(self) -> dict[str, Any]:
        return {"tables": self.tables, "relnames": self.relnames, "columns": self.columns, "indexes": self.indexes,
                "constraints": self.constraints, "enums": self.enums, "checksums": self.checksums,
                "copies": self.copies, "others": self.others, "parts": self.parts}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Catalog:
        """Raises BrokenRecord when a name undo would put into SQL is not a name quote_ident made."""
        maps: dict[str, Any] = {k: dict(data.get(k) or {}) for k in ("tables", "relnames", "columns", "indexes",
                                "constraints", "enums", "checksums", "copies", "others", "parts")}
        cat = cls(**maps, sealed="copies" in data)
        names = [*cat.tables.values(), *(i["name"] for i in cat.indexes.values()),
                 *(e["name"] for e in cat.enums.values())]
        bad = next((n for n in names if not isinstance(n, str) or not QUALIFIED.fullmatch(n)), None)
        if bad is not None:
            raise BrokenRecord(f"guard.run_catalogs holds {str(bad)[:80]!r}, not a schema-qualified name "
                               "as PostgreSQL quotes it: the record was changed since the run")
        return cat


class BrokenRecord(ValueError):
    """guard's own record of a run was changed since: undo will not build SQL from it."""


# quote_ident's output, schema-qualified: lower-case ASCII words, or double quotes with "" inside.
_IDENT = r'(?:[a-z_][a-z0-9_$]*|"(?:[^"]|"")+")'
QUALIFIED = re.compile(rf"{_IDENT}\.{_IDENT}")


def read(conn: psycopg.Connection[Any]) -> Catalog:
    """The user schemas' tables, columns, indexes, constraints, enum types and other objects
    (views, functions, sequences, triggers, policies, domains, schemas), as now: one round
    trip (guard.db.fetch_all)."""
    from guard.db import fetch_all

    return _catalog(fetch_all(conn, read_queries()))


def read_queries() -> list[tuple[str, dict[str, Any]]]:
    """The queries :func:`read` sends, in the order :func:`_catalog` takes their rows."""
    args = {"excluded": list(EXCLUDED_SCHEMAS)}
    return [(q, args) for q in (READ_TABLES, READ_COLUMNS, READ_INDEXES, READ_CONSTRAINTS, READ_ENUMS, READ_OTHERS)]


def _catalog(results: list[list[tuple[Any, ...]]]) -> Catalog:
    tables, columns, indexes, constraints, enums, others = results
    cat = Catalog()
    for oid, name, relname in tables:
        cat.tables[oid] = name
        cat.relnames[oid] = relname
    for key, relid, name, num, type_, notnull, default, identity, generated in columns:
        cat.columns[key] = {"table": relid, "name": name, "num": num, "type": type_, "notnull": notnull,
                            "default": default, "identity": identity or "", "generated": generated or ""}
    for oid, name, relid, definition, owned in indexes:
        cat.indexes[oid] = {"name": name, "table": relid, "def": definition, "constraint": owned}
    for key, relid, name, contype, definition in constraints:
        cat.constraints[key] = {"table": relid, "name": name, "type": contype, "def": definition}
    for oid, name, labels in enums:
        cat.enums[oid] = {"name": name, "labels": list(labels)}
    for kind, oid, name, table, state in others:
        cat.others[f"{kind}:{oid}"] = {"kind": kind, "name": name, "table": table, "state": state}
    return cat


CHECKSUMS_PER_QUERY = 100
# Plain heap tables without a page. Not partitioned ones (no storage of their own), nor other
# access methods, whose rows may live outside the main fork (relam is 0 for tables before 12).
EMPTY_TABLES = """
SELECT c.oid::text FROM pg_class c JOIN pg_am a ON a.oid = c.relam AND a.amname = 'heap'
 WHERE c.oid = ANY(%s::oid[]) AND c.relkind = 'r' AND pg_relation_size(c.oid) = 0
"""


def checksums(conn: psycopg.Connection[Any], tables: dict[str, str]) -> dict[str, str]:
    """checksum() of each of ``tables`` (oid -> quoted name). A heap table whose main fork
    is empty (pg_relation_size 0) holds no row, so its checksum is known without a scan:
    planning and starting a scan of each of a release's 1,000 new tables cost about as long
    as applying them. The others go a hundred a query (UNION ALL)."""
    from psycopg import sql

    empty = {r[0] for r in conn.execute(EMPTY_TABLES, (list(tables),)).fetchall()} if tables else set()
    found = dict.fromkeys(empty, "0:0")
    items = [(oid, name) for oid, name in tables.items() if oid not in empty]
    for start in range(0, len(items), CHECKSUMS_PER_QUERY):
        batch = items[start:start + CHECKSUMS_PER_QUERY]
        query = sql.SQL(" UNION ALL ").join(
            sql.SQL("SELECT {oid}::text, * FROM ({one}) AS c").format(
                oid=sql.Literal(oid), one=sql.SQL(TABLE_CHECKSUM).format(table=sql.SQL(name)))
            for oid, name in batch)
        found.update({oid: f"{rows}:{total}" for oid, rows, total in conn.execute(query).fetchall()})
    return found


def fingerprint_json(fp: Fingerprint) -> dict[str, str]:
    """The fingerprint's objects as ``{"kind name": definition}`` without the history schema."""
    return {f"{k} {n}": v for (k, n), v in fp.objects.items() if not _history_object(k, n)}


def _history_object(kind: str, name: str) -> bool:
    if kind in ("schema", "schema privileges"):
        return name == "supabase_migrations"
    return name.startswith("supabase_migrations.")


def ensure(conn: psycopg.Connection[Any]) -> None:
    """The ``guard.run_catalogs`` and ``guard.run_rows`` tables (the journal schema first),
    closed to PUBLIC: one query when both exist, else both made in one transaction (a run
    records its catalogs before and its row hashes after), under guard's schema lock: another
    guard making them at the same time (`guard init` beside a first run; init takes no run
    lock) is waited for, and they are then found made."""
    from guard import journal
    from guard.guard_schema import installing
    from guard.undo import written

    journal.ensure(conn)
    if conn.execute(TABLES_EXIST).fetchone() == (True,):
        return
    with installing(conn):
        if conn.execute(TABLES_EXIST).fetchone() == (True,):  # made while this guard waited
            return
        conn.execute(CREATE_CATALOGS)
        conn.execute(REVOKE_CATALOGS)
        written.ensure(conn)


def record(conn: psycopg.Connection[Any], run_id: str, phase: str, before: Catalog | None = None) -> Catalog:
    """Read and store the catalog of ``run_id`` at ``phase`` (before|after) in its own
    transaction, with the fingerprint before (after, given ``before``: its owners and ACLs alone).
    After: tables absent ``before`` get their checksum (the tables are there: ``before`` was
    recorded, or loaded, from them)."""
    from psycopg.types.json import Jsonb

    from guard import fingerprint
    from guard.db import fetch_all, pipelined_transaction

    if before is None and conn.execute(TABLES_EXIST).fetchone() != (True,):
        # Made by `guard init`, or here; the run's journal.start has just brought guard's
        # schema up to date, so when the tables are there that is all to check.
        ensure(conn)
    # BEGIN and the reads in one round trip, the save and COMMIT in another.
    with pipelined_transaction(conn):
        # Before: the whole fingerprint (what undo returns to); after: the owners and ACLs,
        # so that undo tells the run's grants from those made since (guard/undo/privileges.py).
        fp_query = fingerprint.SCHEMA_FINGERPRINT if before is None else fingerprint.PRIVILEGES_FINGERPRINT
        queries = [*read_queries(), (fp_query, None)]
        results = fetch_all(conn, queries)
        cat = _catalog(results[:6])
        if before is not None:
            from guard.undo import written

            cat.checksums.update(checksums(conn, {o: n for o, n in cat.tables.items() if o not in before.tables}))
            written.record(conn, run_id, before, cat)
        # Only its objects are kept; undo compares the present with the fingerprint before.
        fp = fingerprint_json(fingerprint.from_rows(results[6], {}))
        conn.execute(SAVE_CATALOG, (run_id, phase, Jsonb(fp), Jsonb(cat.to_json())))
    return cat


def load(conn: psycopg.Connection[Any], run_id: str, phase: str) -> tuple[dict[str, str], Catalog] | None:
    """(fingerprint, catalog) recorded for ``run_id`` at ``phase``; None when not recorded."""
    if conn.execute(CATALOGS_EXIST).fetchone() != (True,):
        return None
    row = conn.execute(LOAD_CATALOG, (run_id, phase)).fetchone()
    return (dict(row[0]), Catalog.from_json(row[1])) if row else None


def align(now: Catalog, after: Catalog) -> None:
    """Give a table recreated since the run (an undo undone: same name, a new oid) the identity
    it had at the end of the run, its columns too, so that undo sees it as the run's table."""
    known = set(after.tables)
    by_name = {name: oid for oid, name in now.tables.items() if oid not in known}
    for old, name in after.tables.items():
        new = by_name.get(name)
        if old in now.tables or new is None:
            continue
        now.tables[old] = now.tables.pop(new)
        now.relnames[old] = now.relnames.pop(new, "")
        if new in now.checksums:
            now.checksums[old] = now.checksums.pop(new)
        names = {c["name"]: key for key, c in after.columns.items() if c["table"] == old}
        for key, col in list(now.columns.items()):
            if col["table"] == new:
                del now.columns[key]
                now.columns[names.get(col["name"], f"{old}.{col['num']}")] = {**col, "table": old}
        for obj in now.others.values():
            if obj["table"] == new:
                obj["table"] = old
