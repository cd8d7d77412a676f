"""Connections, server facts, the advisory lock, and URL redaction.

Every SQL statement guard runs against the user's database outside the migrations themselves
is a named constant here or in the module that owns the table it touches.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, TypeVar

from msgspec import Struct

from guard.errors import Blocked, ConnectError, UsageError

if TYPE_CHECKING:
    import psycopg

T = TypeVar("T")

# One lock key for "a guard is working on this database": a fixed positive bigint chosen
# at random, so unrelated advisory locks do not collide with it.
LOCK_KEY = 0x2E1D_5C0B_7A44_61F3

SERVER_FACTS = """
SELECT current_setting('server_version_num')::int AS version_num,
       current_setting('server_version') AS version,
       current_user AS role,
       current_database() AS database,
       pg_is_in_recovery() AS in_recovery,
       clock_timestamp() AS now,
       (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) AS superuser,
       current_setting('default_transaction_read_only') = 'on' AS read_only
"""
CURRENT_LSN = "SELECT pg_current_wal_lsn()::text"
# SERVER_FACTS's eighth column: a standby has no current WAL position of its own.
SERVER_LSN = ", CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END AS lsn"
CLOCK = "SELECT clock_timestamp()"
TRY_LOCK = "SELECT pg_try_advisory_lock(%s)"
UNLOCK = "SELECT pg_advisory_unlock(%s)"
LOCK_HOLDER = """
SELECT a.pid, a.application_name, a.usename, a.client_addr::text, a.backend_start, a.query_start
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.locktype = 'advisory' AND l.granted
   AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
   AND l.classid = (%s::bigint >> 32)::oid AND l.objid = (%s::bigint & 4294967295)::oid
   AND l.objsubid = 1
 LIMIT 1
"""


def fetch_all(conn: psycopg.Connection[Any], queries: Sequence[tuple[Any, Any]]) -> list[list[tuple[Any, ...]]]:
    """The rows of each of ``queries`` ((query, params or None), in order), sent in one
    round trip: psycopg's pipeline mode queues them and sends one Sync (psycopg docs,
    "Pipeline mode support"; PostgreSQL protocol-flow.html, "Pipelining"). Over a network
    each round trip costs its latency; guard's catalog reads were one each.

    Inside a transaction the queries run in it, as one by one. Outside one (autocommit) they
    run in one implicit transaction: for reads only. The first failing query raises its
    psycopg.Error, as it would alone; the ones after it do not run."""
    from psycopg import pq

    # Already in a pipeline (the caller's BEGIN queued with them), the first fetch sends a
    # flush request, not a Sync, and reads what is queued.
    queued = conn.pgconn.pipeline_status != pq.PipelineStatus.OFF
    with nullcontext() if queued else conn.pipeline():
        cursors = [conn.cursor().execute(query, params) for query, params in queries]
    return [cursor.fetchall() for cursor in cursors]


def if_present(conn: psycopg.Connection[Any], read: Callable[[], T], present: Callable[[], bool]) -> tuple[bool, T | None]:
    """(True, ``read()``) where the table it reads exists, else (False, None). On an idle
    autocommit session ``read`` goes first and a missing table (UndefinedTable, 42P01) is
    confirmed by ``present()`` after: one round trip in the usual case, where the table
    exists, and a failed statement there rolls back nothing. In a transaction, where an
    error would abort it, ``present()`` is asked first. An UndefinedTable while ``present()``
    holds (another table the read needs) is raised."""
    import psycopg

    if not idle_autocommit(conn):
        return (True, read()) if present() else (False, None)
    try:
        return True, read()
    except psycopg.errors.UndefinedTable:
        if present():
            raise
        return False, None


def idle_autocommit(conn: psycopg.Connection[Any]) -> bool:
    """``conn`` is in autocommit mode with no transaction open: each statement is its own
    transaction, and one that fails leaves nothing to roll back."""
    from psycopg import pq

    return bool(conn.autocommit) and conn.info.transaction_status == pq.TransactionStatus.IDLE


@contextmanager
def pipelined_transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction whose BEGIN travels with its first queries and whose COMMIT with its
    last, in psycopg's pipeline mode: each wait is for results the code needs. psycopg's own
    conn.transaction() in a pipeline syncs after BEGIN and again at COMMIT (two waits more).

    For an autocommit connection with no transaction open; otherwise conn.transaction().
    On an error in the block or from the server, the transaction is rolled back and the
    error raised, as with conn.transaction()."""
    from psycopg import pq

    if not idle_autocommit(conn):
        with conn.transaction():
            yield
        return
    try:
        with conn.pipeline():
            conn.execute("BEGIN")
            yield
            conn.execute("COMMIT")
    except BaseException:
        if not conn.closed and conn.info.transaction_status in (pq.TransactionStatus.INTRANS,
                                                                pq.TransactionStatus.INERROR):
            conn.execute("ROLLBACK")
        raise


