"""`--shadow-from-target`: make the shadow look like the target before the pending files run.

Read from the target, in a read-only session: its roles, its extensions, its database- and
role-level settings (pg_db_role_setting: Supabase's search_path with `extensions` lives there),
and `pg_dump --schema-only` (publications included). Written to the shadow: roles and settings
(scoped to the shadow database: ``ALTER ROLE ... IN DATABASE``, so a shared server's roles keep
theirs) and extensions as the server's superuser; the dump as the dry-run role, so the objects
are its own, as the target's are `postgres`'s. What the shadow cannot take (an extension it
lacks, event triggers) is a limit of the dry run, listed in the report.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.db import connect, describe_url, url_password
from guard.errors import Blocked
from guard.shadow import _last, _reason

if TYPE_CHECKING:
    import psycopg

    from guard.shadow import Shadow

Progress = Callable[[str], None]

SERVER_MAJOR = "SELECT current_setting('server_version_num')::int / 10000"
TARGET_ROLES = "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user"
TARGET_EXTENSIONS = """
SELECT e.extname, n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
 WHERE e.extname <> 'plpgsql' ORDER BY e.extname
"""
# Database-wide settings (rolname NULL) and role settings, global or for this database;
# the more specific ones last, so they win when written to one scope in the shadow.
TARGET_SETTINGS = """
SELECT r.rolname, s.setconfig, r.rolname = current_user
  FROM pg_db_role_setting s LEFT JOIN pg_roles r ON r.oid = s.setrole
 WHERE s.setdatabase IN (0, (SELECT oid FROM pg_database WHERE datname = current_database()))
   AND (s.setrole = 0 OR r.rolname IS NOT NULL)
 ORDER BY s.setrole <> 0, s.setdatabase <> 0
"""
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %s"
SCHEMAS = "SELECT nspname FROM pg_namespace"
PUBLICATIONS = "SELECT pubname FROM pg_publication"
# Settings that load code into the server: never copied into a shadow.
UNSAFE_SETTINGS = frozenset({"session_preload_libraries", "local_preload_libraries", "shared_preload_libraries",
                             "dynamic_library_path"})
LIST_SETTINGS = frozenset({"search_path", "temp_tablespaces"})
# Custom settings whose names say they hold a secret (Supabase's app.settings.jwt_secret and
# app.settings.service_role_key, PostgREST's pgrst.jwt_secret...): the pull request's SQL can
# read any setting (current_setting) and print it in an error, so they reach the shadow with
# a placeholder value only; current_setting() still finds them.
_SECRET_SETTING = re.compile(r"\.\S*(secret|key|token|passw|pwd|credential|jwt|private|salt|api)", re.I)
SECRET_PLACEHOLDER = "redacted-by-migration-guard"
_IDENTIFIER_LIST = re.compile(r'^\s*("([^"]|"")*"|[A-Za-z_$][\w$]*)(\s*,\s*("([^"]|"")*"|[A-Za-z_$][\w$]*))*\s*$')
# pg_dump's plain format opens every object with "-- Name: x; Type: T; Schema: s; Owner: o".
_ENTRY = re.compile(r"^--\n-- (?:Data for )?Name: (?P<name>.*?); Type: (?P<type>[^;]+);", re.MULTILINE)


class TargetFacts(Struct):
    """What the shadow needs from the target."""

    major: int
    roles: list[str]
    extensions: list[tuple[str, str]]  # (name, schema)
    settings: list[tuple[str | None, list[str], bool]]  # (role or None, ["k=v"...], is the target's user)
    limits: list[str] = field(default_factory=list)


def copy_schema(target_url: str, shadow: Shadow, *, exclude_schemas: tuple[str, ...], progress: Progress) -> None:
    """Roles, extensions, settings and the schema of the target, into the shadow.

    Blocked when pg_dump fails or the shadow refuses the dump (one line, no password).
    ``exclude_schemas``: those the shadow's base already has (auth, storage... for Supabase).
    """
    facts = _read_target(target_url)
    _write_roles(shadow, facts)
    admin = connect(shadow.admin_url, application_name="guard check (schema copy)")
    try:
        _write_extensions(admin, facts, shadow)
        _write_settings(admin, facts, shadow)
        existing_schemas = {r[0] for r in admin.execute(SCHEMAS).fetchall()}
        publications = {r[0] for r in admin.execute(PUBLICATIONS).fetchall()}
    finally:
        admin.close()
    progress("copying the target's schema with pg_dump --schema-only")
    script = _dump(target_url, facts.major, exclude_schemas)
    script = _filter_dump(script, existing_schemas, publications, facts, shadow)
    conn = connect(shadow.url, application_name="guard check (schema copy)")
    try:
        # A plain dump is a script: run it as one simple-protocol batch, as psql -f would.
        conn.execute(script.encode())
    except Exception as exc:  # noqa: BLE001 - reported as one line, the shadow is thrown away
        raise Blocked(f"loading the target's schema into the shadow failed: {_reason(exc)}") from None
    finally:
        conn.close()
    shadow.limits.extend(facts.limits)


def _read_target(target_url: str) -> TargetFacts:
    source = connect(target_url, application_name="guard check (schema copy)")
    try:
        source.execute("SET default_transaction_read_only = on")
        row = source.execute(SERVER_MAJOR).fetchone()
        return TargetFacts(
            major=int(row[0]) if row else 0,
            roles=[r[0] for r in source.execute(TARGET_ROLES).fetchall()],
            extensions=[(r[0], r[1]) for r in source.execute(TARGET_EXTENSIONS).fetchall()],
            settings=[(r[0], list(r[1] or ()), bool(r[2])) for r in source.execute(TARGET_SETTINGS).fetchall()],
        )
    finally:
        source.close()


def _write_roles(shadow: Shadow, facts: TargetFacts) -> None:
    """The target's roles, created NOLOGIN when missing (cluster-wide: under the roles lock)."""
    from guard.shadow_roles import ensure_nologin_roles

    shadow.created_roles.extend(ensure_nologin_roles(shadow.server_url, facts.roles))


