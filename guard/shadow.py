"""The shadow dry run: apply migrations to a throw-away database, never to the target.

Every check gets a fresh database: ``embedded`` starts a private PostgreSQL (the same machinery
as `guard demo`); a URL names a server (e.g. a CI `services: postgres` container) on which
guard creates its own database ``guard_shadow_<random>`` and drops it afterwards. The database
starts from a *base*: for a Supabase project the platform's roles, schemas and functions
(guard/shadow_base/supabase*.sql), a team's own SQL file, or nothing. The migrations then run
as a role that is not a superuser (as `postgres` on Supabase), so an untrusted pull request
cannot reach the server's programs, files or environment (COPY ... PROGRAM, pg_read_file,
untrusted languages all need a superuser), and within a time bound.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.db import connect, describe_url, same_database
from guard.errors import Blocked, ConfigError, UsageError
from guard.shadow_roles import CREATED_BY, ROLE_EXISTS, ROLES_LOCK

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.migrations.apply import ApplyOutcome
    from guard.migrations.files import MigrationFile

Progress = Callable[[str], None]

SUPABASE_BASE_VERSION = 1
# The bootstrap superuser of an embedded shadow: Supabase's name for it, so `postgres` can be
# what it is on Supabase, a role without superuser.
ADMIN = "supabase_admin"
# Who runs the migrations on an embedded shadow (created without superuser by the base).
DRY_RUN_ROLE = "postgres"
# The schemas the Supabase base creates; a copy of a target's schema leaves them out.
SUPABASE_SCHEMAS = ("auth", "storage", "realtime", "extensions", "graphql", "graphql_public",
                    "vault", "supabase_functions")
DRY_RUN_TIMEOUT = 1800.0  # seconds for the whole dry run; then its session is terminated

IS_SUPERUSER = "SELECT rolsuper FROM pg_roles WHERE rolname = current_user"
SERVER_VERSION = "SELECT current_setting('server_version_num')::int"
USER_OBJECTS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
"""
TERMINATE = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s AND usename = %s"


class Shadow(Struct):
    """A fresh throw-away database and how to reach it."""

    url: str  # as the dry-run role (not a superuser)
    admin_url: str  # as the server's superuser, same database (base, schema copy)
    server_url: str  # as the superuser, the server's maintenance database (roles)
    role: str
    base: str  # what the database started from: "supabase 1", "none", a file name
    dbname: str
    major: int = 0  # the server's major version
    # Roles guard created on the server for this check (a `--shadow URL` server's are dropped after)
    created_roles: list[str] = field(default_factory=list)
    limits: list[str] = field(default_factory=list)  # what the dry run could not check


# --------------------------------------------------------------------------- the base


def choose_base(config: Config, *, database_url: str | None) -> str | Path | None:
    """``shadow.base`` resolved: "supabase", a SQL file's Path, or None (plain PostgreSQL).

    ``auto`` (the default) means supabase when the project is a Supabase project: a
    supabase/config.toml next to the migrations or in the project, or a Supabase host in
    the database URL. ConfigError for an unknown value or a missing file.
    """
    setting = config.shadow.base.strip()
    if setting == "auto":
        folders = (config.migrations.dir.parent, config.base_dir / "supabase")
        if any((folder / "config.toml").is_file() for folder in folders):
            return "supabase"
        host = (database_url or "").lower()
        return "supabase" if ("supabase.co" in host or "supabase.com" in host) else None
    if setting == "supabase":
        return "supabase"
    if setting == "none":
        return None
    if setting.endswith(".sql"):
        path = Path(setting)
        path = path if path.is_absolute() else config.base_dir / path
        if not path.is_file():
            raise ConfigError(f"shadow.base: {setting} does not exist", key="shadow.base")
        return path
    raise ConfigError(f"shadow.base: expected auto, supabase, none or a .sql file, got {setting!r}",
                      key="shadow.base")


def _base_sql(name: str) -> str:
    from importlib import resources

    return resources.files("guard.shadow_base").joinpath(name).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- a fresh database


@contextmanager
def open_shadow(spec: str, *, target_url: str | None, base: str | Path | None,
                progress: Progress) -> Iterator[Shadow]:
    """A fresh database for the dry run (``spec``: "embedded" or a server URL), removed after.

    UsageError for a spec that is neither, that names the target, or a server that refuses
    what guard needs (a superuser to create the database and roles).
    """
    if spec == "embedded":
        from guard.embedded import Cluster

        progress("starting an embedded shadow PostgreSQL")
        cluster = Cluster(password=secrets.token_urlsafe(18), superuser=ADMIN)
        cluster.start()
        try:
            with _fresh_database(cluster.url("postgres"), base, progress, embedded=True) as shadow:
                yield shadow
        finally:
            cluster.stop()
        return
    if "://" not in spec and "=" not in spec:
        raise UsageError(f"--shadow: expected 'embedded' or a database URL, got {spec!r}")
    if target_url and same_database(spec, target_url):
        raise UsageError(
            f"--shadow {describe_url(spec)} is the target database itself",
            hint="the shadow must be a scratch database",
        )
    with _fresh_database(spec, base, progress, embedded=False) as shadow:
        yield shadow


