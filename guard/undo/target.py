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
UNDONE_RUNS = "SELECT run_id, undo_id, partial FROM guard.undone"
UNDONE_EXISTS = "SELECT to_regclass('guard.undone') IS NOT NULL"
# Undos carried out locally, newest first: an undo can itself be undone (`guard undo UNDO_ID`).
LOCAL_UNDOS = """
SELECT r.run_id, r.started_at, r.report ->> 'run_id' FROM guard.runs r
 WHERE r.command = 'undo' AND r.status IN ('undone', 'partly_undone')
   AND r.report ->> 'path' = 'local' AND coalesce((r.report ->> 'done')::boolean, false)
 ORDER BY r.started_at DESC
"""


def undone(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, bool]]:
    """run id -> (the undo that undid it, partly)."""
    if conn.execute(UNDONE_EXISTS).fetchone() != (True,):
        return {}
    return {r[0]: (r[1], bool(r[2])) for r in conn.execute(UNDONE_RUNS).fetchall()}


def wrapped_changes(run: journal.JournalRun) -> list[str]:
    """What a wrapped tool (`guard run -- CMD`) changed in the catalog, as guard saw it."""
    changes = ((run.report or {}).get("wrapped") or {}).get("changes") or ()
    return [f"{c.get('kind')} {c.get('name')} {c.get('action')}" for c in changes if isinstance(c, dict)]


def choose(conn: psycopg.Connection[Any], run_id: str | None) -> journal.JournalRun:
    """The run to undo (Blocked, exit 3, when there is none, it was undone already, it changed
    nothing, or a later run that changed the database is still in place: undo that first). A
    partly undone run stays in place; to finish it, its undo is undone first. ``run_id`` may
    name a local undo: undoing it puts back the state before it."""
    if not journal.exists(conn):
        raise Blocked("nothing to undo: guard has no journal in this database")
    done = undone(conn)
    whole = {r for r, (_undo, partial) in done.items() if not partial}
    changed = [r[0] for r in conn.execute(CHANGED_RUNS).fetchall() if r[0] not in whole]
    if run_id is None:
        if not changed:
            raise Blocked("nothing to undo: no guarded run that changed the database is left to undo")
        run_id = changed[0]
    found = journal.find(conn, run_id)
    if found is not None and found.command == "undo":
        return _an_undo(conn, found, done)
    if found is None or found.command != "run":
        raise Blocked(f"no guarded run {run_id} in the journal", hint="guard restore-plan lists runs")
    if run_id in whole:
        raise Blocked(f"run {run_id} was undone already (by {done[run_id][0]})",
                      hint=f"guard undo {done[run_id][0]} puts back the state before that undo")
    if run_id in done:
        undo = done[run_id][0]
        raise Blocked(f"run {run_id} was partly undone by {undo}: what that undo kept is still in place",
                      hint=f"to finish: guard undo {undo} --yes (back to before that undo), then guard undo {run_id} --force")
    wrapped = (found.report or {}).get("wrapped")
    if not found.committed and wrapped and not wrapped_changes(found):
        raise Blocked(f"run {run_id} wrapped {(wrapped.get('argv') or ['a command'])[0]}: guard saw no change to the "
                      "catalog or the migration history, and cannot see or undo rows the command wrote",
                      hint="restore the rows from a backup if the command changed data")
    if not found.committed and not wrapped:
        raise Blocked(f"run {run_id} committed nothing: there is nothing to undo")
    if found.finished_at is None:
        raise Blocked(f"run {run_id} has not finished", hint="acknowledge it first (guard run --acknowledge)")
    later = changed[: changed.index(run_id)] if run_id in changed else []
    if later:
        raise Blocked(f"run {later[-1]} changed the database after {run_id}: undo it first")
    undos = conn.execute(LOCAL_UNDOS).fetchall()
    ids = {u for u, _at, _of in undos}
    # An undo that undid an undo cancels it: neither stands after the run.
    later_undos = [u for u, at, of in undos if at > found.started_at and u not in done and of not in ids]
    if later_undos:
        raise Blocked(f"undo {later_undos[-1]} changed the database after {run_id}: undo it first")
    return found


def _an_undo(conn: psycopg.Connection[Any], found: journal.JournalRun,
             done: dict[str, tuple[str, bool]]) -> journal.JournalRun:
    """An undo to undo: a local one, not undone yet, with nothing that changed the database since."""
    local = [(u, at) for u, at, _of in conn.execute(LOCAL_UNDOS).fetchall()]
    if found.run_id not in {u for u, _ in local}:
        raise Blocked(f"undo {found.run_id} changed nothing guard can put back locally "
                      "(it was refused, failed, or restored the whole database)")
    if found.run_id in done:
        raise Blocked(f"undo {found.run_id} was undone already (by {done[found.run_id][0]})")
    newer = [u for u, at in local if at > found.started_at and u not in done]
    newer += [r[0] for r in conn.execute(CHANGED_RUNS).fetchall()
              if r[0] not in done and (journal.find(conn, r[0]) or found).started_at > found.started_at]
    if newer:
        raise Blocked(f"{newer[0]} changed the database after undo {found.run_id}: undo it first")
    return found
