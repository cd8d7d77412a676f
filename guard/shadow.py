"""The shadow dry run: apply migrations to a throw-away database, never to the target.

``embedded`` starts a private PostgreSQL (the same machinery as `guard demo`); a URL uses a
scratch database the caller provides (e.g. a CI `services: postgres` container). With
``from_target`` the shadow first receives a schema-only copy of the target (pg_dump
--schema-only, the roles it references), and only the pending files are tried on it.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from guard.db import connect, describe_url, same_database, url_password
from guard.errors import Blocked, UsageError

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.apply import ApplyOutcome
    from guard.migrations.files import MigrationFile

Progress = Callable[[str], None]

# Supabase's API roles: migrations grant to them, so a plain shadow needs them to exist.
SUPABASE_ROLES = ("anon", "authenticated", "service_role")
TARGET_ROLES = "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user"
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %s"
CREATE_ROLE = "CREATE ROLE {name} NOLOGIN"
SERVER_MAJOR = "SELECT current_setting('server_version_num')::int / 10000"


@contextmanager
def shadow_database(spec: str, *, target_url: str | None, progress: Progress) -> Iterator[str]:
    """A URL of an empty scratch database for the dry run; cleaned up afterwards."""
    if spec == "embedded":
        from guard.embedded import Cluster

        progress("starting an embedded shadow PostgreSQL")
        cluster = Cluster(password=None)
        cluster.start()
        try:
            yield cluster.url("postgres")
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
    yield spec


def copy_schema(target_url: str, shadow_url: str, progress: Progress) -> None:
    """Roles the target knows, then `pg_dump --schema-only` of the target into the shadow."""
    import os

    source = connect(target_url, application_name="guard check (schema copy)")
    try:
        source.execute("SET default_transaction_read_only = on")
        row = source.execute(SERVER_MAJOR).fetchone()
        major = int(row[0]) if row else 0
        roles = [r[0] for r in source.execute(TARGET_ROLES).fetchall()]
    finally:
        source.close()
    shadow = connect(shadow_url, application_name="guard check (shadow)")
    try:
        for role in roles:
            _ensure_role(shadow, role)
    finally:
        shadow.close()
    from guard.snapshot import find_client

    pg_dump = find_client("pg_dump", major)
    progress(f"copying the target's schema with {pg_dump} --schema-only")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    password = url_password(target_url)
    if password:
        env["PGPASSWORD"] = password
    dump = subprocess.run(
        [str(pg_dump), "--schema-only", "--no-owner", "--no-privileges", "--dbname", _no_password(target_url)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    if dump.returncode != 0:
        raise Blocked(f"pg_dump --schema-only of {describe_url(target_url)} failed: {_last(dump.stderr)}")
    shadow = connect(shadow_url, application_name="guard check (shadow)")
    try:
        # A plain dump is a script: run it as one simple-protocol batch, as psql -f would.
        shadow.execute(_strip_psql_meta(dump.stdout).encode())
    except Exception as exc:  # noqa: BLE001 - reported as one line, the shadow is thrown away
        raise Blocked(f"loading the target's schema into the shadow failed: {_last(str(exc))}") from None
    finally:
        shadow.close()


def _ensure_role(conn: psycopg.Connection[Any], name: str) -> None:
    from psycopg import sql

    if conn.execute(ROLE_EXISTS, (name,)).fetchone() is None:
        conn.execute(sql.SQL(CREATE_ROLE).format(name=sql.Identifier(name)))


def _strip_psql_meta(script: str) -> str:
    """pg_dump 17+ writes psql meta-commands (\\restrict) that the server does not know."""
    return "\n".join(line for line in script.splitlines() if not line.startswith("\\"))


def _no_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    if "://" not in url:
        return url
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}@{host}", parts.path, parts.query, parts.fragment))


def _last(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def dry_run(
    shadow_url: str,
    files: Sequence[MigrationFile],
    *,
    lock_timeout: float,
    statement_timeout: float,
    display: Callable[[MigrationFile], str],
    progress: Progress,
) -> ApplyOutcome:
    """Apply ``files`` in order to the shadow, one transaction each; stop at the first failure."""
    from guard.migrations import history
    from guard.migrations.apply import apply_pending

    conn = connect(shadow_url, application_name="guard check (dry run)")
    try:
        for role in SUPABASE_ROLES:
            _ensure_role(conn, role)
        history.ensure_history(conn)
        return apply_pending(
            conn, files, transaction="per-file", lock_timeout=lock_timeout,
            statement_timeout=statement_timeout, display=display, progress=progress,
        )
    finally:
        conn.close()
