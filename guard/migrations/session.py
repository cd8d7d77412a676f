"""A clean session for every file, and guard's own identity for guard's own writes.

psql runs each file in a session of its own; guard runs them all on one connection (it holds
its advisory lock there), so it gives each file the state a new session would have. The
statements are those of PostgreSQL's ``DISCARD ALL`` (src/backend/commands/discard.c,
DiscardAll: SET SESSION AUTHORIZATION DEFAULT, RESET ALL, DEALLOCATE ALL, CLOSE ALL,
UNLISTEN *, DISCARD PLANS/TEMP/SEQUENCES) except ``pg_advisory_unlock_all()``: guard's lock
must stay. ``RESET ROLE`` is explicit: ``role`` is a GUC_NO_RESET_ALL setting, which is why
the Supabase CLI's ``RESET ALL`` between files (pkg/migration/apply.go, ApplyMigrations)
lets a file's ``SET ROLE`` reach the next one. Every statement here may run in a transaction
block (DISCARD ALL itself may not), so the reset can travel with a file's COMMIT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

# guard's own session setting, which RESET ALL would take away with the file's: PostgreSQL 14+
# checks every few seconds, during a long statement, that guard's client is still there and
# ends a dead client's session and its lock (runtime-config-connection.html,
# client_connection_check_interval). The WHERE keeps older servers, which lack it, from
# evaluating set_config at all.
CLIENT_CHECK_SECONDS = 5
CLIENT_CHECK = (
    f"SELECT pg_catalog.set_config('client_connection_check_interval', '{CLIENT_CHECK_SECONDS}s', false) "
    "WHERE pg_catalog.current_setting('server_version_num')::int OPERATOR(pg_catalog.>=) 140000"
)
RESET_STATEMENTS = (
    "SET SESSION AUTHORIZATION DEFAULT", "RESET ROLE", "RESET ALL", CLIENT_CHECK, "CLOSE ALL",
    "DEALLOCATE ALL", "UNLISTEN *", "DISCARD PLANS", "DISCARD TEMP", "DISCARD SEQUENCES",
)
# As one message. Never in the same message as a BEGIN after it: a transaction takes its
# characteristics (default_transaction_read_only, _isolation, _deferrable) when it starts,
# and BEGIN would only extend the implicit transaction the reset started, under the old
# defaults. It goes after a file's COMMIT instead, where it starts a transaction of its own.
RESET_SESSION = "; ".join(RESET_STATEMENTS)
# Inside a file's transaction, just before guard's history row and journal entry: the
# connecting role, and a search_path where nothing a migration created can stand in for
# guard's (fully qualified) tables or the built-in operators and functions.
GUARD_SEARCH_PATH = "SET LOCAL search_path = pg_catalog, pg_temp"
AS_GUARD = ("SET SESSION AUTHORIZATION DEFAULT", "RESET ROLE", GUARD_SEARCH_PATH)
# Right after RESET_STATEMENTS (a streamed file, pipeline.py) the identity is already the
# connecting role's: the search_path alone remains.
AFTER_RESET_AS_GUARD = (GUARD_SEARCH_PATH,)
# Fires every deferred constraint and constraint trigger of the transaction now, as COMMIT
# would (sql-set-constraints.html). Before guard's checks that its records landed: a deferred
# trigger firing at COMMIT, after the check, could still delete them.
FIRE_DEFERRED = "SET CONSTRAINTS ALL IMMEDIATE"
# Right before that check, at the end of a transaction: a holdable cursor's query would run at
# COMMIT, after the check, so it is closed unrun (as RESET_STATEMENTS closes it in a stream),
# then the deferred events fire.
BEFORE_LANDED_CHECK = ("CLOSE ALL", FIRE_DEFERRED)


def reset_session(conn: psycopg.Connection[Any]) -> None:
    """Give ``conn`` (autocommit, no transaction open) the state it began with, guard's
    advisory lock kept. Best effort on a broken connection: a new one starts clean anyway."""
    import psycopg

    if conn.broken or conn.closed:
        return
    try:
        conn.execute(RESET_SESSION)
    except psycopg.Error:
        pass  # a connection that cannot run this cannot run anything else either
