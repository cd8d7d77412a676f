"""Protective copies: keep exactly the data a destructive statement will destroy.

The copy is made inside the database, in the same transaction as the statement and just
before it, so it holds precisely what that statement destroys at that moment, and it commits
or rolls back with it. Copies live in a locked-down schema (default ``guard_backup``) that
PUBLIC and Supabase's API roles cannot read, are registered in ``guard.copies``, and come with
ready SQL that puts the data back. What is copied:

- DROP TABLE / TRUNCATE / DELETE or UPDATE without WHERE: the whole table;
- DROP COLUMN / ALTER COLUMN ... TYPE: the primary key and that column (whole rows without a key);
- DELETE ... WHERE: the matching rows; UPDATE ... WHERE: the matching rows before the update;
- DROP SCHEMA: every table in it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import Statement

Progress = Callable[[str], None]

DESTRUCTIVE_KINDS = frozenset({"DropStmt", "TruncateStmt", "DeleteStmt", "UpdateStmt", "AlterTableStmt"})

CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
REVOKE_SCHEMA = "REVOKE ALL ON SCHEMA {schema} FROM PUBLIC"
API_ROLES = "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated')"
REVOKE_SCHEMA_FROM = "REVOKE ALL ON SCHEMA {schema} FROM {role}"
REVOKE_TABLE = "REVOKE ALL ON TABLE {copy} FROM PUBLIC"
REVOKE_TABLE_FROM = "REVOKE ALL ON TABLE {copy} FROM {role}"
ENABLE_RLS = "ALTER TABLE {copy} ENABLE ROW LEVEL SECURITY"
CREATE_REGISTRY = """
CREATE TABLE IF NOT EXISTS guard.copies (
    copy        text PRIMARY KEY,
    run_id      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    source      text NOT NULL,
    kind        text NOT NULL,
    statement   text,
    rows        bigint,
    bytes       bigint,
    restore_sql text
)
"""
REVOKE_REGISTRY = "REVOKE ALL ON TABLE guard.copies FROM PUBLIC"
REGISTER = """
INSERT INTO guard.copies (copy, run_id, source, kind, statement, rows, bytes, restore_sql)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
"""
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
TABLE_SIZE = "SELECT pg_total_relation_size(%s::regclass)"
COPY_SIZE = "SELECT pg_total_relation_size(%s::regclass)"
PRIMARY_KEY = """
SELECT a.attname FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
 WHERE i.indrelid = %s::regclass AND i.indisprimary
 ORDER BY array_position(i.indkey, a.attnum)
"""
COLUMN_TYPE = """
SELECT format_type(atttypid, atttypmod) FROM pg_attribute
 WHERE attrelid = %s::regclass AND attname = %s AND NOT attisdropped
"""
SCHEMA_TABLES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = %s AND c.relkind IN ('r', 'p')
"""
OLD_COPIES = """
SELECT copy FROM guard.copies WHERE created_at < clock_timestamp() - %s * interval '1 second'
"""
FORGET_COPY = "DELETE FROM guard.copies WHERE copy = %s"


@dataclass
class CopyRecord:
    """One protective copy, as the report and the restore plan show it."""

    source: str
    copy: str
    kind: str  # table | rows | column
    statement: str  # file:line of the destructive statement
    rows: int | None
    bytes: int | None
    restore_sql: str


