"""Step 3: one guard at a time per database (a session advisory lock)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from guard.db import LOCK_HOLDER, LOCK_KEY, acquire_lock, release_lock
from guard.run.state import RunState


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
    assert state.facts is not None
    acquire_lock(conn, state.facts.database)
    try:
        yield
    finally:
        if not (conn.broken or conn.closed):
            release_lock(conn)
