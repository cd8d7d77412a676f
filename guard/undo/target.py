"""Which run to undo: the latest guarded run that changed the database and was not undone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard import journal
from guard.errors import Blocked

if TYPE_CHECKING:
    import psycopg

# A run changed the database when it committed versions, or (a wrapped tool that keeps no
# Supabase history) when the catalog changed around the tool.
CHANGED_RUNS = f"""
SELECT r.run_id FROM guard.runs r
 WHERE r.command = 'run' AND (cardinality({journal.COMMITTED}) > 0
       OR jsonb_array_length(coalesce(r.report -> 'wrapped' -> 'changes', '[]'::jsonb)) > 0)
 ORDER BY r.started_at DESC
"""
UNDONE_RUNS = "SELECT run_id FROM guard.undone"
UNDONE_EXISTS = "SELECT to_regclass('guard.undone') IS NOT NULL"


def undone(conn: psycopg.Connection[Any]) -> set[str]:
    if conn.execute(UNDONE_EXISTS).fetchone() != (True,):
        return set()
    return {r[0] for r in conn.execute(UNDONE_RUNS).fetchall()}


def wrapped_changes(run: journal.JournalRun) -> list[str]:
    """What a wrapped tool (`guard run -- CMD`) changed in the catalog, as guard saw it."""
    changes = ((run.report or {}).get("wrapped") or {}).get("changes") or ()
    return [f"{c.get('kind')} {c.get('name')} {c.get('action')}" for c in changes if isinstance(c, dict)]


def choose(conn: psycopg.Connection[Any], run_id: str | None) -> journal.JournalRun:
    """The run to undo (Blocked, exit 3, when there is none, it was undone already, it changed
    nothing, or a later run that changed the database is still in place: undo that first)."""
    if not journal.exists(conn):
        raise Blocked("nothing to undo: guard has no journal in this database")
    done = undone(conn)
    changed = [r[0] for r in conn.execute(CHANGED_RUNS).fetchall() if r[0] not in done]
    if run_id is None:
        if not changed:
            raise Blocked("nothing to undo: no guarded run that changed the database is left to undo")
        run_id = changed[0]
    found = journal.find(conn, run_id)
    if found is None or found.command != "run":
        raise Blocked(f"no guarded run {run_id} in the journal", hint="guard restore-plan lists runs")
    if run_id in done:
        raise Blocked(f"run {run_id} was undone already")
    if not found.committed and not wrapped_changes(found):
        raise Blocked(f"run {run_id} committed nothing: there is nothing to undo")
    if found.finished_at is None:
        raise Blocked(f"run {run_id} has not finished", hint="acknowledge it first (guard run --acknowledge)")
    later = changed[: changed.index(run_id)] if run_id in changed else []
    if later:
        raise Blocked(f"run {later[-1]} changed the database after {run_id}: undo it first")
    return found
