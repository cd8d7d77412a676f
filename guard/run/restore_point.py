"""Step 8: mark the restore point, the server's clock and WAL position before the first statement."""

from __future__ import annotations

import datetime as dt
from typing import Any

from guard.report.model import RestoreTarget, iso
from guard.run.state import RunState

CLOCK_AND_LSN = """
SELECT clock_timestamp(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END,
       current_setting('archive_mode')
"""
# The point with the clock and WAL position, one round trip. Their order within the statement
# is not defined (sql-expressions.html, "Expression Evaluation Rules") and does not matter:
# all three come before the first statement of the release.
POINT_CLOCK_AND_LSN = CLOCK_AND_LSN.replace("SELECT ", "SELECT pg_create_restore_point(%s)::text, ", 1)
# When EXECUTE on pg_current_wal_lsn is revoked (PostgreSQL checks it when the statement
# starts, even in a CASE branch never taken): the clock alone, and the point alone.
CLOCK_ONLY = "SELECT clock_timestamp(), NULL::text, current_setting('archive_mode')"
CREATE_RESTORE_POINT = "SELECT pg_create_restore_point(%s)::text"


def mark_restore_point(conn: Any, run_id: str) -> RestoreTarget:
    """clock_timestamp() and pg_current_wal_lsn() (None where the role may not call it), with
    a named restore point ``guard-RUN_ID`` where the role may make one (pg_create_restore_point:
    superuser or a grant, and wal_level >= replica; otherwise a note says why not and the
    timestamp still serves). ``conn`` is autocommit: a refused statement leaves nothing to
    roll back. psycopg.Error only when the server refuses even the clock."""
    import psycopg

    name = f"guard-{run_id}"
    try:  # the point, then the clock and WAL position after it, in one round trip
        row = conn.execute(POINT_CLOCK_AND_LSN, (name,)).fetchone()
        return _target(row[1:], name, None)
    except psycopg.Error as exc:
        note = _no_point(exc)
    try:
        row = conn.execute(CLOCK_AND_LSN).fetchone()
    except psycopg.errors.InsufficientPrivilege:  # the WAL position refused, not (only) the point
        row = conn.execute(CLOCK_ONLY).fetchone()
        try:
            conn.execute(CREATE_RESTORE_POINT, (name,))
        except psycopg.Error as exc:
            return _target(row, None, _no_point(exc))
        return _target(row, name, None)
    return _target(row, None, note)


def _no_point(exc: Any) -> str:
    return f"no named restore point: {exc.diag.message_primary or exc.__class__.__name__}"


def _target(row: Any, point: str | None, note: str | None) -> RestoreTarget:
    now: dt.datetime = row[0]
    return RestoreTarget(
        timestamp=iso(now),
        unix=int(now.timestamp()),
        lsn=row[1],
        restore_point=point,
        restore_point_note=note,
        archive_mode=row[2],
    )


def mark(state: RunState) -> None:
    """Fill the report's restore target."""
    target = state.report.restore_target = mark_restore_point(state.db, state.report.run_id)
    state.progress(f"restore target: {target.timestamp} (LSN {target.lsn or 'n/a'})")
