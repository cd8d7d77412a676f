"""An unexpected exception inside the guarded run (a bug, a file name that is not UTF-8...):
the run still ends with the truth about the database and its journal entry closed.

Before the first migration statement nothing was changed: exit 3, the journal entry (if
step 9 opened it) closed as ``blocked``, so the next run is not held up by it. After it,
what committed is what the journal's per-file rows say (each written in its file's own
transaction): none and no file run outside a transaction is exit 1; some is exit 4 with the
restore plan; a connection that is gone, or a wrapped tool that may have run, is exit 4
"outcome unknown" and the entry stays open for an operator to acknowledge.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from guard import journal
from guard.errors import GuardError
from guard.restore import RestoreContext, build_plan
from guard.run.state import RunState


class InternalError(Exception):
    """Raised from an unexpected exception once the run's outcome has been settled; the
    original is its ``__cause__``."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(one_line(original))
        self.original = original


def one_line(exc: BaseException) -> str:
    """``internal error: <Class>: <first line of the message>``, printable in any encoding."""
    lines = str(exc).strip().splitlines()
    text = f"internal error: {exc.__class__.__name__}" + (f": {lines[0][:300]}" if lines else "")
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@contextmanager
def settled(state: RunState, restore: RestoreContext) -> Iterator[None]:
    """Around the run's steps (inside the session and the lock): an exception other than a
    GuardError or an interrupt settles the outcome and the journal, then raises InternalError."""
    try:
        yield
    except GuardError:
        raise
    except Exception as exc:
        settle(state, restore, one_line(exc))
        raise InternalError(exc) from exc


def settle(state: RunState, restore: RestoreContext, message: str) -> None:
    """The report's outcome after an unexpected error; closes the journal entry when it can."""
    report = state.report
    if not changes_may_have_started(state):
        report.set_outcome("blocked", f"{message} (nothing was changed)", changed=False)
        _close_journal(state)
        return
    conn = state.reconnected if state.reconnected is not None else state.conn
    committed: list[str] | None = None
    if conn is not None and not (conn.broken or conn.closed) and not state.options.command:
        committed = _committed(state)
    if committed is None:
        report.set_outcome("outcome_unknown", f"{message}: outcome unknown", changed=None)
    elif committed:
        report.set_outcome("failed_partially_applied",
                           f"{message} after {len(committed)} file(s) committed", changed=True)
    elif _outside_transaction(state):
        report.set_outcome("outcome_unknown", f"{message} while a file ran outside a transaction",
                           changed=None)
    else:
        report.set_outcome("failed_rolled_back", f"{message}; nothing was committed", changed=False)
    if committed is not None:
        if not report.migrations and state.outcome is not None:
            report.migrations = state.outcome.results
        for result in report.migrations:
            if result.version in committed:
                result.status = "applied"
        _close_journal(state)
    report.restore_plan = build_plan(report, restore)


def changes_may_have_started(state: RunState) -> bool:
    """Step 11 began (the built-in runner), or the journal entry of a wrapped tool's run."""
    return state.outcome is not None or (bool(state.options.command) and state.journal_started)


def _committed(state: RunState) -> list[str] | None:
    """The versions this run committed, from the journal, on a session with no open
    transaction; None when they cannot be read."""
    import psycopg

    conn = state.reconnected if state.reconnected is not None else state.db
    try:
        conn.rollback()
        run = journal.find(conn, state.report.run_id)
    except psycopg.Error:
        return None
    return list(run.committed) if run is not None else None


def _outside_transaction(state: RunState) -> bool:
    from guard.run.lint_gate import outside_transaction

    try:
        return bool(outside_transaction(state.findings, state.pending, state.display))
    except Exception:  # noqa: BLE001 - the display itself may be what failed: assume the worst
        return True


def _close_journal(state: RunState) -> None:
    from guard.run.outcome import finish_journal, journal_connection

    conn = journal_connection(state) if state.journal_started else None
    if conn is None:
        return
    try:
        conn.rollback()
    except Exception:  # noqa: BLE001 - finish_journal reports its own failure as a warning
        pass
    finish_journal(conn, state.report, state.mask)
    state.journal_started = False  # closed: journal_closed must not close it again
