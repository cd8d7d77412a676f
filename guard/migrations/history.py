"""The migration history, exactly as the Supabase CLI keeps it.

``supabase_migrations.schema_migrations (version text primary key, statements text[], name text)``,
created idempotently the way the CLI creates it, so ``supabase migration list`` and guard agree
on what is applied whichever tool applied it (see shared/reference/supabase.md).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct

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
# Whether the table exists, and how many of the CLI's later columns it has (0 when it does not).
HISTORY_SHAPE = """
SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL,
       (SELECT count(*) FROM pg_attribute
         WHERE attrelid = to_regclass('supabase_migrations.schema_migrations')
           AND attname IN ('statements', 'name') AND NOT attisdropped)
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
# Read after guard's INSERT, in the same transaction: true once the row is in the table.
HISTORY_ROW_LANDED = (
    "EXISTS (SELECT FROM supabase_migrations.schema_migrations WHERE version OPERATOR(pg_catalog.=) %s)"
)
# One statement that raises unless every condition holds: a text cast to integer, PostgreSQL's
# own error then carrying guard's message ("invalid input syntax for type integer: ..."). The
# CASE's results are not constants the planner could cast ahead (its tests read the tables).
LANDED_CHECK = "SELECT (CASE {whens} ELSE '1' END)::pg_catalog.int4"
_LANDED_WHEN = "WHEN NOT {condition} THEN %s"
# The message's own words, found again in PostgreSQL's (whatever its lc_messages) by error_from.
_NOT_LANDED = re.compile(r"(guard's \w+ row for \S+ did not land: a rule or trigger on \S+ discarded it)")
NOT_LANDED_HINT = (
    "PostgreSQL discards a row without an error when a rule (DO INSTEAD, DO ALSO DELETE) or a trigger "
    "(BEFORE returning NULL, AFTER deleting it) says so (a row-level security policy hiding it from "
    "guard's role has the same effect, and so has a later file deleting it where the files share one "
    "transaction, transaction: all); guard failed the file rather than report it "
    "applied without its row (it would run again next time). Drop or fix that rule or trigger "
    "(psql: \\d+ on the table lists them), then run guard again."
)


class AppliedMigration(Struct, frozen=True):
    """One row of ``supabase_migrations.schema_migrations``."""

    version: str
    name: str | None
    statements: tuple[str, ...] | None


def read_history(conn: psycopg.Connection[Any]) -> list[AppliedMigration]:
    """Applied migrations in version order, compared as strings (the CLI's ``ORDER BY version``,
    list.go ListRemoteMigrations); empty when the table does not exist yet."""
    row = conn.execute(HISTORY_SHAPE).fetchone()  # the table and its columns, one round trip
    if not row or not row[0]:
        return []
    query = READ_HISTORY if row[1] == 2 else READ_HISTORY_VERSIONS_ONLY
    rows = conn.execute(query).fetchall()
    applied = [
        AppliedMigration(r[0], r[1], tuple(r[2]) if r[2] is not None else None) for r in rows
    ]
    return sorted(applied, key=lambda a: a.version)


def is_complete(conn: psycopg.Connection[Any]) -> bool:
    """The history table exists with every column the CLI gives it."""
    row = conn.execute(HISTORY_COMPLETE).fetchone()
    return bool(row and row[0])


def ensure_history(conn: psycopg.Connection[Any], *, lock_timeout: str = "4s", complete: bool | None = None) -> None:
    """Create the history table if needed, in its own short transaction (as the CLI does).

    A table that already has every column is left alone: the idempotent DDL would still
    take locks and cost round trips on every run. ``complete``: what :func:`is_complete`
    said just now (not asked again)."""
    from guard.guard_schema import close_schema, installing

    if complete if complete is not None else is_complete(conn):
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


