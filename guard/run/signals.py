"""Cancel on signal: SIGINT/SIGTERM during apply cancel the running statement, cleanly."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from guard import journal
from guard.db import connect
from guard.errors import EXIT_CHANGED, EXIT_FAILED_ROLLED_BACK, GuardError, Interrupted
from guard.migrations.apply import ApplyOutcome
from guard.run.state import Progress


def journal_interrupted(url: str, run_id: str) -> None:
    """From a side thread and connection: the journal says "interrupted" even if the process
    is gone before the main connection can say more."""
    import psycopg

    try:
        conn = connect(url, application_name=f"guard signal {run_id}", connect_timeout=5)
    except GuardError:
        return
    try:
        conn.execute(journal.MARK_INTERRUPTED, (run_id,))
    except psycopg.Error:
        pass
    finally:
        conn.close()


@contextmanager
def signals_cancel(outcome: ApplyOutcome, progress: Progress, url: str, run_id: str) -> Iterator[None]:
    """SIGINT/SIGTERM: raise Interrupted in the main thread (psycopg cancels the statement on
    the server, the file's transaction rolls back); a second signal exits at once."""
    import signal
    import threading

    marker: list[threading.Thread] = []

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[str] = []

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if seen:
            # Second signal: leave now. The journal row stays "running", so the next run
            # refuses and reports exactly what the history shows committed.
            os._exit(EXIT_CHANGED if outcome.committed else EXIT_FAILED_ROLLED_BACK)
        seen.append(name)
        progress(f"{name} received: cancelling the running statement (again to exit at once)")
        thread = threading.Thread(target=journal_interrupted, args=(url, run_id), daemon=True)
        thread.start()
        marker.append(thread)
        raise Interrupted(name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for thread in marker:
            thread.join(timeout=10)
