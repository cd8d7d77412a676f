"""guard's own schema (``guard``): its version, its upgrades, and who may not read it.

``guard.schema_version`` holds one row per version installed; the highest is the schema's
version. :func:`ensure_schema` creates or upgrades the schema in place, one step per version,
in one transaction, and refuses when the database holds a newer schema than this guard knows.
Version 1 is the schema this release started with (``guard.runs``, ``guard.run_commits``,
``guard.copies``, ``guard.drills``, no version table); version 2 adds the version table and
closes every object in the schema, sequences included, to PUBLIC and to Supabase's API roles.

Privileges: Supabase's ``ALTER DEFAULT PRIVILEGES ... GRANT ALL ... TO anon, authenticated``
(and any global default privileges) give those roles every object a role creates; guard takes
them back on every object of its schema (PostgreSQL docs, "ALTER DEFAULT PRIVILEGES", "GRANT").
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from guard.errors import Blocked

if TYPE_CHECKING:
    import psycopg

SCHEMA = "guard"
CURRENT_VERSION = 2
# Supabase exposes schemas through its API as these roles (where they exist).
API_ROLES = ("anon", "authenticated")
EXISTING_ROLES = "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname"
STATE = """
SELECT to_regclass('guard.schema_version') IS NOT NULL, to_regclass('guard.runs') IS NOT NULL
"""
READ_VERSION = "SELECT max(version) FROM guard.schema_version"
VERSIONED = "SELECT to_regclass('guard.schema_version') IS NOT NULL"
# Two guards installing or upgrading any of guard's own objects at once (its schema, the
# backup log, the migration history, undo's tables): the second waits, then finds the work
# done. Without it, two sessions' CREATE ... IF NOT EXISTS, CREATE INDEX and REVOKE on the
# same objects deadlock or fail on the catalogs' unique indexes (`guard init` takes no run lock).
UPGRADE_LOCK = "SELECT pg_advisory_xact_lock(%s)"
UPGRADE_LOCK_KEY = 0x2E1D_5C0B_7A44_61F4  # guard.db.LOCK_KEY + 1
TRY_INSTALL_LOCK = "SELECT pg_try_advisory_lock(%s)"
INSTALL_LOCK = "SELECT pg_advisory_lock(%s)"
INSTALL_UNLOCK = "SELECT pg_advisory_unlock(%s)"
# How long an install waits for another's: the session's lock_timeout when set (PGOPTIONS
# '-c lock_timeout=...'), else this; then Blocked naming the holder, never a hang.
INSTALL_WAIT = "60s"
LOCK_TIMEOUT = "SELECT pg_catalog.current_setting('lock_timeout')"
SET_LOCK_TIMEOUT = "SELECT pg_catalog.set_config('lock_timeout', %s, false)"
RECORD_VERSION = """
INSERT INTO guard.schema_version (version, guard_version) VALUES (%s, %s)
ON CONFLICT (version) DO NOTHING
"""

STEPS: dict[int, tuple[str, ...]] = {
    1: (
        "CREATE SCHEMA IF NOT EXISTS guard",
        """CREATE TABLE IF NOT EXISTS guard.runs (
            run_id          text PRIMARY KEY,
            command         text NOT NULL,
            started_at      timestamptz NOT NULL DEFAULT clock_timestamp(),
            finished_at     timestamptz,
            status          text NOT NULL,
            exit_code       integer,
            pending         text[] NOT NULL DEFAULT '{}',
            committed       text[] NOT NULL DEFAULT '{}',
            restore_target  jsonb,
            actor           text,
            reason          text,
            report          jsonb,
            acknowledged_at timestamptz,
            acknowledged_by text,
            acknowledgement text
        )""",
        """CREATE TABLE IF NOT EXISTS guard.run_commits (
            run_id       text NOT NULL,
            version      text NOT NULL,
            committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
            seq          bigint GENERATED ALWAYS AS IDENTITY,
            PRIMARY KEY (run_id, version)
        )""",
    ),
    2: (
        """CREATE TABLE IF NOT EXISTS guard.schema_version (
            version       integer PRIMARY KEY,
            installed_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
            guard_version text NOT NULL
        )""",
    ),
}
# {grantees} is PUBLIC plus the API roles that exist; {schema} an identifier.
CLOSE_SCHEMA = (
    "REVOKE ALL ON SCHEMA {schema} FROM {grantees}",
    "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {grantees}",
    "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {grantees}",
    "REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM {grantees}",
)


# Roles that default privileges (ALTER DEFAULT PRIVILEGES, global or IN SCHEMA) hand objects
# created in ``schema``: every object guard creates there gets their grants
# (src/backend/catalog/aclchk.c, get_user_default_acl). Not the creating role itself.
DEFAULT_GRANTEES = """
SELECT DISTINCT r.rolname FROM pg_catalog.pg_default_acl d
 CROSS JOIN LATERAL pg_catalog.aclexplode(d.defaclacl) a JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
 WHERE (d.defaclnamespace = 0 OR d.defaclnamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = %s))
   AND r.rolname <> pg_catalog.current_user() AND a.grantee <> d.defaclrole
   AND r.oid IS DISTINCT FROM (SELECT nspowner FROM pg_catalog.pg_namespace WHERE nspname = %s)
 ORDER BY 1