def _write_extensions(admin: psycopg.Connection[Any], facts: TargetFacts, shadow: Shadow) -> None:
    from psycopg import sql

    from guard.shadow_extensions import ALLOWED_UNTRUSTED, EXTENSIONS

    known = {r[0]: (bool(r[1]), bool(r[2])) for r in admin.execute(EXTENSIONS).fetchall()}
    for name, schema in facts.extensions:
        if name not in known:
            facts.limits.append(f"not checked: needs {name} (the target has it), which this shadow lacks")
            continue
        installed, trusted = known[name]
        if installed:
            continue
        if not trusted and name not in ALLOWED_UNTRUSTED:
            facts.limits.append(f"not checked: needs {name} (the target has it), which the shadow does not "
                                "install (it reaches outside the database)")
            continue
        admin.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {} AUTHORIZATION {}").format(
            sql.Identifier(schema), sql.Identifier(shadow.role)))
        admin.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {}").format(
            sql.Identifier(name), sql.Identifier(schema)))


def _write_settings(admin: psycopg.Connection[Any], facts: TargetFacts, shadow: Shadow) -> None:
    """pg_db_role_setting of the target, for the shadow database only; the target's own role's
    settings go to the dry-run role, which stands in for it."""
    import psycopg
    from psycopg import sql

    for role, config, is_target_user in facts.settings:
        if is_target_user:
            role = shadow.role
        if role is not None and admin.execute(ROLE_EXISTS, (role,)).fetchone() is None:
            continue
        scope = (sql.SQL("ALTER DATABASE {}").format(sql.Identifier(shadow.dbname)) if role is None
                 else sql.SQL("ALTER ROLE {} IN DATABASE {}").format(sql.Identifier(role), sql.Identifier(shadow.dbname)))
        for item in config:
            key, _, value = item.partition("=")
            if key in UNSAFE_SETTINGS:
                facts.limits.append(f"the target's setting {key} is not copied (it loads code into the server)")
                continue
            if _SECRET_SETTING.search(key):
                value = SECRET_PLACEHOLDER
                facts.limits.append(f"the target's setting {key} is copied without its value (it may be a secret)")
            rendered: sql.Composable = sql.Literal(value)
            if key in LIST_SETTINGS and _IDENTIFIER_LIST.match(value):
                rendered = sql.SQL(value)  # a list of identifiers, as pg_db_role_setting keeps it
            try:
                admin.execute(sql.SQL("{} SET {} TO {}").format(scope, sql.Identifier(key), rendered))
            except psycopg.Error as exc:
                facts.limits.append(f"the target's setting {key} could not be copied: {_reason(exc)}")


def _dump(target_url: str, major: int, exclude_schemas: tuple[str, ...]) -> str:
    from guard.snapshot import find_client

    pg_dump = find_client("pg_dump", major)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    password = url_password(target_url)
    if password:
        env["PGPASSWORD"] = password
    argv = [str(pg_dump), "--schema-only", "--no-owner", "--no-privileges", "--dbname", _no_password(target_url)]
    for schema in exclude_schemas:
        argv += ["--exclude-schema", schema]
    dump = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600)
    if dump.returncode != 0:
        raise Blocked(f"pg_dump --schema-only of {describe_url(target_url)} failed: {_last(dump.stderr)}")
    return dump.stdout


def _filter_dump(script: str, schemas: set[str], publications: set[str], facts: TargetFacts,
                 shadow: Shadow) -> str:
    """The dump without what the shadow has or cannot take: extensions (written already),
    schemas and publications that exist, event triggers (they need a superuser)."""
    starts = [m.start() for m in _ENTRY.finditer(script)]
    pieces = [script[: starts[0]] if starts else script]
    event_triggers = 0
    for begin, end in zip(starts, [*starts[1:], len(script)], strict=True):
        block = script[begin:end]
        match = _ENTRY.match(block)
        assert match is not None
        kind, name = match.group("type").strip(), match.group("name").strip()
        if kind == "EXTENSION" or (kind == "COMMENT" and name.startswith("EXTENSION ")):
            continue
        if kind == "SCHEMA" and name.strip('"') in schemas:
            continue
        if kind == "PUBLICATION" and name.strip('"') in publications:
            continue
        if kind in ("EVENT TRIGGER",) or (kind == "COMMENT" and name.startswith("EVENT TRIGGER ")):
            event_triggers += kind == "EVENT TRIGGER"
            continue
        pieces.append(block)
    if event_triggers:
        facts.limits.append(f"the target's {event_triggers} event trigger(s) are not copied (they need a superuser)")
    return _strip_psql_meta("".join(pieces))


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
