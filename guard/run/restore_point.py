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


def mark_restore_point(conn: Any, run_id: str) -> RestoreTarget:
    """clock_timestamp() and pg_current_wal_lsn(), with a named restore point ``guard-RUN_ID``
    where the role may make one (pg_create_restore_point: superuser or a grant, and
    wal_level >= replica; otherwise a note says why not and the timestamp still serves)."""
    import psycopg

    name = f"guard-{run_id}"
    point: str | None = None
    note: str | None = None
    row = None
    try:  # the point, then the clock and WAL position after it, in one round trip
        row = conn.execute(POINT_CLOCK_AND_LSN, (name,)).fetchone()
        point = name
    except psycopg.Error as exc:  # an autocommit session: nothing to roll back
        note = f"no named restore point: {exc.diag.message_primary or exc.__class__.__name__}"
    if row is None:
        row = conn.execute(CLOCK_AND_LSN).fetchone()
        assert row is not None
    else:
        row = row[1:]
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