def _conninfo(url: str, **changes: str) -> str:
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, **changes)


@contextmanager
def _fresh_database(server_url: str, base: str | Path | None, progress: Progress, *,
                    embedded: bool) -> Iterator[Shadow]:
    from psycopg import sql

    token = secrets.token_hex(6)
    dbname = f"guard_shadow_{token}"
    role = DRY_RUN_ROLE if embedded else dbname
    password = secrets.token_urlsafe(18)
    created: list[str] = []  # roles this check creates on the server, dropped with its database
    admin = connect(server_url, application_name="guard check (shadow setup)",
                    source="the embedded shadow" if embedded else "--shadow")
    try:
        row = admin.execute(IS_SUPERUSER).fetchone()
        if not (row and row[0]):
            raise UsageError(
                f"--shadow {describe_url(server_url)}: guard needs a superuser there to create its "
                "throw-away database and a role without superuser for the dry run",
                hint="use the server's superuser (a CI postgres service's POSTGRES_USER) or --shadow embedded",
            )
        version_row = admin.execute(SERVER_VERSION).fetchone()
        major = int(version_row[0]) // 10000 if version_row else 0
        try:  # a role created and a database that could not be: the role is dropped too
            _create_roles(admin, role, password, base=base, major=major, embedded=embedded, created=created)
            admin.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(role)))
            # Other roles of a shared server (another check's dry run) may not even connect.
            admin.execute(sql.SQL("REVOKE CONNECT, TEMPORARY ON DATABASE {} FROM PUBLIC").format(
                sql.Identifier(dbname)))
            shadow = Shadow(
                url=_conninfo(server_url, dbname=dbname, user=role, password=password),
                admin_url=_conninfo(server_url, dbname=dbname),
                server_url=server_url, role=role, dbname=dbname,
                base=_base_name(base), created_roles=created,
            )
            shadow.major = major
            _load_base(shadow, base, progress)
            yield shadow
        finally:
            _drop(admin, dbname, None if embedded else created, creator=role)
    finally:
        admin.close()


def _base_name(base: str | Path | None) -> str:
    if base is None:
        return "none"
    if isinstance(base, Path):
        return base.name
    return f"{base} {SUPABASE_BASE_VERSION}"


def _create_roles(admin: psycopg.Connection[Any], role: str, password: str, *,
                  base: str | Path | None, major: int, embedded: bool, created: list[str]) -> None:
    """The base's roles (when missing) and the dry-run role (added to ``created`` when this
    created it), under a server-wide lock."""
    from psycopg import sql

    admin.execute("SELECT pg_advisory_lock(%s)", (ROLES_LOCK,))
    try:
        if base == "supabase":
            admin.execute(_base_sql("supabase_roles.sql").encode())
        exists = admin.execute(ROLE_EXISTS, (role,)).fetchone() is not None
        attributes = "LOGIN NOSUPERUSER INHERIT NOREPLICATION NOBYPASSRLS"
        attributes += " CREATEROLE" if major >= 16 else " NOCREATEROLE"
        if not exists:
            admin.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(role)))
            created.append(role)
        elif not embedded:
            raise Blocked(f"the role {role} already exists on the shadow server")
        # Only ever our own role: the embedded server's `postgres`, or this check's new role.
        admin.execute(sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
        if base == "supabase" and role != DRY_RUN_ROLE:
            # What `postgres` is granted on Supabase, for a check's own role on a shared server.
            admin.execute(sql.SQL(
                "GRANT anon, authenticated, service_role, supabase_auth_admin, supabase_storage_admin TO {}"
            ).format(sql.Identifier(role)))
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s)", (ROLES_LOCK,))


def _load_base(shadow: Shadow, base: str | Path | None, progress: Progress) -> None:
    from psycopg import sql

    if base is None:
        return
    if isinstance(base, Path):
        script, where = base.read_text(encoding="utf-8"), str(base)
    else:
        script, where = _base_sql("supabase.sql"), f"the {base} base"
    progress(f"loading {where} into the shadow")
    conn = connect(shadow.admin_url, application_name="guard check (shadow base)")
    try:
        conn.execute(script.encode())
        if base == "supabase" and shadow.role != DRY_RUN_ROLE:
            conn.execute(sql.SQL("ALTER PUBLICATION supabase_realtime OWNER TO {}").format(
                sql.Identifier(shadow.role)))
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA extensions, public TO {}").format(
                sql.Identifier(shadow.role)))
            for kind in ("TABLES", "FUNCTIONS", "SEQUENCES"):  # as the base gives `postgres`'s
                conn.execute(sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT ALL ON "
                                     + kind + " TO anon, authenticated, service_role").format(
                    sql.Identifier(shadow.role)))
    except Exception as exc:  # noqa: BLE001 - the base is the culprit, named in one line
        raise UsageError(f"loading {where} into the shadow failed: {_reason(exc)}",
                         hint="fix shadow.base, or set shadow.base: none") from None
    finally:
        conn.close()