def own_transaction(conn: psycopg.Connection[Any]) -> AbstractContextManager[Any]:
    """The transaction a statement or two need to commit together: none on an idle autocommit
    connection, where each statement is its own (PostgreSQL commits each statement of the
    simple or extended protocol outside a block): BEGIN and COMMIT cost two round trips.
    Otherwise conn.transaction() (a savepoint inside the caller's)."""
    return nullcontext() if idle_autocommit(conn) else conn.transaction()


def committed(conn: psycopg.Connection[Any], query: Any, params: Any = None) -> tuple[Any, ...] | None:
    """Run one statement and commit it (``own_transaction``); its first row (None: no row)."""
    with own_transaction(conn):
        cursor = conn.execute(query, params)
        return cursor.fetchone() if cursor.description is not None else None


def url_password(url: str) -> str | None:
    """The password in a connection string (URL or key=value), as libpq reads it (guard.conninfo)."""
    from guard import conninfo

    return conninfo.password(url)


def redact_url(url: str) -> str:
    """The connection string rebuilt from libpq's reading with its secrets as *** (guard.conninfo)."""
    from guard import conninfo

    return conninfo.redact(url)


def describe_url(url: str) -> str:
    """host:port/dbname for messages, never the password (guard.conninfo)."""
    from guard import conninfo

    return conninfo.describe(url)


# Supabase's poolers hand each transaction to any server connection on this port
# (transaction mode): Supavisor on *.pooler.supabase.com, and the dedicated PgBouncer on the
# project's own host, db.<ref>.supabase.co. Port 5432 on the same hosts is a session.
SUPABASE_POOLER_DOMAINS = (".pooler.supabase.com", ".supabase.co")
SUPABASE_TRANSACTION_PORT = "6543"
TRANSACTION_POOLER_HINT = (
    "use the direct connection (db.<project-ref>.supabase.co:5432) or the session pooler "
    "(port 5432); behind PgBouncer, pool_mode = session"
)
BACKEND_PID = "SELECT pg_backend_pid()"
# Transactions that must all land on one server session for the connection to count as one.
SESSION_PROBES = 3


def refuse_transaction_pooler(url: str) -> None:
    """UsageError for Supabase's transaction-mode poolers: guard's advisory lock and session
    settings would land on whichever server connection the pooler picks next."""
    hosts, port, _dbname = _endpoint(url)  # an unparsable URL fails at connect, with its own message
    if port == SUPABASE_TRANSACTION_PORT and any(h.endswith(SUPABASE_POOLER_DOMAINS) for h in hosts):
        raise UsageError(
            f"database_url points at Supabase's transaction-mode pooler ({describe_url(url)}): guard's "
            "lock and session settings need one session",
            hint=TRANSACTION_POOLER_HINT,
        )


def refuse_if_transaction_pooled(conn: psycopg.Connection[Any], url: str, setup: str | None = None) -> None:
    """UsageError when ``conn`` (autocommit) is not one server session: its backend pid
    changes between transactions, as behind any vendor's transaction-mode pooler
    (PgBouncer pool_mode = transaction, Supavisor, RDS Proxy once pinned sessions end).
    A pooler that happens to hand back the same server connection every time cannot be told
    from a direct one this way; guard's lock and journal then still hold. ``setup`` (a SELECT
    of at most one row and column) rides the last probe as a scalar subquery, a round trip
    fewer, and only once the probes before it agreed: a session setting must not be left on
    a pooled server connection that other clients' transactions go on to use (the probes
    stop at the first pid that differs)."""
    pids: set[int] = set()
    for probe in range(SESSION_PROBES):
        last = probe == SESSION_PROBES - 1
        pids.add(conn.execute(BACKEND_PID + (f", ({setup})" if setup and last else "")).fetchone()[0])  # type: ignore[index]
        if len(pids) > 1:
            break
    if len(pids) > 1:
        raise UsageError(
            f"database_url {describe_url(url)} goes through a transaction-mode pooler (each transaction "
            f"ran in another server session: pids {', '.join(str(p) for p in sorted(pids))}): guard's "
            "lock and session settings need one session",
            hint=TRANSACTION_POOLER_HINT,
        )


