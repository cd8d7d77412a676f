"""Step 2: connect and record the server's facts; a standby is refused."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from guard.db import connect, describe_url, refuse_transaction_pooler, server_facts
from guard.errors import Blocked
from guard.migrations.session import CLIENT_CHECK
from guard.report.model import DatabaseInfo
from guard.run.state import RunState

READ_ONLY = "SET default_transaction_read_only = on"
# PostgreSQL 14+: the server checks every few seconds, during a long statement, that guard's
# client is still there, and ends the session (and its lock) when it is not. Without it a
# killed runner's statement runs on, holding guard's lock, until it ends by itself. The
# session reset between files (migrations/session.py) sets it again after RESET ALL.


@contextmanager
def session(state: RunState) -> Iterator[None]:
    """Open ``state.conn`` (read-only for guard check) and close it, and any replacement, on
    the way out. Errors: ConnectError, UsageError (a transaction-mode pooler)."""
    refuse_transaction_pooler(state.url)
    state.conn = connect(state.url, application_name=f"guard {state.report.command} {state.report.run_id}",
                         setup=CLIENT_CHECK)
    try:
        if state.read_only:
            state.conn.execute(READ_ONLY)
        yield
    finally:
        state.conn.close()
        if state.reconnected is not None and state.reconnected is not state.conn:
            state.reconnected.close()


def record_server(state: RunState) -> None:
    """Server version, role and superuser into the report; a standby blocks (exit 3), or, read
    only, is noted as what would block."""
    facts = state.facts = server_facts(state.db)
    target = describe_url(state.url)
    state.report.database = DatabaseInfo(
        target=target, server_version=facts.version, role=facts.role, superuser=facts.superuser
    )
    if facts.read_only and not state.read_only:
        raise Blocked(
            f"{target}: default_transaction_read_only is on for guard's session (a database or role setting, or a "
            "platform's read-only mode, e.g. Supabase's for a full disk): guard can neither journal the run nor "
            "apply migrations; nothing was changed",
            hint="leave read-only mode (Supabase: supabase.com/docs/guides/platform/database-size, read-only mode) "
                 "or ALTER DATABASE / ALTER ROLE ... RESET default_transaction_read_only, then run again")
    if not facts.in_recovery:
        return
    if state.read_only:
        state.blocked.append(f"{target} is a standby: guard run must target the primary")
        return
    raise Blocked(f"{target} is a standby (in recovery): migrations must run on the primary")