def _drop(admin: psycopg.Connection[Any], dbname: str, roles: list[str] | None, *, creator: str) -> None:
    """Drop the throw-away database, then ``roles`` (on a shared server: the roles this check
    created, its own dry-run role ``creator`` among them, and those ``creator`` created itself;
    ``creator`` last); never raises."""
    import logging

    from psycopg import sql

    log = logging.getLogger(__name__)
    try:
        if roles:
            own = [r[0] for r in admin.execute(CREATED_BY, (creator,)).fetchall()] if creator in roles else []
            roles = [*own, *(r for r in roles if r != creator), *([creator] if creator in roles else [])]
        if (admin.info.server_version or 0) >= 130000:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(dbname)))
        else:  # WITH (FORCE) is PostgreSQL 13+
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (dbname,))
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(dbname)))
    except Exception as exc:  # noqa: BLE001 - cleanup: say so, never hide the check's verdict
        log.warning("could not drop the shadow database %s: %s", dbname, _last(str(exc)))
        return
    for name in dict.fromkeys(roles or ()):
        try:  # a role another check on the same server still uses stays: said, not fatal
            admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)))
        except Exception as exc:  # noqa: BLE001
            log.warning("could not drop the role %s the shadow created: %s", name, _last(str(exc)))


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _reason(exc: Exception) -> str:
    """The server's one-line reason (psycopg's text ends with a caret line, not the reason)."""
    import psycopg

    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    return _last(str(exc))


# --------------------------------------------------------------------------- the dry run


def prepare_files(shadow: Shadow, files: Sequence[MigrationFile], *,
                  display: Callable[[MigrationFile], str]) -> list[MigrationFile]:
    """``files`` as the dry run applies them (guard.shadow_extensions.prepare: extensions the
    shadow lacks left out, role statements run by guard...), each statement at its offset in
    the file; what that leaves unchecked is added to ``shadow.limits``."""
    from guard.shadow_extensions import prepare
    from guard.shadow_roles import RoleStatements

    admin = connect(shadow.admin_url, application_name="guard check (shadow extensions)")
    try:
        roles = RoleStatements(admin, dry_run_role=shadow.role, dbname=shadow.dbname, server_url=shadow.server_url,
                               contained=shadow.role == DRY_RUN_ROLE, created=shadow.created_roles,
                               roles_by_admin=shadow.server_url if shadow.major < 16 else None)
        prepared, limits = prepare(admin, files, display=display, roles=roles)
    finally:
        admin.close()
    shadow.limits.extend(limits)
    return prepared


def dry_run(
    shadow: Shadow,
    files: Sequence[MigrationFile],
    *,
    lock_timeout: float,
    statement_timeout: float,
    display: Callable[[MigrationFile], str],
    progress: Progress,
    timeout: float = DRY_RUN_TIMEOUT,
    outside_transaction: set[str] | None = None,
    prepared: bool = False,
) -> ApplyOutcome:
    """Apply ``files`` in order to the shadow as its dry-run role, one transaction each; stop at
    the first failure. Extensions the shadow lacks and the statements using them are left out
    and listed in ``shadow.limits`` (prepare_files; ``prepared``: ``files`` already are). After
    ``timeout`` seconds the session is terminated. ``outside_transaction``: versions run
    statement by statement (CREATE INDEX CONCURRENTLY...), as guard run runs them."""
    from guard.migrations import history
    from guard.migrations.apply import apply_pending

    ready = list(files) if prepared else prepare_files(shadow, files, display=display)
    try:
        conn = connect(shadow.url, application_name="guard check (dry run)")
    except Exception as exc:  # noqa: BLE001 - pg_hba.conf may not let our role in
        raise UsageError(f"cannot log in to the shadow as its dry-run role {shadow.role}: {exc}",
                      hint="the shadow server's pg_hba.conf must accept password logins from here") from None
    timer = threading.Timer(timeout, _terminate, (shadow, progress, timeout))
    timer.daemon = True
    timer.start()
    try:
        history.ensure_history(conn)
        return apply_pending(
            conn, ready, transaction="per-file", lock_timeout=lock_timeout,
            statement_timeout=statement_timeout, display=display, progress=progress,
            outside_transaction=outside_transaction,
        )
    finally:
        timer.cancel()
        conn.close()


def _terminate(shadow: Shadow, progress: Progress, timeout: float) -> None:
    progress(f"the dry run took longer than {timeout:.0f}s: stopping it")
    shadow.limits.append(f"the dry run was stopped after {timeout:.0f}s")
    try:
        conn = connect(shadow.admin_url, application_name="guard check (time bound)")
        try:
            conn.execute(TERMINATE, (shadow.dbname, shadow.role))
        finally:
            conn.close()
    except Exception:  # noqa: BLE001, S110 - best effort: the check's own timeouts remain
        pass