def connect(
    url: str, *, application_name: str, autocommit: bool = True, connect_timeout: int = 10,
    single_session: bool = True, setup: str | None = None, source: str = "database_url",
) -> psycopg.Connection[Any]:
    """A connection, or ConnectError naming host/db (never the password), the server's reason
    and ``source``, where ``url`` came from (the setting or flag to check: ``--shadow``...).

    With ``single_session`` (an autocommit connection), UsageError when the connection is not
    one server session (refuse_if_transaction_pooled): a transaction-mode pooler; ``setup``
    (a one-value SELECT, e.g. a set_config) runs with its last probe.

    Statements are never prepared on the server (prepare_threshold=None): a pooler between
    guard and PostgreSQL may not carry them from one transaction to the next. The client
    encoding is UTF8, what guard reads migration files as (psql's, in a UTF-8 locale): the
    server converts to its own encoding and refuses, per statement, a character it cannot
    hold (SQLSTATE 22P05); libpq's default, the server's encoding, would have the client fail
    to encode it (SQL_ASCII: any non-ASCII character) before anything is sent."""
    import psycopg
    from psycopg.types.json import set_json_dumps

    from guard import conninfo
    from guard.report.mask import Masker

    conninfo.parse(url)  # UsageError (exit 2) before connecting, never quoting the string
    try:
        conn = psycopg.connect(
            url,
            autocommit=autocommit,
            application_name=application_name[:63],
            connect_timeout=connect_timeout,
            prepare_threshold=None,
            client_encoding="UTF8",
        )
    except psycopg.OperationalError as exc:
        reason = Masker(conninfo.secrets(url))(_first_line(str(exc)))
        raise ConnectError(
            f"cannot connect to {describe_url(url)}: {reason}",
            hint=f"check {source} and that the server accepts connections from here",
        ) from None
    except psycopg.ProgrammingError:
        raise ConnectError(
            f"invalid connection string for {describe_url(url)} (not shown: it may hold a password)"
        ) from None
    # json/jsonb as the characters they are, not \u escapes: a SQL_ASCII database's jsonb
    # takes no escape of a non-ASCII character (PostgreSQL docs, "JSON Types"), and every
    # other encoding converts either form alike.
    set_json_dumps(_json_text, conn)
    if single_session and autocommit:
        try:
            refuse_if_transaction_pooled(conn, url, setup)
        except BaseException:
            conn.close()
            raise
    elif setup:
        conn.execute(setup)
    return conn


def _json_text(obj: Any) -> str:
    import json

    return json.dumps(obj, ensure_ascii=False)


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    # libpq prefixes with 'connection failed: connection to server at ... failed:'
    return lines[-1] if lines else "unknown error"


class ServerFacts(Struct, frozen=True):
    """What the server said at connect: version, role, database, recovery, superuser, clock, WAL LSN."""

    version_num: int
    version: str
    role: str
    database: str
    in_recovery: bool
    superuser: bool
    now: dt.datetime
    lsn: str | None
    asked_at: float  # elapsed_clock() when the question that read ``now`` was sent
    # default_transaction_read_only in force for this session (a database or role setting, or
    # a platform's read-only mode): every transaction is read only.
    read_only: bool = False

    @property
    def major(self) -> int:
        return self.version_num // 10000

    def server_now(self) -> dt.datetime:
        """The server's clock now (timestamptz), without asking it again: ``now`` plus the
        seconds :func:`elapsed_clock` counted since the question was sent. Never behind
        the server's clock (the server read it after the question left), ahead of it by at
        most that round trip: a backup's age judged by it is never younger than it is."""
        return self.now + dt.timedelta(seconds=elapsed_clock() - self.asked_at)