class Landed(Struct, frozen=True):
    """A bookkeeping row guard wrote in a file's transaction: ``condition`` (SQL, ``params``
    for its placeholders) holds once it is in its table, read after the INSERT's rules and
    triggers had their way; ``message`` is the file's error when it does not."""

    condition: str
    params: tuple[Any, ...]
    message: str


def not_landed_message(kind: str, table: str, version: str) -> str:
    """The one-line error of a file whose ``kind`` ("history", "journal") row in ``table``
    was discarded."""
    return f"guard's {kind} row for {version} did not land: a rule or trigger on {table} discarded it"


def landed(version: str) -> Landed:
    """The history row of ``version`` is in supabase_migrations.schema_migrations."""
    return Landed(HISTORY_ROW_LANDED, (version,), not_landed_message("history", QUALIFIED, version))


def check_landed(rows: Sequence[Landed]) -> tuple[str, tuple[Any, ...]]:
    """One statement that raises (22P02, the failing row's message inside) unless each of
    ``rows`` is in its table; run after guard's records, before COMMIT, in the file's
    transaction. PostgreSQL lets a rule or a trigger discard an INSERT without an error
    (rules.html "Rules on INSERT, UPDATE, and DELETE"; trigger-definition.html: a BEFORE row
    trigger returning NULL skips the row), so the INSERT succeeding proves nothing."""
    whens = " ".join(_LANDED_WHEN.format(condition=row.condition) for row in rows)
    params = tuple(p for row in rows for p in (*row.params, row.message))
    return LANDED_CHECK.format(whens=whens), params


def not_landed(message: str) -> str | None:
    """guard's own message when PostgreSQL's error ``message`` is check_landed's; else None."""
    found = _NOT_LANDED.search(message)
    return found.group(1) if found else None


# Committed versions (and the run) whose history row or journal entry is not there: read once
# the run's last COMMIT is done. Qualified throughout: the database's search_path is in force.
# The last column: whether the run's own guard.runs row is gone (a file may delete it).
ROWS_GONE = (
    "SELECT v, NOT h, NOT j, NOT r FROM (SELECT v, EXISTS (SELECT FROM supabase_migrations.schema_migrations h "
    "WHERE h.version OPERATOR(pg_catalog.=) v) AS h, EXISTS (SELECT FROM guard.run_commits c "
    "WHERE c.run_id OPERATOR(pg_catalog.=) %(run)s AND c.version OPERATOR(pg_catalog.=) v) AS j, "
    "EXISTS (SELECT FROM guard.runs g WHERE g.run_id OPERATOR(pg_catalog.=) %(run)s) AS r "
    "FROM pg_catalog.unnest(%(versions)s::pg_catalog.text[]) AS v) AS q WHERE NOT (h AND j AND r)"
)


def rows_gone_after_commit(conn: psycopg.Connection[Any], run_id: str,
                           committed: Sequence[str]) -> tuple[dict[str, tuple[bool, bool]], bool]:
    """Of ``committed`` (versions run ``run_id`` committed), those whose history row or journal
    entry is not there now: version -> (history row gone, journal entry gone). Each file's
    transaction checks its rows before its COMMIT (check_landed); what runs after that check
    comes later: what COMMIT itself runs (deferred triggers that defer themselves again, ON
    COMMIT actions; sql-set-constraints.html, sql-createtable.html) and a later file of the run
    deleting an earlier file's row. Also whether the run's own guard.runs row is gone (True:
    a file deleted it). One query, after the run's last COMMIT; psycopg errors propagate."""
    if not committed:
        return {}, False
    rows = conn.execute(ROWS_GONE, {"run": run_id, "versions": list(committed)}).fetchall()
    return {r[0]: (bool(r[1]), bool(r[2])) for r in rows if r[1] or r[2]}, any(r[3] for r in rows)


def is_applied(conn: psycopg.Connection[Any], version: str) -> bool:
    row = conn.execute(VERSION_APPLIED, (version,)).fetchone()
    return row is not None


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
