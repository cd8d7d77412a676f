"""Protective copies: keep exactly the data a destructive statement destroys.

A copy is made inside the database, in the same transaction as the statement (for DELETE and
UPDATE by the statement itself), so it holds precisely what that statement destroys and
commits or rolls back with it. Copies live in a locked-down schema (default ``guard_backup``)
that PUBLIC and Supabase's API roles cannot read, are registered in ``guard.copies`` with the
date they expire (``protect.retention``), and come with SQL that puts the data back:

- DELETE: the statement rewritten to ``DELETE ... RETURNING`` into the copy: exactly its rows;
- UPDATE: the old values of exactly the rows it changes (a self-join by ctid, under a SHARE ROW
  EXCLUSIVE lock so no concurrent writer changes a row in between);
- DROP TABLE / DROP SCHEMA: the whole table, and SQL that recreates it (guard.protect.recreate);
- TRUNCATE / MERGE / INSERT ... ON CONFLICT DO UPDATE (guard.protect.upsert): the whole table;
- DROP COLUMN / ALTER COLUMN ... TYPE: the primary key and that column (whole rows without one).

A copy is guard's even when the file switched role (guard.protect.identity); a statement on an
inheritance parent copies each table of the family on its own (guard.protect.family); a foreign
table's rows, which nothing else of guard's sees, are copied like a table's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field
from psycopg import sql

from guard.protect import identity as who
from guard.protect.catalog import (
    COLUMN_TYPE,
    COPY_COLUMNS,
    COPY_SIZE,
    LOCK_WRITERS,
    OWNED_SEQUENCES,
    PRIMARY_KEY,
    REFERENCING_TABLES,
    SCHEMA_TABLES,
    UPDATABLE,
    WRITABLE,
    has_rules,
    upsert_under_rules,
)
from guard.protect.catalog import Resolved as _Resolved
from guard.protect.names import copy_name
from guard.protect.retention import DEFAULT_RETENTION, prune, refresh
from guard.protect.upsert import copies_before

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import Statement
    from guard.protect.targets import Target

__all__ = ["DEFAULT_RETENTION", "DESTRUCTIVE_KINDS", "CopyRecord", "Protector", "finish_run", "oversized", "prune"]

Progress = Callable[[str], None]

DESTRUCTIVE_KINDS = frozenset(  # INSERT: only an upsert; SELECT: only with a writing WITH (guard.protect.upsert)
    {"DropStmt", "TruncateStmt", "DeleteStmt", "UpdateStmt", "AlterTableStmt", "MergeStmt", "InsertStmt", "SelectStmt"})

CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
# {grantees}: PUBLIC, the API roles and every role default privileges give (guard_schema.grantees).
REVOKE_SCHEMA = "REVOKE ALL ON SCHEMA {schema} FROM {grantees}"
REVOKE_TABLE = "REVOKE ALL ON TABLE {copy} FROM {grantees}"
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
);
ALTER TABLE guard.copies ADD COLUMN IF NOT EXISTS source_oid oid,
                         ADD COLUMN IF NOT EXISTS expires_at timestamptz,
                         ADD COLUMN IF NOT EXISTS xact xid8;
-- The top-level transaction that made the copy, even after a SAVEPOINT (the tripwire asks).
-- A default of its own, so rows of earlier runs are not taken for this transaction's.
ALTER TABLE guard.copies ALTER COLUMN xact SET DEFAULT pg_current_xact_id()
"""
REVOKE_REGISTRY = "REVOKE ALL ON TABLE guard.copies FROM PUBLIC"
REGISTER = """
INSERT INTO guard.copies (copy, run_id, source, kind, statement, rows, bytes, restore_sql, source_oid,
                          expires_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, clock_timestamp() + %s * interval '1 second')
RETURNING to_char(expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
"""
# The relation a name means at this point of the transaction, as the server resolves it. A
# temporary table (a file's own, which may shadow a table of the same name) holds nothing that
# existed before the run, and a copy's restore SQL could never reach it. A foreign table's rows
# live on another server, where neither the tripwire nor anything else of guard's sees them: a
# DELETE, UPDATE, TRUNCATE or MERGE of one is copied as a table's is.
RESOLVE = """
SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relname, pg_total_relation_size(c.oid), c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.oid = to_regclass(%s) AND c.relkind IN ('r', 'p', 'f') AND c.relpersistence <> 't'
"""


