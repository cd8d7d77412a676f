"""Carry out a local inverse: one transaction, after copying the present state it touches.

Every table an action touches is first copied into ``guard_backup`` under the undo's own id,
so the undo itself can be undone; then the actions run in order; the history loses the undone
versions (as ``supabase migration repair --status reverted`` deletes them) unless the undo is
partial; the run is marked undone. Before COMMIT the catalog fingerprint is compared with the
one recorded before the run: what still differs is returned, never hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from psycopg import sql

from guard.undo.catalog import fingerprint_json
from guard.undo.model import Action, InversePlan, one_statement

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
COPY_PRESENT = "CREATE TABLE {copy} AS SELECT {columns} FROM {table}"
COPY_HISTORY = "CREATE TABLE {copy} AS SELECT * FROM supabase_migrations.schema_migrations WHERE version = ANY(%s)"
PUT_HISTORY_BACK = "INSERT INTO supabase_migrations.schema_migrations SELECT * FROM {copy} ON CONFLICT DO NOTHING"
IN_PLACE_AGAIN = "DELETE FROM guard.undone WHERE run_id = %s"
REVOKE_COPY = "REVOKE ALL ON TABLE {copy} FROM PUBLIC"
DELETE_HISTORY = "DELETE FROM supabase_migrations.schema_migrations WHERE version = ANY(%s)"
# Read after the DELETE (or the INSERT putting rows back) had its rules and triggers: the
# history then says what undo did, else the undo fails and rolls back.
ALL_GONE = ("NOT EXISTS (SELECT FROM supabase_migrations.schema_migrations "
            "WHERE version OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.text[]))")
ALL_BACK = ("NOT EXISTS (SELECT version FROM {copy} EXCEPT "
            "SELECT version FROM supabase_migrations.schema_migrations)")
HISTORY_EXISTS = "SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL"
EXISTS = "SELECT to_regclass(%s) IS NOT NULL"
LOCK = "LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE"
# The application's sessions hold locks too: wait a while, then fail (exit 1) rather than hang.
LOCK_TIMEOUT = "SET LOCAL lock_timeout = '30s'"


def ensure_undone(conn: psycopg.Connection[Any]) -> None:
    """``guard.undone``: which runs were undone, by which undo, by which path."""
    if conn.execute(UNDONE_EXISTS).fetchone() == (True,):
        return
    from guard.guard_schema import close_schema, installing

    with installing(conn):  # beside a `guard init`: they take turns
        conn.execute(CREATE_UNDONE)
        conn.execute(REVOKE_UNDONE)
        close_schema(conn, "guard")


def copy_present(conn: psycopg.Connection[Any], plan: InversePlan, undo_id: str) -> list[str]:
    """Copy each existing table the plan touches and register the copies as the undo's own
    (``guard undo UNDO_ID`` puts them back); returns the copies' names (in the transaction)."""
    from guard.undo.copies import present_columns, register_present

    conn.execute(CREATE_COPY_SCHEMA)
    conn.execute(REVOKE_COPY_SCHEMA)
    made = []
    for n, table in enumerate(dict.fromkeys(a.table for a in plan.actions if a.table), start=1):
        if conn.execute(EXISTS, (table,)).fetchone() != (True,):
            continue
        short = table.replace('"', "").split(".")[-1]
        name = f"undo_{undo_id}_{n}_{short}"[:63]
        copy = sql.Identifier("guard_backup", name)
        cursor = conn.execute(sql.SQL(COPY_PRESENT).format(
            copy=copy, columns=sql.SQL(present_columns(conn, table)), table=sql.SQL(table)))
        conn.execute(sql.SQL(REVOKE_COPY).format(copy=copy))
        made.append(copy.as_string(conn))
        register_present(conn, undo_id, table, made[-1], max(cursor.rowcount, 0))
    if made:
        from guard.guard_schema import close_schema

        close_schema(conn, "guard_backup")  # the copies too, whatever default privileges granted
        close_schema(conn, "guard")
    return made


def history_copy(undo_id: str) -> sql.Identifier:
    """Where an undo keeps the history rows it deletes (its own undo puts them back)."""
    return sql.Identifier("guard_backup", f"undo_{undo_id}_history"[:63])