def elapsed_clock() -> float:
    """Seconds of a clock that only goes forward and counts a suspended machine's sleep too
    (Linux CLOCK_BOOTTIME; time.monotonic elsewhere): for time elapsed, never the time of day."""
    return time.clock_gettime(time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else time.monotonic()


def server_facts(conn: psycopg.Connection[Any]) -> ServerFacts:
    """Version, role, standby or not, server clock and WAL position (None where not permitted)."""
    import psycopg

    if idle_autocommit(conn):
        try:  # the WAL position with the facts: one round trip
            asked = elapsed_clock()
            row = conn.execute(SERVER_FACTS + SERVER_LSN).fetchone()
        except psycopg.Error:  # pg_current_wal_lsn not permitted: the facts alone, as below
            row = None
        if row is not None:
            return _facts(row, row[8], asked)
    asked = elapsed_clock()
    row = conn.execute(SERVER_FACTS).fetchone()
    assert row is not None
    lsn: str | None = None
    if not row[4]:
        try:
            lsn_row = conn.execute(CURRENT_LSN).fetchone()
            lsn = lsn_row[0] if lsn_row else None
        except psycopg.Error:
            lsn = None
    return _facts(row, lsn, asked)


def _facts(row: tuple[Any, ...], lsn: str | None, asked: float) -> ServerFacts:
    return ServerFacts(
        version_num=row[0],
        version=row[1],
        role=row[2],
        database=row[3],
        in_recovery=bool(row[4]),
        superuser=bool(row[6]),
        now=row[5],
        lsn=lsn,
        read_only=bool(row[7]),
        asked_at=asked,
    )


def server_now(conn: psycopg.Connection[Any]) -> dt.datetime:
    row = conn.execute(CLOCK).fetchone()
    assert row is not None
    return row[0]


class LockHolder(Struct, frozen=True):
    """A session (pg_stat_activity) holding a lock another waits for."""

    pid: int
    application_name: str
    user: str | None
    client: str | None
    since: dt.datetime | None

    def describe(self) -> str:
        since = self.since.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ") if self.since else "?"
        app = self.application_name or "unknown application"
        return f"pid {self.pid} ({app}, user {self.user or '?'}, since {since})"


def acquire_lock(conn: psycopg.Connection[Any], database: str) -> None:
    """Take guard's session advisory lock or raise Blocked naming who holds it."""
    row = conn.execute(TRY_LOCK, (LOCK_KEY,)).fetchone()
    if row and row[0]:
        return
    holder_row = conn.execute(LOCK_HOLDER, (LOCK_KEY, LOCK_KEY)).fetchone()
    holder = (
        LockHolder(holder_row[0], holder_row[1], holder_row[2], holder_row[3], holder_row[4])
        if holder_row
        else None
    )
    who = holder.describe() if holder else "another session"
    raise Blocked(
        f"another guard is working on database {database}: lock held by {who}",
        hint="wait for it to finish; nothing was changed",
    )


def release_lock(conn: psycopg.Connection[Any]) -> None:
    import psycopg

    try:
        conn.execute(UNLOCK, (LOCK_KEY,))
    except psycopg.Error:
        pass  # the lock goes with the session anyway


# Host spellings that all mean this machine (a socket directory counts too).
_LOOPBACK = {"localhost", "127.0.0.1", "::1", "[::1]", ""}


def same_database(a: str, b: str) -> bool:
    """Whether two connection strings (URL or key=value) name the same host, port and
    database. Loopback spellings and socket directories count as one host: when in doubt,
    the same (the caller refuses)."""
    host_a, port_a, db_a = _endpoint(a)
    host_b, port_b, db_b = _endpoint(b)
    return port_a == port_b and db_a == db_b and bool(host_a & host_b)


def _endpoint(url: str) -> tuple[set[str], str, str]:
    import os

    from psycopg.conninfo import conninfo_to_dict

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:  # noqa: BLE001 - unparsable: connecting fails later with a clear message
        return {url}, "", url
    hosts = {h.strip().lower() for h in (params.get("host") or os.environ.get("PGHOST", "")).split(",")}
    hosts = {"loopback" if h in _LOOPBACK or h.startswith("/") else h for h in hosts}
    port = params.get("port") or os.environ.get("PGPORT") or "5432"
    dbname = (params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user")
              or os.environ.get("PGUSER") or "")
    return hosts, port.split(",")[0], dbname