# How a whole-table copy's restore SQL begins (a MERGE's, or a DELETE or UPDATE copied whole):
# guard undo puts such a table back by difference (guard/undo/copies.py Copy.whole).
WHOLE_TABLE_RESTORE = "-- the copy holds the whole table as it was before"


class CopyRecord(Struct):
    """One protective copy, as the report and the restore plan show it."""

    source: str
    copy: str
    kind: str  # table | rows | column
    statement: str  # file:line of the destructive statement
    rows: int | None
    bytes: int | None
    restore_sql: str
    expires_at: str | None = None  # UTC, ISO 8601: protect.retention after it was made


class Protector(Struct):
    """Called before each statement inside the statement's transaction; copies what it
    destroys. ``before`` returns the statement to run instead (DELETE/UPDATE that copy their
    own rows) or None."""

    run_id: str
    schema: str = "guard_backup"
    max_bytes: int = 1 << 30
    retention: float = DEFAULT_RETENTION  # seconds
    progress: Progress = field(default=lambda _line: None)
    guard_role: str | None = None  # the role guard connected as (None: not known)
    copies: list[CopyRecord] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    _seen: set[int] = field(default_factory=set)  # tables copied whole for the current statement
    _seq: int = 0
    _identity: who.Identity | None = None  # the file's, at the current statement

    def before(self, conn: psycopg.Connection[Any], statement: Statement, where: str) -> str | None:
        from psycopg.pq import TransactionStatus

        if not copies_before(statement, DESTRUCTIVE_KINDS):
            return None
        from guard.protect.targets import targets  # the statement parser: only for what may destroy

        found = targets(statement.sql)
        if not found:
            return None
        if any(c.statement == where for c in self.copies):  # a lock-timeout retry: the attempt before rolled back
            self.copies = [c for c in self.copies if c.statement.rsplit(":", 1)[0] != where.rsplit(":", 1)[0]]
        # A statement outside any transaction block (a file with transactions of its own):
        # psql's implicit transaction, made explicit, so the copy commits with the statement.
        idle = conn.pgconn.transaction_status == TransactionStatus.IDLE
        if idle:
            conn.execute("BEGIN")
        replacement = None
        self._seen = set()
        self._identity = who.take_over(conn, self.guard_role)
        for target in found:
            if target.kind == "schema":
                self._schema(conn, target, where)
                continue
            resolved = self._resolve(conn, target.relation, where)
            if resolved is not None and resolved.oid not in self._seen:
                replacement = self._protect(conn, target, resolved, where, statement.sql) or replacement
        replacement = who.finish(self._identity, conn, replacement)
        self._identity = None
        return f"{replacement or statement.sql}; COMMIT" if idle else replacement

    def finish(self, conn: psycopg.Connection[Any]) -> None:
        """After the apply: the row counts of copies their statement filled, and sizes."""
        refresh(conn, self.copies)

    # ------------------------------------------------------------------ one target

    def _resolve(self, conn: psycopg.Connection[Any], relation: str, where: str) -> _Resolved | None:
        row = conn.execute(RESOLVE, (relation,)).fetchone()
        if row is None:
            return None  # created by this file, not a table, or already gone: nothing to keep
        resolved = _Resolved(int(row[0]), row[1], row[2], int(row[3]), str(row[4]))
        if resolved.size > self.max_bytes:
            self.skipped.append(
                f"{where}: {resolved.name} is {resolved.size} bytes, above protect.max_bytes; not copied")
            self.progress(self.skipped[-1])
            return None
        return resolved

    def _schema(self, conn: psycopg.Connection[Any], target: Target, where: str) -> None:
        from guard.protect.recreate import definition

        references: list[str] = []
        last: CopyRecord | None = None
        for (table,) in conn.execute(SCHEMA_TABLES, (target.schema_name,)).fetchall():
            resolved = self._resolve(conn, table, where)
            if resolved is None:
                continue
            recreate = definition(conn, resolved.oid)
            references.extend(recreate.references)
            recreate.references = []
            last = self._copy_table(conn, resolved, where, recreate=recreate)
        if last is not None and references:
            # Foreign keys once every table of the schema is back.
            last.restore_sql += "\n" + "\n".join(dict.fromkeys(references))
            conn.execute("UPDATE guard.copies SET restore_sql = %s WHERE copy = %s",
                         (last.restore_sql, last.copy))

    def _protect(
        self, conn: psycopg.Connection[Any], target: Target, resolved: _Resolved, where: str, text: str
    ) -> str | None:
        from guard.protect import family

        if resolved.relkind == "f" and (target.kind == "column" or target.dropped):
            return None  # the remote rows stay where they are
        members = [] if target.only else family.descendants(self, conn, resolved, where)
        if target.statement in ("DeleteStmt", "UpdateStmt"):
            update = target.statement == "UpdateStmt"
            if members:
                return family.capture(self, conn, [resolved, *members], where, text, update=update)
            return self._capture(conn, resolved, where, text, update=update, updated=target.updated)
        if target.kind == "column" and target.column:
            self._copy_column(conn, resolved, target.column, where, retyped=target.retyped)
            return None
        merge = target.statement in ("MergeStmt", "InsertStmt")  # an upsert: copied whole, as MERGE
        if merge:
            conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(resolved.name)))
        from guard.protect.recreate import definition

        recreate = definition(conn, resolved.oid) if target.dropped else None
        self._copy_table(conn, resolved, where, recreate=recreate, merge=merge)
        for member in members:  # TRUNCATE, MERGE, DROP ... CASCADE of a parent reach its children
            if member.oid in self._seen:
                continue
            again = None
            if target.dropped:
                again = definition(conn, member.oid)
                again.after += [f"ALTER TABLE {member.name} INHERIT {parent};" for parent in member.parents]
            self._copy_table(conn, member, where, recreate=again, merge=merge)
        if target.cascade:
            for (other,) in conn.execute(REFERENCING_TABLES, (resolved.oid, resolved.oid)).fetchall():
                found = self._resolve(conn, other, where)
                if found is not None and found.oid not in self._seen:
                    self._copy_table(conn, found, where)
        return None

    # ------------------------------------------------------------------ the copies

    def _new_copy(self, conn: psycopg.Connection[Any], resolved: _Resolved) -> tuple[sql.Composable, str]:
        self._ensure_schema(conn)
        self._seq += 1
        name = copy_name(self.run_id, self._seq, resolved.relname)
        copy = sql.Identifier(self.schema, name)
        return copy, copy.as_string(conn)

    def _lock_down(self, conn: psycopg.Connection[Any], copy: sql.Composable, *, rls: bool = True) -> None:
        from guard.guard_schema import grantees

        # PUBLIC, the API roles, and whoever default privileges just gave the copy to.
        conn.execute(sql.SQL(REVOKE_TABLE).format(copy=copy, grantees=grantees(conn, self.schema)))
        if rls:
            conn.execute(sql.SQL(ENABLE_RLS).format(copy=copy))

    def _register(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, copy_text: str, kind: str, where: str,
        rows: int | None, restore: str,
    ) -> CopyRecord:
        size = conn.execute(COPY_SIZE, (copy_text,)).fetchone() if rows is not None else None
        record = CopyRecord(source=resolved.name, copy=copy_text, kind=kind, statement=where, rows=rows,
                            bytes=int(size[0]) if size else None, restore_sql=restore)
        expiry = conn.execute(REGISTER, (copy_text, self.run_id, record.source, kind, where, rows,
                                         record.bytes, restore, resolved.oid, self.retention)).fetchone()
        record.expires_at = expiry[0] if expiry else None
        self.copies.append(record)
        return record

    def _copy_table(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, where: str, *, recreate: Any = None,
        merge: bool = False,
    ) -> CopyRecord:
        from guard.tripwire import before_whole_copy

        before_whole_copy(conn, resolved.oid)  # what this file destroyed before: not in a copy made now
        copy, copy_text = self._new_copy(conn, resolved)
        self._seen.add(resolved.oid)
        started = time.monotonic()
        if resolved.size > 50 << 20:
            self.progress(f"copying {resolved.name} ({resolved.size >> 20} MB) before {where}")
        with who.every_row(conn):
            cursor = conn.execute(sql.SQL("CREATE TABLE {copy} AS SELECT {cols} FROM {source}").format(
                copy=copy, cols=self._columns(conn, resolved), source=sql.SQL(resolved.own)))
        rows = cursor.rowcount if cursor.rowcount >= 0 else None
        self._lock_down(conn, copy)
        # A recreated table's restore SQL sets its sequences itself (guard.protect.recreate).
        insert = self._insert(conn, resolved, copy_text, recreated=recreate is not None)
        if recreate is not None:
            parts = [*recreate.before, insert, *recreate.after, *recreate.references]
            parts += [f"-- not recreated: {what}" for what in recreate.cannot]
            restore = "\n".join(parts)
        elif merge:
            # MERGE may have inserted, updated and deleted rows; a DELETE or UPDATE copied whole
            # may have changed any of them.
            restore = (f"{WHOLE_TABLE_RESTORE} {where}: put the whole table back\n"
                       f"DELETE FROM {resolved.own};\n{insert}")
        else:
            restore = insert
        record = self._register(conn, resolved, copy_text, "table", where, rows, restore)
        elapsed = time.monotonic() - started
        if elapsed > 1:
            self.progress(f"copied {rows} row(s) of {resolved.name} in {elapsed:.1f}s")
        return record

    def _columns(self, conn: psycopg.Connection[Any], resolved: _Resolved) -> sql.Composable:
        return sql.SQL(", ".join(r[0] for r in conn.execute(COPY_COLUMNS, (resolved.oid,)).fetchall()))

    def _insert(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, copy_text: str, *, recreated: bool = False,
    ) -> str:
        """Restore SQL putting the copy's rows back into ``resolved`` (``recreated``: into the
        table the restore SQL just recreated, which sets its sequences itself)."""
        found = conn.execute(WRITABLE, (resolved.oid,)).fetchall()
        cols = ", ".join(r[0] for r in found)
        values = ", ".join(_cast(name, cast) for name, cast in found)
        # Restore SQL for the operator: names are regclass text and quote_ident() output.
        insert = f"INSERT INTO {resolved.name} ({cols}) OVERRIDING SYSTEM VALUE SELECT {values} FROM {copy_text}"  # noqa: S608
        # A file that deleted rows and inserted rows with the same keys (TRUNCATE or DELETE,
        # then a seed): each old row takes its key back over the new one.
        key = [] if recreated else [r[0] for r in conn.execute(PRIMARY_KEY, (resolved.oid,)).fetchall()]
        sets = [r[0] for r in conn.execute(UPDATABLE, (resolved.oid,)).fetchall() if r[0] not in key] if key else []
        if key and has_rules(conn, resolved.oid, "23"):
            insert = upsert_under_rules(resolved.name, copy_text, key, found, sets)
        elif key:
            insert += f" ON CONFLICT ({', '.join(key)}) DO " + (
                f"UPDATE SET ({', '.join(sets)}) = ROW({', '.join(f'EXCLUDED.{c}' for c in sets)})" if sets
                else "NOTHING")
        # The rows come back with their ids: a sequence that went back since (TRUNCATE ...
        # RESTART IDENTITY, ALTER SEQUENCE ... RESTART) must not hand them out again.
        moves = [f"SELECT setval({sql.Literal(seq).as_string(None)}, greatest(max({col}), "  # noqa: S608
                 f"(SELECT last_value FROM {seq}))) FROM {resolved.name};"
                 for col, seq in (() if recreated else conn.execute(OWNED_SEQUENCES, (resolved.oid,)).fetchall())]
        return "\n".join([insert + ";", *moves])

    def _capture(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, where: str, text: str, *, update: bool,
        updated: tuple[str, ...] = (),
    ) -> str | None:
        """An empty copy that the rewritten statement itself fills (None: not rewritable, so
        a copy of the whole table before it instead)."""
        from guard.protect.targets import capture_delete, capture_update

        if (self._identity is not None and not who.can_read(conn, self._identity, resolved.oid)) or (
                update and resolved.relkind == "f") or has_rules(conn, resolved.oid, "2" if update else "4"):
            # The role may delete or update rows it may not read (no SELECT: no RETURNING); a
            # foreign table's ctid is not a row's identity; rules refuse the rewrite (HAS_RULES).
            if resolved.relkind != "f":  # LOCK TABLE takes no foreign table
                conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(resolved.name)))
            self._copy_table(conn, resolved, where, merge=True)
            return None
        copy, copy_text = self._new_copy(conn, resolved)
        # The file's own role runs the statement: guard counts the rows after it (identity.py).
        count = self._identity is None or not self._identity.switched
        # An UPDATE of the primary key: the copy also keeps each row's new key, which restore
        # SQL finds it by (the old key may be gone, or another row's by then).
        key = [r[0] for r in conn.execute(PRIMARY_KEY, (resolved.oid,)).fetchall()] if update else []
        new_key = key if {_unquoted(k) for k in key} & set(updated) else []
        columns = self._columns(conn, resolved)
        if new_key:
            extra = ", ".join(f"{k} AS guard_new_{i}" for i, k in enumerate(new_key))
            columns = sql.SQL(f"{columns.as_string(conn)}, {extra}")
        if update:
            rewritten = capture_update(text, copy_text, copy_text, resolved.name, count=count, new_key=new_key)
        else:
            rewritten = capture_delete(text, copy_text, copy_text, count=count)
        if rewritten is None:
            self._seq -= 1
            conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(resolved.name)))
            self._copy_table(conn, resolved, where, merge=True)
            return None
        if update:
            conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(resolved.name)))
        conn.execute(sql.SQL("CREATE TABLE {copy} AS SELECT {cols} FROM {source} WITH NO DATA").format(
            copy=copy, cols=columns, source=sql.SQL(resolved.name)))
        self._lock_down(conn, copy, rls=count)
        if not count and self._identity is not None:
            who.let_write(conn, self._identity, self.schema, copy, copy_text)
        restore = (self._update_back(conn, resolved, copy_text, moved_key=bool(new_key)) if update
                   else self._insert(conn, resolved, copy_text))
        self._register(conn, resolved, copy_text, "rows", where, None, restore)
        return rewritten

    def _update_back(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, copy_text: str, *, moved_key: bool = False,
    ) -> str:
        key = [r[0] for r in conn.execute(PRIMARY_KEY, (resolved.oid,)).fetchall()]
        found = [r for r in conn.execute(UPDATABLE, (resolved.oid,)).fetchall() if moved_key or r[0] not in key]
        cols = [r[0] for r in found]
        if not key or not cols:
            return (f"-- {resolved.name} has no primary key: the copy holds the old rows whole; match them "  # noqa: S608
                    f"by hand, e.g. UPDATE {resolved.name} AS t SET ... FROM {copy_text} AS c WHERE <same row>;")
        join = " AND ".join(f"t.{k} = c.{f'guard_new_{i}' if moved_key else k}" for i, k in enumerate(key))
        values = ", ".join(_cast(f"c.{name}", cast) for name, cast in found)
        sets = ", ".join(cols)
        return f"UPDATE {resolved.own} AS t SET ({sets}) = ROW({values}) FROM {copy_text} AS c WHERE {join};"  # noqa: S608

    def _copy_column(
        self, conn: psycopg.Connection[Any], resolved: _Resolved, column: str, where: str, *, retyped: bool = False,
    ) -> None:
        from guard.protect.targets import ident

        key = [r[0] for r in conn.execute(PRIMARY_KEY, (resolved.oid,)).fetchall()]
        if not key:
            record = self._copy_table(conn, resolved, where)
            record.kind = "column"
            record.restore_sql = (f"-- {resolved.name} has no primary key: the copy holds whole rows; put "
                                  f"{ident(column)} back by matching rows by hand from {record.copy}")
            conn.execute("UPDATE guard.copies SET kind = 'column', restore_sql = %s WHERE copy = %s",
                         (record.restore_sql, record.copy))
            return
        type_row = conn.execute(COLUMN_TYPE, (resolved.oid, column)).fetchone()
        column_type = type_row[0] if type_row else "<original type>"
        col = ident(column)
        copy, copy_text = self._new_copy(conn, resolved)
        with who.every_row(conn):
            cursor = conn.execute(sql.SQL("CREATE TABLE {copy} AS SELECT {cols} FROM {source}").format(
                copy=copy, cols=sql.SQL(", ".join([*key, col])), source=sql.SQL(resolved.name)))
        self._lock_down(conn, copy)
        join = " AND ".join(f"t.{k} = c.{k}" for k in key)
        if retyped:
            # The column stays with its new type: an UPDATE into it would round or cut the old
            # values again (numeric(10,0), varchar(4)) or fail. Back to the old type first.
            first = (f"-- the column has another type since: back to {column_type} first (if this cast fails, "
                     f"USING NULL: the UPDATE below puts every old value back)\n"
                     f"ALTER TABLE {resolved.name} ALTER COLUMN {col} TYPE {column_type} USING {col}::text::{column_type};")
        else:
            first = (f"ALTER TABLE {resolved.name} ADD COLUMN IF NOT EXISTS {col} {column_type};\n"
                     f"-- if the column still exists with another type: "
                     f"ALTER TABLE {resolved.name} ALTER COLUMN {col} TYPE {column_type} USING NULL;")
        restore = f"{first}\nUPDATE {resolved.name} AS t SET {col} = c.{col} FROM {copy_text} AS c WHERE {join};"
        self._register(conn, resolved, copy_text, "column", where,
                       cursor.rowcount if cursor.rowcount >= 0 else None, restore)

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        # Every time: a file that rolled back took the schema and the registry with it.
        from guard import journal
        from guard.guard_schema import close_schema, grantees

        journal.ensure(conn)
        schema = sql.Identifier(self.schema)
        conn.execute(sql.SQL(CREATE_SCHEMA).format(schema=schema))
        conn.execute(sql.SQL(REVOKE_SCHEMA).format(schema=schema, grantees=grantees(conn, self.schema)))
        conn.execute(CREATE_REGISTRY)
        conn.execute(REVOKE_REGISTRY)
        close_schema(conn, "guard")  # guard.copies too, whatever default privileges granted