@dataclass
class Protector:
    """Called before each statement inside the file's transaction; copies what it destroys."""

    run_id: str
    schema: str = "guard_backup"
    max_bytes: int = 1 << 30
    progress: Progress = field(default=lambda _line: None)
    copies: list[CopyRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    _ready: bool = False
    _seq: int = 0

    def before(self, conn: psycopg.Connection[Any], statement: Statement, where: str) -> None:
        if statement.kind not in DESTRUCTIVE_KINDS:
            return
        for target in targets(statement.sql):
            self._protect(conn, target, where)

    # ------------------------------------------------------------------ one target

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self._ready:
            return
        from guard import journal
        from guard.guard_schema import close_schema

        journal.ensure(conn)
        schema = sql.Identifier(self.schema)
        conn.execute(sql.SQL(CREATE_SCHEMA).format(schema=schema))
        conn.execute(sql.SQL(REVOKE_SCHEMA).format(schema=schema))
        for (role,) in conn.execute(API_ROLES).fetchall():
            conn.execute(sql.SQL(REVOKE_SCHEMA_FROM).format(schema=schema, role=sql.Identifier(role)))
        conn.execute(CREATE_REGISTRY)
        conn.execute(REVOKE_REGISTRY)
        close_schema(conn, "guard")  # guard.copies too, whatever default privileges granted
        self._ready = True

    def _protect(self, conn: psycopg.Connection[Any], target: Target, where: str) -> None:
        if target.kind == "schema":
            for (table,) in conn.execute(SCHEMA_TABLES, (target.schema_name,)).fetchall():
                self._protect(conn, Target("table", table), where)
            return
        exists = conn.execute(TABLE_EXISTS, (target.relation,)).fetchone()
        if not exists or not exists[0]:
            return  # created by this run, or already gone: nothing of the past to keep
        size_row = conn.execute(TABLE_SIZE, (target.relation,)).fetchone()
        size = int(size_row[0]) if size_row else 0
        if size > self.max_bytes:
            self.skipped.append(
                f"{where}: {target.relation} is {size} bytes, above protect.max_bytes; not copied"
            )
            self.progress(self.skipped[-1])
            return
        self._ensure_schema(conn)
        self._seq += 1
        short = target.relation.replace('"', "").split(".")[-1]
        name = f"{self.run_id}_{self._seq}_{short}"[:63]
        copy = sql.Identifier(self.schema, name)
        copy_text = f'{self.schema}."{name}"'
        # Names are quoted by _ident; the alias keeps a WHERE written against it valid.
        source = sql.SQL(target.relation + (f" AS {_ident(target.alias)}" if target.alias else ""))
        key = [r[0] for r in conn.execute(PRIMARY_KEY, (target.relation,)).fetchall()]
        kind, select, restore = self._plan(conn, target, key, copy_text)
        started = time.monotonic()
        if size > 50 << 20:
            self.progress(f"copying {target.relation} ({size >> 20} MB) before {where}")
        cursor = conn.execute(
            sql.SQL("CREATE TABLE {copy} AS ").format(copy=copy) + sql.SQL(select).format(source=source)
        )
        rows = cursor.rowcount if cursor.rowcount >= 0 else None
        conn.execute(sql.SQL(REVOKE_TABLE).format(copy=copy))
        for (role,) in conn.execute(API_ROLES).fetchall():
            conn.execute(sql.SQL(REVOKE_TABLE_FROM).format(copy=copy, role=sql.Identifier(role)))
        conn.execute(sql.SQL(ENABLE_RLS).format(copy=copy))
        copied = conn.execute(COPY_SIZE, (copy_text,)).fetchone()
        record = CopyRecord(
            source=target.relation, copy=copy_text, kind=kind, statement=where, rows=rows,
            bytes=int(copied[0]) if copied else None, restore_sql=restore,
        )
        conn.execute(REGISTER, (record.copy, self.run_id, record.source, record.kind, where, record.rows,
                                record.bytes, record.restore_sql))
        self.copies.append(record)
        elapsed = time.monotonic() - started
        if elapsed > 1:
            self.progress(f"copied {rows} row(s) of {target.relation} in {elapsed:.1f}s")

    def _plan(
        self, conn: psycopg.Connection[Any], target: Target, key: list[str], copy: str
    ) -> tuple[str, str, str]:
        """(kind, SELECT for the copy with {source}, SQL that puts the data back)."""
        rel = target.relation
        if target.kind == "column" and key and target.column:
            column_type_row = conn.execute(COLUMN_TYPE, (rel, target.column)).fetchone()
            column_type = column_type_row[0] if column_type_row else "<original type>"
            cols = ", ".join(_ident(c) for c in [*key, target.column])
            join = " AND ".join(f"t.{_ident(c)} = c.{_ident(c)}" for c in key)
            col = _ident(target.column)
            restore = (
                f"ALTER TABLE {rel} ADD COLUMN IF NOT EXISTS {col} {column_type};\n"
                f"-- if the column still exists with another type: "
                f"ALTER TABLE {rel} ALTER COLUMN {col} TYPE {column_type} USING NULL;\n"
                f"UPDATE {rel} AS t SET {col} = c.{col} FROM {copy} AS c WHERE {join};"
            )
            return "column", f"SELECT {cols} FROM {{source}}", restore
        if target.kind == "rows" and target.where:
            select = f"SELECT * FROM {{source}} WHERE {target.where}"
            if target.updated and key:
                sets = ", ".join(f"{_ident(c)} = c.{_ident(c)}" for c in target.updated)
                join = " AND ".join(f"t.{_ident(c)} = c.{_ident(c)}" for c in key)
                restore = f"UPDATE {rel} AS t SET {sets} FROM {copy} AS c WHERE {join};"
            elif target.updated:
                restore = (
                    f"-- {rel} has no primary key: match the rows by hand, e.g.\n"
                    f"-- UPDATE {rel} AS t SET ... FROM {copy} AS c WHERE <t and c are the same row>;"
                )
            else:
                restore = f"INSERT INTO {rel} SELECT * FROM {copy};"
            return "rows", select, restore
        # Whole table (DROP, TRUNCATE, unqualified DELETE/UPDATE, a column without a key).
        if target.dropped:
            restore = (
                f"CREATE TABLE IF NOT EXISTS {rel} (LIKE {copy});  -- columns only: recreate keys, "
                "indexes and grants from your migrations first when you can\n"
                f"INSERT INTO {rel} SELECT * FROM {copy};"
            )
        elif target.updated and key:
            sets = ", ".join(f"{_ident(c)} = c.{_ident(c)}" for c in target.updated)
            join = " AND ".join(f"t.{_ident(c)} = c.{_ident(c)}" for c in key)
            restore = f"UPDATE {rel} AS t SET {sets} FROM {copy} AS c WHERE {join};"
        elif target.kind == "column" and target.column:
            restore = (
                f"-- {rel} has no primary key: the copy holds whole rows; put {target.column} back by "
                f"matching rows by hand from {copy}"
            )
        else:
            restore = f"INSERT INTO {rel} SELECT * FROM {copy};"
        return "table", "SELECT * FROM {source}", restore


def _ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


@dataclass(frozen=True)
class Target:
    """What one destructive statement destroys."""

    kind: str  # table | column | rows | schema
    relation: str  # schema-qualified, quoted as needed (deparsed)
    column: str | None = None
    where: str | None = None
    updated: tuple[str, ...] = ()
    dropped: bool = False
    schema_name: str | None = None
    alias: str | None = None


def targets(statement: str) -> list[Target]:
    """The tables, columns or rows ``statement`` destroys (empty when none or unknown)."""
    import pglast
    from pglast import ast, enums
    from pglast.stream import RawStream

    try:
        parsed = pglast.parse_sql(statement)
    except pglast.parser.ParseError:
        return []
    found: list[Target] = []
    for raw in parsed:
        node = raw.stmt
        if isinstance(node, ast.DropStmt):
            if node.removeType == enums.ObjectType.OBJECT_TABLE:
                for names in node.objects or ():
                    parts = [n.sval for n in names]
                    found.append(Target("table", _qualified(parts), dropped=True))
            elif node.removeType == enums.ObjectType.OBJECT_SCHEMA:
                for name in node.objects or ():
                    found.append(Target("schema", name.sval, schema_name=name.sval))
        elif isinstance(node, ast.TruncateStmt):
            for rel in node.relations or ():
                found.append(Target("table", _relation(rel)))
        elif isinstance(node, ast.DeleteStmt):
            rel = _relation(node.relation)
            if node.whereClause is None or node.usingClause:
                found.append(Target("table", rel))
            else:
                found.append(Target("rows", rel, where=RawStream()(node.whereClause),
                                    alias=_alias(node.relation)))
        elif isinstance(node, ast.UpdateStmt):
            rel = _relation(node.relation)
            columns = tuple(dict.fromkeys(t.name for t in node.targetList or () if t.name))
            if node.whereClause is None or node.fromClause:
                found.append(Target("table", rel, updated=columns))
            else:
                found.append(Target("rows", rel, updated=columns, where=RawStream()(node.whereClause),
                                    alias=_alias(node.relation)))
        elif isinstance(node, ast.AlterTableStmt) and node.objtype == enums.ObjectType.OBJECT_TABLE:
            rel = _relation(node.relation)
            for cmd in node.cmds or ():
                if cmd.subtype in (enums.AlterTableType.AT_DropColumn, enums.AlterTableType.AT_AlterColumnType):
                    found.append(Target("column", rel, column=cmd.name))
    return found


def _qualified(parts: list[str]) -> str:
    return ".".join(_ident(p) for p in parts)


def _relation(rel: Any) -> str:
    parts = [p for p in (rel.schemaname, rel.relname) if p]
    return _qualified(parts)


def _alias(rel: Any) -> str | None:
    """A WHERE written against an alias (DELETE FROM t AS x WHERE x.id ...) needs the copy to
    select FROM the table under that same alias."""
    return rel.alias.aliasname if rel.alias is not None else None


def oversized(conn: psycopg.Connection[Any], statement: str, max_bytes: int) -> list[str]:
    """Targets of ``statement`` too large to copy under ``max_bytes`` (estimated before the run)."""
    too_big = []
    for target in targets(statement):
        if target.kind == "schema":
            names = [r[0] for r in conn.execute(SCHEMA_TABLES, (target.schema_name,)).fetchall()]
        else:
            names = [target.relation]
        for name in names:
            exists = conn.execute(TABLE_EXISTS, (name,)).fetchone()
            if not exists or not exists[0]:
                continue
            row = conn.execute(TABLE_SIZE, (name,)).fetchone()
            if row and int(row[0]) > max_bytes:
                too_big.append(f"{name} ({int(row[0])} bytes)")
    return too_big


def prune(conn: psycopg.Connection[Any], older_than: float, schema: str = "guard_backup") -> list[str]:
    """Drop protective copies older than ``older_than`` seconds; returns their names."""
    from guard import journal

    if not journal.exists(conn):
        return []
    exists = conn.execute(TABLE_EXISTS, ("guard.copies",)).fetchone()
    if not exists or not exists[0]:
        return []
    dropped = []
    with conn.transaction():
        for (copy,) in conn.execute(OLD_COPIES, (older_than,)).fetchall():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.SQL(copy)))
            conn.execute(FORGET_COPY, (copy,))
            dropped.append(copy)
    return dropped