"""


def grantees(conn: psycopg.Connection[Any], schema: str | None = None) -> Any:
    """``PUBLIC, anon, authenticated`` (the API roles that exist), and with ``schema`` every
    role default privileges give objects created in it (but guard's own role and the
    schema's owner), as SQL for a REVOKE."""
    from psycopg import sql

    roles = [r[0] for r in conn.execute(EXISTING_ROLES, (list(API_ROLES),)).fetchall()]
    if schema is not None:
        roles += [r[0] for r in conn.execute(DEFAULT_GRANTEES, (schema, schema)).fetchall() if r[0] not in roles]
    return sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(r) for r in roles)])


def close_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Revoke everything on ``schema`` and on every table, view, sequence and function in it
    from PUBLIC, Supabase's API roles and every role default privileges gave them to."""
    from psycopg import sql

    who = grantees(conn, schema)
    for statement in CLOSE_SCHEMA:
        conn.execute(sql.SQL(statement).format(schema=sql.Identifier(schema), grantees=who))


@contextmanager
def installing(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction that holds guard's install lock (:data:`UPGRADE_LOCK_KEY`) from its first
    statement to its end: every install of guard's own objects runs in one, so concurrent
    `guard init`s and first runs take turns, the later finding the work done, instead of
    deadlocking or failing on a catalog's unique index.

    On an idle autocommit connection the lock is a session lock taken before BEGIN and let go
    after COMMIT: PostgreSQL reads the catalog changes others committed when a transaction
    starts (and when it locks a relation), not when an advisory lock is granted, so a lock
    waited for inside the transaction would leave it deciding on what it saw before the wait
    (src/backend/utils/cache/inval.c, AcceptInvalidationMessages). Inside the caller's
    transaction it is a transaction lock (a savepoint here), held to the caller's end."""
    from guard.db import idle_autocommit

    if not idle_autocommit(conn):
        with conn.transaction():
            conn.execute(UPGRADE_LOCK, (UPGRADE_LOCK_KEY,))
            yield
        return
    _take_install_lock(conn)
    try:
        with conn.transaction():
            yield
    finally:
        if not (conn.closed or conn.broken):
            conn.execute(INSTALL_UNLOCK, (UPGRADE_LOCK_KEY,))


def _take_install_lock(conn: psycopg.Connection[Any]) -> None:
    """The install lock as a session lock, waiting at most INSTALL_WAIT (or the session's
    lock_timeout); Blocked naming the session that holds it when the wait runs out."""
    import psycopg

    from guard.db import LOCK_HOLDER, LockHolder

    taken = conn.execute(TRY_INSTALL_LOCK, (UPGRADE_LOCK_KEY,)).fetchone()
    if taken and taken[0]:
        return
    row = conn.execute(LOCK_TIMEOUT).fetchone()
    before = str(row[0]) if row else "0"
    wait = before if before not in ("0", "") else INSTALL_WAIT
    conn.execute(SET_LOCK_TIMEOUT, (wait,))
    try:
        conn.execute(INSTALL_LOCK, (UPGRADE_LOCK_KEY,))
    except psycopg.errors.LockNotAvailable:
        held = conn.execute(LOCK_HOLDER, (UPGRADE_LOCK_KEY, UPGRADE_LOCK_KEY)).fetchone()
        who = LockHolder(*held[:5]).describe() if held else "another session"
        raise Blocked(
            f"guard's own tables are being installed by {who}, still after {wait}; nothing was changed",
            hint="wait for it to finish (or end that session), then run guard again",
        ) from None
    finally:
        conn.execute(SET_LOCK_TIMEOUT, (before,))


def version(conn: psycopg.Connection[Any]) -> int:
    """The version of guard's schema in this database: 0 none, 1 before versioning, else
    the highest row of guard.schema_version. One query where guard.schema_version exists,
    on an autocommit session (a missing table's error there rolls back nothing)."""
    from guard.db import if_present

    versioned, found = if_present(conn, lambda: conn.execute(READ_VERSION).fetchone(),
                                  lambda: bool(conn.execute(VERSIONED).fetchone() == (True,)))
    if versioned:
        return int(found[0]) if found and found[0] is not None else 1
    row = conn.execute(STATE).fetchone()  # no versioned schema: an unversioned one, or none
    return 1 if row is not None and row[1] else 0


def ensure_schema(conn: psycopg.Connection[Any], found: int | None = None, *, complete: bool = True) -> int:
    """Create or upgrade guard's schema to :data:`CURRENT_VERSION`; returns the version found
    (``found``, when the caller has just read it as :func:`version` does, else read here).

    One query when the schema is current (none given ``found``). ``complete`` False (a journal
    table missing, guard.journal.complete): every step again (each is IF NOT EXISTS), where a
    current version alone would have left guard.runs or guard.run_commits dropped. Raises Blocked when the database holds a newer
    schema than this guard knows (an older guard must not write to it), or when the role may
    not upgrade it (``guard init`` as the owner does); psycopg errors otherwise."""
    import psycopg

    from guard import __version__

    found = version(conn) if found is None else found
    if found > CURRENT_VERSION:
        raise Blocked(
            f"guard's own schema in this database is version {found}, newer than this guard knows "
            f"({CURRENT_VERSION}): a newer migration-guard wrote it; nothing was changed",
            hint="upgrade migration-guard (pip install -U migration-guard) before running it here",
        )
    if found == CURRENT_VERSION and complete:
        return found
    try:
        with installing(conn):
            steps = range(version(conn) + 1 if complete else 1, CURRENT_VERSION + 1)
            for step in steps:
                for statement in STEPS[step]:
                    conn.execute(statement)
            for step in steps:  # the version table exists from version 2 on
                conn.execute(RECORD_VERSION, (step, __version__))
            close_schema(conn, SCHEMA)
    except psycopg.errors.InsufficientPrivilege:
        raise Blocked(
            f"guard's own schema needs an upgrade from version {found} to {CURRENT_VERSION} and this "
            "role may not make it; nothing was changed",
            hint="run `guard init` once as the database owner",
        ) from None
    return found


def schema_line(found: int) -> str:
    """What :func:`ensure_schema` did, for ``guard init``'s output."""
    if found == CURRENT_VERSION:
        return f"guard's schema at version {CURRENT_VERSION}"
    if found == 0:
        return f"guard's schema created at version {CURRENT_VERSION}"
    return f"guard's schema upgraded from version {found} to {CURRENT_VERSION}"
