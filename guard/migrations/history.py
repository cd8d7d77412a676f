"""The migration history, exactly as the Supabase CLI keeps it.

``supabase_migrations.schema_migrations (version text primary key, statements text[], name text)``,
created idempotently the way the CLI creates it, so ``supabase migration list`` and guard agree
on what is applied whichever tool applied it (see shared/reference/supabase.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

HISTORY_SCHEMA = "supabase_migrations"
HISTORY_TABLE = "schema_migrations"
QUALIFIED = f"{HISTORY_SCHEMA}.{HISTORY_TABLE}"

# As the Supabase CLI: schema, table with the primary key, then the columns, each idempotent.
CREATE_HISTORY = (
    "CREATE SCHEMA IF NOT EXISTS supabase_migrations",
    "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY)",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[]",
    "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text",
)
HISTORY_EXISTS = "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
HISTORY_HAS_COLUMNS = """
SELECT count(*) FROM pg_attribute
 WHERE attrelid = 'supabase_migrations.schema_migrations'::regclass
   AND attname IN ('statements', 'name') AND NOT attisdropped
"""
HISTORY_COMPLETE = """
SELECT count(*) = 2 FROM pg_attribute
 WHERE attrelid = to_regclass('supabase_migrations.schema_migrations')
   AND attname IN ('statements', 'name') AND NOT attisdropped
"""
READ_HISTORY = "SELECT version, name, statements FROM supabase_migrations.schema_migrations"
READ_HISTORY_VERSIONS_ONLY = "SELECT version, NULL::text, NULL::text[] FROM supabase_migrations.schema_migrations"
INSERT_HISTORY = (
    "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
    "VALUES (%s, %s, %s)"
)
VERSION_APPLIED = "SELECT 1 FROM supabase_migrations.schema_migrations WHERE version = %s"


@dataclass(frozen=True)
class AppliedMigration:
    """One row of ``supabase_migrations.schema_migrations``."""

    version: str
    name: str | None
    statements: tuple[str, ...] | None


def read_history(conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
    """Applied migrations in version order, compared as strings (the CLI's ``ORDER BY version``,
    list.go ListRemoteMigrations); empty when the table does not exist yet."""
    row = conn.execute(HISTORY_EXISTS).fetchone()
    if not row or not row[0]:
        return []
    count_row = conn.execute(HISTORY_HAS_COLUMNS).fetchone()
    query = READ_HISTORY if count_row and count_row[0] == 2 else READ_HISTORY_VERSIONS_ONLY
    rows = conn.execute(query).fetchall()
    applied = [
        AppliedMigration(r[0], r[1], tuple(r[2]) if r[2] is not None else None) for r in rows
    ]
    return sorted(applied, key=lambda a: a.version)


def is_complete(conn: psycopg.Connection[Any]) -> bool:
    """The history table exists with every column the CLI gives it."""
    row = conn.execute(HISTORY_COMPLETE).fetchone()
    return bool(row and row[0])


def ensure_history(conn: psycopg.Connection[Any], *, lock_timeout: str = "4s") -> None:
    """Create the history table if needed, in its own short transaction (as the CLI does).

    A table that already has every column is left alone: the idempotent DDL would still
    take locks and cost round trips on every run."""
    from guard.guard_schema import close_schema, installing

    if is_complete(conn):
        return
    with installing(conn):  # a `guard init` beside a first run: they take turns
        if is_complete(conn):
            return
        conn.execute("SET LOCAL lock_timeout = " + _literal(lock_timeout))
        for statement in CREATE_HISTORY:
            conn.execute(statement)
        close_schema(conn, HISTORY_SCHEMA)  # API roles must not forge history rows


def row(version: str, name: str, statements: list[str]) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters that insert a file's history row; the caller runs it in
    the file's own transaction."""
    return INSERT_HISTORY, (version, name, statements)


def is_applied(conn: psycopg.Connection[Any], version: str) -> bool:
    row = conn.execute(VERSION_APPLIED, (version,)).fetchone()
    return row is not None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