def _unquoted(name: str) -> str:
    """A quote_ident() result back to the name."""
    return name[1:-1].replace('""', '"') if name.startswith('"') else name


def _cast(expression: str, cast: str | None) -> str:
    return f"{expression}::{cast}" if cast else expression


def oversized(conn: psycopg.Connection[Any], statement: str, max_bytes: int) -> list[str]:
    """Targets of ``statement`` too large to copy under ``max_bytes`` (estimated before the run)."""
    from guard.protect.targets import targets

    too_big = []
    for target in targets(statement):
        if target.kind == "schema":
            names = [r[0] for r in conn.execute(SCHEMA_TABLES, (target.schema_name,)).fetchall()]
        else:
            names = [target.relation]
        for name in names:
            row = conn.execute(RESOLVE, (name,)).fetchone()
            if row and int(row[3]) > max_bytes:
                too_big.append(f"{row[1]} ({int(row[3])} bytes)")
    return too_big


def finish_run(
    conn: psycopg.Connection[Any], retention: float, protector: Protector, warnings: list[str],
    progress: Progress,
) -> None:
    """The end of a guarded run's apply: fill in the row counts of the copies and drop expired
    copies (``retention`` seconds for those without a recorded expiry). A failure is a warning
    in ``warnings``: the run's outcome does not depend on it."""
    import psycopg

    if conn.broken or conn.closed:
        return
    try:
        protector.finish(conn)
        dropped = prune(conn, retention=retention)
    except psycopg.Error as exc:
        warnings.append(f"expired protective copies not pruned: {exc.diag.message_primary or exc}")
        return
    if dropped:
        progress(f"pruned {len(dropped)} expired protective cop{'y' if len(dropped) == 1 else 'ies'}")
