"""Carry out a local inverse: one transaction, after copying the present state it touches.

Every table an action touches is first copied into ``guard_backup`` under the undo's own id,
so the undo itself can be undone; then the actions run in order; the history loses the undone
versions (as ``supabase migration repair --status reverted`` deletes them) unless the undo is
partial; the run is marked undone. Before COMMIT the catalog fingerprint is compared with the
one recorded before the run: what still differs is returned, never hidden.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from guard.undo.catalog import fingerprint_json
from guard.undo.plan import InversePlan

if TYPE_CHECKING:
    import psycopg

CREATE_UNDONE = """
CREATE TABLE IF NOT EXISTS guard.undone (
    run_id    text PRIMARY KEY,
    undo_id   text NOT NULL,
    path      text NOT NULL,
    partial   boolean NOT NULL,
    undone_at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
REVOKE_UNDONE = "REVOKE ALL ON TABLE guard.undone FROM PUBLIC"
MARK_UNDONE = "INSERT INTO guard.undone (run_id, undo_id, path, partial) VALUES (%s, %s, %s, %s)"
MARK_UNDONE_ONCE = MARK_UNDONE + " ON CONFLICT (run_id) DO NOTHING"
UNDONE_EXISTS = "SELECT to_regclass('guard.undone') IS NOT NULL"
CREATE_COPY_SCHEMA = "CREATE SCHEMA IF NOT EXISTS guard_backup"
REVOKE_COPY_SCHEMA = "REVOKE ALL ON SCHEMA guard_backup FROM PUBLIC"
COPY_PRESENT = "CREATE TABLE {copy} AS SELECT * FROM {table}"
REVOKE_COPY = "REVOKE ALL ON TABLE {copy} FROM PUBLIC"
DELETE_HISTORY = "DELETE FROM supabase_migrations.schema_migrations WHERE version = ANY(%s)"
HISTORY_EXISTS = "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
EXISTS = "SELECT to_regclass(%s) IS NOT NULL"


def ensure_undone(conn: psycopg.Connection[Any]) -> None:
    """``guard.undone``: which runs were undone, by which undo, by which path."""
    if conn.execute(UNDONE_EXISTS).fetchone() == (True,):
        return
    with conn.transaction():
        conn.execute(CREATE_UNDONE)
        conn.execute(REVOKE_UNDONE)


def copy_present(conn: psycopg.Connection[Any], plan: InversePlan, undo_id: str) -> list[str]:
    """Copy each existing table the plan touches; returns the copies' names (in the transaction)."""
    conn.execute(CREATE_COPY_SCHEMA)
    conn.execute(REVOKE_COPY_SCHEMA)
    made = []
    for n, table in enumerate(dict.fromkeys(a.table for a in plan.actions if a.table), start=1):
        if conn.execute(EXISTS, (table,)).fetchone() != (True,):
            continue
        short = table.replace('"', "").split(".")[-1]
        name = f"undo_{undo_id}_{n}_{short}"[:63]
        copy = sql.Identifier("guard_backup", name)
        conn.execute(sql.SQL(COPY_PRESENT).format(copy=copy, table=sql.SQL(table)))
        conn.execute(sql.SQL(REVOKE_COPY).format(copy=copy))
        made.append(f'guard_backup."{name}"')
    return made


def execute(
    conn: psycopg.Connection[Any], plan: InversePlan, *, run_id: str, undo_id: str, versions: list[str],
    before: dict[str, str], progress: Any,
) -> tuple[list[str], list[str]]:
    """Run the plan in one transaction; returns (copies of the present state, differences from
    the fingerprint before the run that remain). A failing statement raises psycopg.Error and
    everything rolls back."""
    from guard import fingerprint

    ensure_undone(conn)
    with conn.transaction():
        copies = copy_present(conn, plan, undo_id)
        for action in plan.actions:
            progress(f"undo: {action.what}")
            conn.execute(action.sql.encode())
        if not plan.partial and conn.execute(HISTORY_EXISTS).fetchone() == (True,):
            conn.execute(DELETE_HISTORY, (versions,))
        conn.execute(MARK_UNDONE, (run_id, undo_id, "local", plan.partial))
        now = fingerprint_json(fingerprint.take(conn))
    remaining = sorted(
        f"{key} {'added' if key not in before else 'removed' if key not in now else 'changed'}"
        for key in set(before) | set(now) if before.get(key) != now.get(key)
    )
    return copies, remaining
