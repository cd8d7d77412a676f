"""Step 3: one guard at a time per database (a session advisory lock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from guard.db import LOCK_HOLDER, LOCK_KEY, TRY_LOCK, acquire_lock, release_lock
from guard.errors import Blocked
from guard.migrations.session import CLIENT_CHECK_SECONDS
from guard.run.state import RunState

RUNNING = """
SELECT started_at, actor FROM guard.runs
 WHERE run_id = %s AND finished_at IS NULL AND acknowledged_at IS NULL
"""


def _running_holder(conn: Any) -> tuple[str, str] | None:
    """(run id, "started ... by ...") when the lock holder is a ``guard run`` whose journal
    entry is still ``running``; None otherwise."""
    from guard import journal

    holder = conn.execute(LOCK_HOLDER, (LOCK_KEY, LOCK_KEY)).fetchone()
    name = str(holder[1] or "") if holder else ""
    if not name.startswith("guard run ") or not journal.exists(conn):
        return None
    run_id = name.removeprefix("guard run ").strip()
    row = conn.execute(RUNNING, (run_id,)).fetchone()
    if row is None:
        return None
    return run_id, f"started {row[0].isoformat()} by {row[1] or '?'}"


def _lock_after_client_check(conn: Any) -> bool:
    """Wait one client check (and a margin) for the lock: a holder whose client is gone is
    ended by the server by then. True when the lock was taken."""
    import time

    deadline = time.monotonic() + CLIENT_CHECK_SECONDS + 3
    while time.monotonic() < deadline:
        row = conn.execute(TRY_LOCK, (LOCK_KEY,)).fetchone()
        if row and row[0]:
            return True
        time.sleep(0.5)
    return False


def acquire(state: RunState) -> None:
    """Take guard's lock. When a ``guard run`` still ``running`` in the journal holds it, wait
    one client check: a dead client's session is gone by then and this run carries on (step 4
    then shows the unfinished run); otherwise Blocked says the run is running and its client
    is connected (PostgreSQL 14+, where guard's sessions set client_connection_check_interval)."""
    conn = state.db
    assert state.facts is not None
    try:
        acquire_lock(conn, state.facts.database)
        return
    except Blocked as exc:
        running = _running_holder(conn)
        if running is None:
            raise
        run_id, since = running
        if state.facts.major < 14:
            raise Blocked(f"{exc.message}; its run {run_id} ({since}) is still running in guard.runs; whether its "
                          "client is still connected cannot be told before PostgreSQL 14", hint=exc.hint) from None
        state.progress(f"run {run_id} holds guard's lock; waiting {CLIENT_CHECK_SECONDS}s for the server's client check")
        if _lock_after_client_check(conn):
            if conn.execute(RUNNING, (run_id,)).fetchone() is None:
                # The holder finished while we waited: it was working, not dead. A second
                # guard refuses, as it would have at once (DESIGN: lock, exit 3).
                conn.execute("SELECT pg_advisory_unlock(%s)", (LOCK_KEY,))
                raise Blocked(f"{exc.message}; its run {run_id} finished while this one waited",
                              hint=exc.hint) from None
            state.report.warnings.append(
                f"run {run_id} held guard's lock but its client was gone: the server ended its session")
            return
        raise Blocked(f"{exc.message}; its run {run_id} ({since}) is still running in guard.runs and its client is "
                      f"connected (the server checks every {CLIENT_CHECK_SECONDS}s and ends a session whose "
                      "client is gone)", hint=exc.hint) from None


@contextmanager
def held(state: RunState) -> Iterator[None]:
    """Hold the lock for the block (Blocked, exit 3, naming the holder, when another guard has
    it); released unless the connection broke. Read only: a holder is only a warning."""
    conn = state.db
    if state.read_only:
        holder = conn.execute(LOCK_HOLDER, (LOCK_KEY, LOCK_KEY)).fetchone()
        if holder is not None:
            state.report.warnings.append(f"a guard is running on this database now (pid {holder[0]}, {holder[1]})")
        yield
        return
    acquire(state)
    try:
        yield
    finally:
        if not (conn.broken or conn.closed):
            release_lock(conn)
