"""Roles on a shadow server: cluster-wide, so every check creates them one at a time, and
the role statements Supabase's `postgres` may run but the shadow's dry-run role may not.

Roles are shared by all databases of a server; two checks sharing one `--shadow URL` server
take ROLES_LOCK (an advisory lock, held by the session) around any role they create, and
create a role only when it is missing. The roles a check creates are listed so that it drops
them afterwards (guard.shadow._drop): a shared server keeps none of a pull request's roles.

On Supabase `postgres` has CREATEROLE (and supautils lets it manage the platform's API roles):
``ALTER ROLE authenticated SET statement_timeout = '8s'`` and ``GRANT authenticated TO
reporting`` apply there. The shadow's dry-run role has no CREATEROLE before PostgreSQL 16 (with
it, it could grant itself pg_execute_server_program) and no ADMIN OPTION on the platform's roles,
so RoleStatements runs these as the server's superuser instead, confined to the shadow: a role
setting for the shadow database only (``IN DATABASE``), a membership, ALTER ROLE options (never
LOGIN or PASSWORD) or a comment only on an embedded server or for a role this check created.
It runs them before the dry run, so what must happen in order is not run: a DROP ROLE leaves
the role in place, a RENAME creates the new name beside the old (limits in the report). What
it cannot confine, or what Supabase keeps from `postgres` (its own roles, superuser options),
it leaves to the dry run, which then fails as PostgreSQL says.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

ROLES_LOCK = 0x6775617264_5348  # "guard" "SH"
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %s"
ROLE_IS_SUPERUSER = "SELECT rolsuper FROM pg_roles WHERE rolname = %s"
SETTING_CONTEXT = "SELECT context FROM pg_settings WHERE name = %s"
# A role whose members reach the server itself: a superuser, or a member of the predefined roles
# that run programs or read and write the server's files.
REACHES_SERVER = """
SELECT EXISTS (SELECT 1 FROM pg_roles r WHERE (r.rolsuper OR r.rolname IN
       ('pg_execute_server_program', 'pg_read_server_files', 'pg_write_server_files'))
       AND pg_has_role(%s, r.oid, 'MEMBER'))
"""
IS_MEMBER = """
SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid JOIN pg_roles g ON g.oid = m.member
 WHERE r.rolname = %s AND g.rolname = %s
"""
# Roles the dry-run role created itself (PostgreSQL 16+ gives a CREATEROLE creator ADMIN OPTION
# on each role it creates; guard never grants it ADMIN OPTION on any other).
CREATED_BY = """
SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.roleid
 WHERE m.member = (SELECT oid FROM pg_roles WHERE rolname = %s) AND m.admin_option AND NOT r.rolsuper