def _history(conn: psycopg.Connection[Any], versions: list[str], undo_id: str, run_id: str,
             undoing: str | None) -> None:
    """The history after a whole undo: the undone versions out (copied first); after the undo
    of an undo (``run_id``, which undid run ``undoing``), the versions it took out back in, and
    that run in place again."""
    from guard.migrations.history import QUALIFIED, Landed, check_landed
    from guard.migrations.session import FIRE_DEFERRED

    if undoing is not None:
        copy = history_copy(run_id)
        if conn.execute(EXISTS, (copy.as_string(conn),)).fetchone() == (True,):
            conn.execute(sql.SQL(PUT_HISTORY_BACK).format(copy=copy))
            # A rule or trigger may discard the rows without an error (as a run's, history.check_landed).
            back = Landed(sql.SQL(ALL_BACK).format(copy=copy).as_string(conn), (),
                          f"guard undo's history rows put back in {QUALIFIED} did not land: a rule or trigger "
                          "discarded them")
            conn.execute(FIRE_DEFERRED)  # a deferred trigger acts now, not at COMMIT after the check
            conn.execute(*check_landed([back]))
        conn.execute(IN_PLACE_AGAIN, (undoing,))
        return
    if conn.execute(HISTORY_EXISTS).fetchone() == (True,):
        conn.execute(sql.SQL(COPY_HISTORY).format(copy=history_copy(undo_id)), (versions,))
        conn.execute(sql.SQL(REVOKE_COPY).format(copy=history_copy(undo_id)))
        from guard.guard_schema import close_schema

        close_schema(conn, "guard_backup")
        conn.execute(DELETE_HISTORY, (versions,))
        gone = Landed(ALL_GONE, (versions,),
                      f"guard undo's removal of {', '.join(versions)} from {QUALIFIED} did not happen: a rule or "
                      "trigger discarded it")
        conn.execute(FIRE_DEFERRED)  # a deferred trigger acts now, not at COMMIT after the check
        conn.execute(*check_landed([gone]))


class Tampered(Exception):
    """A copy changed (or something now stands in the way) between the plan and the transaction
    that would use it: args are (what, one line why)."""


def lock(conn: psycopg.Connection[Any], plan: InversePlan) -> None:
    """ACCESS EXCLUSIVE on every existing table the plan touches: nothing the application writes
    can slip in between what undo saw and what it does."""
    tables = [t for t in dict.fromkeys(a.table for a in plan.actions if a.table)
              if conn.execute(EXISTS, (t,)).fetchone() == (True,)]
    if tables:
        conn.execute(sql.SQL(LOCK).format(tables=sql.SQL(", ").join(sql.SQL(t) for t in tables)), binary=True)


def execute(
    conn: psycopg.Connection[Any], build: Callable[[], InversePlan], *, run_id: str, undo_id: str,
    versions: list[str], before: dict[str, str], force: bool, progress: Any, undoing: str | None = None,
) -> tuple[InversePlan, list[str], list[str]]:
    """Build the plan and run it in one transaction, under locks; returns (the plan as carried
    out, copies of the present state, differences from the fingerprint before the run that
    remain). ``undoing``: this undoes the undo of run ``undoing``. The undo records its own
    catalogs before and after, so that it can be undone too. A failing statement raises
    psycopg.Error and everything rolls back; a copy that no longer matches its checksum raises
    Tampered."""
    from guard import fingerprint
    from guard.undo import catalog

    ensure_undone(conn)
    with conn.transaction():
        conn.execute(LOCK_TIMEOUT)
        lock(conn, build())
        plan = build()  # again, under the locks: what the application wrote up to now is seen
        if plan.tampered or plan.blocked:
            raise Tampered("; ".join(plan.tampered + plan.blocked), plan.refusal)
        copies = copy_present(conn, plan, undo_id)
        for statement in plan.prepare:
            one_statement(conn, statement)
        recorded = catalog.record(conn, undo_id, "before")
        for index, action in enumerate(plan.actions):
            progress(f"undo: {action.what}")
            if not _do(conn, plan, action, force):
                plan.not_done.add(index)
        # As a fingerprint recorded by an earlier guard could hold it (no privileges, or no v2 kinds).
        taken = fingerprint.as_recorded(fingerprint.take(conn), before)
        now = fingerprint_json(taken)
        remaining = sorted(
            f"{key} {'added' if key not in before else 'removed' if key not in now else 'changed'}"
            for key in set(before) | set(now) if before.get(key) != now.get(key)
        )
        partial = plan.partial or bool(remaining)  # what remains: the run stays in place, versions too
        if not partial:
            _history(conn, versions, undo_id, run_id, undoing)
        # A partial undo that did nothing leaves the run as it was: not marked, so that
        # `guard undo --force` may follow at once (there is no undo to undo first).
        if not (partial and plan.nothing_done):
            conn.execute(MARK_UNDONE, (run_id, undo_id, "local", partial))
        catalog.record(conn, undo_id, "after", recorded)
    return plan, copies, remaining


def _do(conn: psycopg.Connection[Any], plan: InversePlan, action: Action, force: bool) -> bool:
    """One action; a soft one (a constraint the rows written since violate) is kept off without
    --force, an optional one (an object something depends on) is named, each in a savepoint.
    False: it was not done (named), so it is not listed as done."""
    import psycopg

    if not (action.soft or action.optional):
        one_statement(conn, action.sql)
        return True
    try:
        with conn.transaction():
            one_statement(conn, action.sql)
        return True
    except psycopg.Error as exc:
        reason = exc.diag.message_primary or str(exc)
        if action.optional:
            plan.not_invertible.append(f"{action.what}: not done, {reason}")
        elif not force and (exc.sqlstate or "").startswith("23"):
            count = one_statement(conn, action.count_sql).fetchone() if action.count_sql else None
            rows = f"{count[0]} row(s) written since the run" if count else "rows written since the run"
            plan.kept.append(f"{action.what}: not done, {rows} violate it ({reason}); they are kept as they are, "
                             "--force makes the undo fail instead")
        else:
            raise
        return False