"""
ROLE_STATEMENTS = frozenset({"AlterRoleSetStmt", "GrantRoleStmt", "AlterRoleStmt", "DropRoleStmt",
                             "RenameStmt", "CommentStmt"})
# The platform's own roles, which supautils keeps from `postgres` on Supabase (reserved_roles):
# guard changes or drops none of them for a migration. The API roles' settings are the users'.
RESERVED = re.compile(r"^(supabase_\w+|dashboard_user|pgsodium_\w+|authenticator|anon|authenticated|service_role|"
                      r"pgbouncer)$")
SETTINGS_OF = frozenset({"anon", "authenticated", "service_role", "authenticator"})
# Role options only a superuser may give (PostgreSQL's CreateRole/AlterRole): left to the dry run.
SUPERUSER_OPTIONS = frozenset({"superuser", "isreplication", "bypassrls"})
# Options guard leaves out when it runs ALTER ROLE: no role of a PR's logs in to the shadow server.
LOGIN_OPTIONS = frozenset({"canlogin", "password"})
POSTGRES = "postgres"  # who runs migrations on Supabase
_NAMES_POSTGRES = re.compile(r"\bpostgres\b", re.IGNORECASE)


def ensure_nologin_roles(server_url: str, names: Iterable[str]) -> list[str]:
    """Create each of ``names`` NOLOGIN when missing, under ROLES_LOCK; ``server_url`` is the
    shadow server's superuser (never the target). The names it created, in order.
    ConnectError when it cannot be reached."""
    from psycopg import sql

    from guard.db import connect

    created: list[str] = []
    conn = connect(server_url, application_name="guard check (shadow roles)")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (ROLES_LOCK,))
        for name in names:
            if conn.execute(ROLE_EXISTS, (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
                created.append(name)
    finally:
        conn.close()  # releases the lock
    return created


class RoleStatements:
    """Runs statements about roles (ROLE_STATEMENTS) for the dry run, as the superuser session
    ``admin`` on the shadow database (autocommit), when the dry-run role could not."""

    def __init__(self, admin: psycopg.Connection[Any], *, dry_run_role: str, dbname: str, server_url: str,
                 contained: bool, created: list[str], roles_by_admin: str | None = None) -> None:
        self.admin, self.dry_run_role, self.dbname = admin, dry_run_role, dbname
        self.server_url = server_url  # the server's superuser: roles are created there, under ROLES_LOCK
        self.contained = contained  # an embedded server: thrown away whole afterwards
        self.created = created  # roles this check created on the server (dropped afterwards)
        # A superuser URL of the server, PostgreSQL before 16 (the dry-run role has no CREATEROLE:
        # with it, it could grant itself pg_execute_server_program): the roles CREATE ROLE
        # statements name are created there, NOLOGIN, instead.
        self.roles_by_admin = roles_by_admin

    def rewrite(self, kind: str, text: str) -> tuple[list[str], str | None]:
        """What the dry run runs for one statement of parse node ``kind``: (the limit lines it
        implies, the text to run, or None to leave the statement out)."""
        if kind == "CreateRoleStmt" and self.roles_by_admin is not None:
            role = self._create_role(text)
            return [f"not checked: CREATE ROLE {role} (created by guard without its options: the "
                    "dry-run role may not create roles before PostgreSQL 16)"], None
        if kind in ROLE_STATEMENTS:
            done = self.run(text)
            if done is not None:  # failed: a statement raising its error stands in its place
                return [done[0]], done[1]
        if self.dry_run_role != POSTGRES and _NAMES_POSTGRES.search(text):
            # On a shared server the dry run's `postgres` is this check's own role.
            renamed = _renamed(text, POSTGRES, self.dry_run_role)
            if renamed is not None:
                return [], renamed
        return [], text

    def _create_role(self, text: str) -> str:
        """Create the role a CREATE ROLE statement names, NOLOGIN, when missing (then listed in
        ``created``); its name."""
        import pglast

        node: Any = pglast.parse_sql(text)[0].stmt
        name = str(node.role)
        assert self.roles_by_admin is not None
        self.created.extend(ensure_nologin_roles(self.roles_by_admin, [name]))
        return name

    def run(self, text: str) -> tuple[str, str | None] | None:
        """Run the statement ``text`` in the shadow's place: (the limit line saying so, None),
        or (that line, a statement raising the server's error at the statement's place, SQLSTATE
        and message kept) when it failed; None when it is left to the dry run (a role it may
        alter itself, a superuser, a parameter only a superuser may set, an effect guard cannot
        confine)."""
        import pglast
        import psycopg

        node: Any = pglast.parse_sql(text)[0].stmt
        kind = type(node).__name__
        handlers = {"AlterRoleSetStmt": self._alter_role_set, "GrantRoleStmt": self._grant_role,
                    "AlterRoleStmt": self._alter_role, "DropRoleStmt": self._drop_role,
                    "RenameStmt": self._rename_role, "CommentStmt": self._comment_on_role}
        if kind not in handlers:
            return None
        try:
            done = handlers[kind](node)
        except psycopg.Error as exc:
            return "run by guard as the server's superuser, and failed", _raise(exc)
        return None if done is None else (done, None)

    def _ordinary(self, name: str) -> bool:
        row = self.admin.execute(ROLE_IS_SUPERUSER, (name,)).fetchone()
        return row is not None and not row[0] and not name.startswith("pg_") and name != self.dry_run_role

    def _mine(self, name: str) -> bool:
        """A role guard may change for the migration: an ordinary one, not the platform's, and
        on a shared server only one this check created."""
        return (self._ordinary(name) and not RESERVED.match(name)
                and (self.contained or name in self.created))

    def _alter_role(self, node: Any) -> str | None:
        from pglast.enums import RoleSpecType
        from pglast.stream import RawStream

        spec = node.role
        options = list(node.options or ())
        if (spec is None or spec.roletype != RoleSpecType.ROLESPEC_CSTRING or not self._mine(spec.rolename)
                or any(o.defname in SUPERUSER_OPTIONS for o in options)):
            return None
        node.options = tuple(o for o in options if o.defname not in LOGIN_OPTIONS) or None
        if node.options:
            self.admin.execute(RawStream()(node))
        return f"ALTER ROLE {spec.rolename} run by guard as the server's superuser (LOGIN and PASSWORD left out)"

    def _drop_role(self, node: Any) -> str | None:
        # Not run: the statements before it in the dry run, which run later, may still name the
        # role. It stays for the rest of the dry run, and guard drops a check's roles afterwards.
        names = [spec.rolename for spec in node.roles or ()]
        there = [n for n in names if n and self.admin.execute(ROLE_EXISTS, (n,)).fetchone() is not None]
        if None in names or not all(self._mine(n) for n in there) or (len(there) < len(names) and not node.missing_ok):
            return None
        return f"not checked: DROP ROLE {', '.join(names)} (the role stays on the shadow until the check ends)"

    def _rename_role(self, node: Any) -> str | None:
        # Both names exist for the rest of the dry run: statements before it, run later, may use
        # the old one.
        from pglast.enums import ObjectType

        if node.renameType != ObjectType.OBJECT_ROLE or not self._mine(node.subname):
            return None
        self.created.extend(ensure_nologin_roles(self.server_url, [node.newname]))
        return (f"not checked: ALTER ROLE {node.subname} RENAME TO {node.newname} (both names exist on the "
                "shadow, the new one created by guard without options)")

    def _comment_on_role(self, node: Any) -> str | None:
        from pglast.enums import ObjectType
        from pglast.stream import RawStream

        if node.objtype != ObjectType.OBJECT_ROLE or not self._mine(node.object.sval):
            return None
        self.admin.execute(RawStream()(node))
        return f"COMMENT ON ROLE {node.object.sval} run by guard as the server's superuser"

    def _alter_role_set(self, node: Any) -> str | None:
        from pglast.enums import RoleSpecType, VariableSetKind
        from pglast.stream import RawStream

        spec = node.role
        if (spec is None or spec.roletype != RoleSpecType.ROLESPEC_CSTRING or not self._ordinary(spec.rolename)
                or (RESERVED.match(spec.rolename) and spec.rolename not in SETTINGS_OF)):
            return None
        setting = node.setstmt
        if setting.kind == VariableSetKind.VAR_SET_VALUE:
            row = self.admin.execute(SETTING_CONTEXT, (setting.name,)).fetchone()
            if row is not None and row[0] != "user":  # superuser-only: refused on Supabase too
                return None
        node.database = self.dbname  # the shadow database only, never the server's roles
        self.admin.execute(RawStream()(node))
        return f"ALTER ROLE {spec.rolename} run by guard as the server's superuser, for the shadow database only"

    def _grant_role(self, node: Any) -> str | None:
        from pglast.enums import RoleSpecType

        granted = [p.priv_name for p in node.granted_roles or ()]
        grantees = [g.rolename for g in node.grantee_roles or () if g.roletype == RoleSpecType.ROLESPEC_CSTRING]
        if any(self.admin.execute(ROLE_EXISTS, (g,)).fetchone() is None for g in grantees):
            return None  # created later in the dry run (PostgreSQL 16+): its creator may grant it
        if (not node.is_grant or len(grantees) != len(node.grantee_roles or ())
                or not all(name and self._ordinary(name) for name in granted)
                or any(self.admin.execute(REACHES_SERVER, (name,)).fetchone() != (False,) for name in granted)):
            return None
        if not self.contained and not all(g in self.created for g in grantees):
            return None  # a membership of a role the shared server keeps: not guard's to grant
        from pglast.stream import RawStream

        self.admin.execute(RawStream()(node))
        return f"GRANT {', '.join(granted)} run by guard as the server's superuser"


def _raise(exc: Exception) -> str:
    """A statement raising ``exc``'s message with its SQLSTATE (XX000 when it has none)."""
    import psycopg
    from psycopg import sql

    diag = exc.diag if isinstance(exc, psycopg.Error) else None
    message = (diag.message_primary if diag else None) or str(exc).strip().splitlines()[0]
    state = (diag.sqlstate if diag else None) or "XX000"
    body = sql.SQL("BEGIN RAISE EXCEPTION USING MESSAGE = {}, ERRCODE = {}; END").format(
        sql.Literal(message), sql.Literal(state)).as_string(None)
    return "DO " + sql.Literal(body).as_string(None)


def _renamed(text: str, old: str, new: str) -> str | None:
    """``text`` with the role ``old`` (a RoleSpec: OWNER TO, GRANT ... TO, FOR ROLE, AUTHORIZATION,
    a policy's TO) named ``new``; None when it names no such role or cannot be printed again."""
    import pglast
    from pglast import ast
    from pglast.stream import RawStream
    from pglast.visitors import Visitor

    found: list[bool] = []

    class Rename(Visitor):
        def visit_RoleSpec(self, _ancestors: Any, node: Any) -> Any:
            if node.rolename == old:
                found.append(True)
                return ast.RoleSpec(roletype=node.roletype, rolename=new, location=node.location)
            return None

    try:
        root = pglast.parse_sql(text)
        Rename()(root)
        if not found:
            return None
        printed: str = RawStream()(root)
    except Exception:  # noqa: BLE001 - a statement pglast cannot print: run as written
        return None
    return printed
