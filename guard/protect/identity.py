"""Protective copies under a file's own role (``SET ROLE``, ``SET SESSION AUTHORIZATION``).

A file may switch to a role of its own before a destructive statement: psql applies the
statement as that role (its privileges, its row level security policies), so guard does too.
The copy, though, is guard's: guard makes it as itself and returns to the file's role for
the statement, inside the statement's transaction. Every switch is ``SET LOCAL``: PostgreSQL
keeps a transaction-local value on top of the session's and pops it at COMMIT or ROLLBACK
(src/backend/utils/misc/guc.c, AtEOXact_GUC), so after the transaction the file's own
setting, session-wide or LOCAL, is exactly what it was.

A DELETE or UPDATE rewritten to fill its copy runs as the file's role, so that role may
write into that one copy while the statement runs: guard grants USAGE on the copy schema and
INSERT on the copy to it, and takes both back (as guard) right after the statement, in the
same transaction, before anything else of the file runs. Grants are catalog rows: revoked
before COMMIT, none is ever visible to another transaction or left behind. The copy's row
level security is turned on after the statement too (the role is not its owner), so the
role can neither read the copy then nor afterwards.

Under row level security a DELETE or UPDATE reaches only the rows the role's policies let it
see, and its RETURNING returns exactly those (ExecDelete returns the deleted tuple): the copy
holds exactly what the statement destroyed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field
from psycopg import sql

if TYPE_CHECKING:
    from collections.abc import Sequence

    import psycopg

# Qualified: a file may have put a schema of its own before pg_catalog in the search_path.
WHO = "SELECT pg_catalog.session_user()::text, pg_catalog.current_setting('role'), pg_catalog.current_user()::text"
AS_GUARD = "SET LOCAL SESSION AUTHORIZATION DEFAULT; SET LOCAL ROLE NONE"
SESSION_USER = "SET LOCAL SESSION AUTHORIZATION {user}"
ROLE = "SET LOCAL ROLE {role}"
SCHEMA_USAGE = "SELECT pg_catalog.has_schema_privilege(%s, %s, 'USAGE')"
GRANT_USAGE = "GRANT USAGE ON SCHEMA {schema} TO {role}"
REVOKE_USAGE = "REVOKE USAGE ON SCHEMA {schema} FROM {role}"
GRANT_INSERT = "GRANT INSERT ON TABLE {copy} TO {role}"
REVOKE_INSERT = "REVOKE INSERT ON TABLE {copy} FROM {role}"
ENABLE_RLS = "ALTER TABLE {copy} ENABLE ROW LEVEL SECURITY"
# Row level security applies to a role on a table unless the role is a superuser, has
# BYPASSRLS, or owns it (with privileges of the owner) without FORCE (ddl-rowsecurity.html).
# Row level security applies to a role on a table unless the role is a superuser, has
# BYPASSRLS, or owns it (with privileges of the owner) without FORCE (ddl-rowsecurity.html).
READS_EXACTLY = """
SELECT pg_catalog.has_table_privilege(r.oid, c.oid, 'SELECT')
       AND NOT (c.relrowsecurity AND NOT r.rolsuper AND NOT r.rolbypassrls
                AND (c.relforcerowsecurity OR NOT pg_catalog.pg_has_role(r.oid, c.relowner, 'USAGE'))
                AND EXISTS (SELECT FROM pg_catalog.pg_policy p WHERE p.polrelid = c.oid AND p.polcmd IN ('r', 'w', 'd')))
       AND NOT EXISTS (SELECT FROM pg_catalog.pg_class k
                        WHERE k.oid = ANY(%(family)s::oid[]) AND k.relrowsecurity AND NOT r.rolsuper AND NOT r.rolbypassrls
                          AND (k.relforcerowsecurity OR NOT pg_catalog.pg_has_role(r.oid, k.relowner, 'USAGE')))
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.rolname = %(role)s
 WHERE c.oid = %(oid)s
"""
ROW_SECURITY_OFF = ("SELECT pg_catalog.current_setting('row_security'), "
                    "pg_catalog.set_config('row_security', 'off', true)")
ROW_SECURITY_BACK = "SELECT pg_catalog.set_config('row_security', %s, true)"
COUNT_ROWS = "UPDATE guard.copies SET rows = (SELECT count(*) FROM {copy}) WHERE copy = {name}"


class Identity(Struct):
    """Who the file is at one statement, and what guard must undo after it."""

    session_user: str
    role: str  # the ``role`` setting: "none" when the file set none
    current_user: str
    switched: bool = False  # guard made the copies as itself
    after: list[str] = field(default_factory=list)  # guard's statements right after the file's

    def back(self) -> str:
        """The statements that give the transaction the file's identity again."""
        parts = [sql.SQL(SESSION_USER).format(user=sql.Identifier(self.session_user)).as_string(None)]
        if self.role != "none":
            parts.append(sql.SQL(ROLE).format(role=sql.Identifier(self.role)).as_string(None))
        return "; ".join(parts)


def take_over(conn: psycopg.Connection[Any], guard_role: str | None) -> Identity:
    """Become guard (the role guard connected as) for the copies of one statement, in the
    transaction open on ``conn``; ``guard_role`` None: unknown, so always switch."""
    row = conn.execute(WHO).fetchone()
    assert row is not None
    identity = Identity(session_user=row[0], role=row[1], current_user=row[2])
    if row[1] == "none" and guard_role is not None and row[0] == guard_role:
        return identity
    conn.execute(AS_GUARD)
    guard = conn.execute("SELECT pg_catalog.current_user()::text").fetchone()
    identity.switched = guard is None or guard[0] != row[2] or row[0] != guard[0]
    if not identity.switched:
        conn.execute(identity.back())
    return identity


def let_write(conn: psycopg.Connection[Any], identity: Identity, schema: str, copy: sql.Composable,
              copy_name: str) -> None:
    """Let the file's role fill ``copy`` (schema ``schema``, registered as ``copy_name``)
    during its own statement; ``identity.after`` takes it back and counts the rows."""
    role = sql.Identifier(identity.current_user)
    schema_id = sql.Identifier(schema)
    after = [AS_GUARD]
    usage = conn.execute(SCHEMA_USAGE, (identity.current_user, schema)).fetchone()
    if not (usage and usage[0]):
        conn.execute(sql.SQL(GRANT_USAGE).format(schema=schema_id, role=role))
        after.append(sql.SQL(REVOKE_USAGE).format(schema=schema_id, role=role).as_string(conn))
    conn.execute(sql.SQL(GRANT_INSERT).format(copy=copy, role=role))
    after += [sql.SQL(REVOKE_INSERT).format(copy=copy, role=role).as_string(conn),
              sql.SQL(ENABLE_RLS).format(copy=copy).as_string(conn),
              sql.SQL(COUNT_ROWS).format(copy=copy, name=sql.Literal(copy_name)).as_string(conn)]
    identity.after = [*identity.after, *after]


def can_read(conn: psycopg.Connection[Any], identity: Identity, oid: int, *, family: Sequence[int] = ()) -> bool:
    """Whether the file's role reads table ``oid`` exactly as its DELETE or UPDATE does, so
    the rows its RETURNING gives are exactly the rows it destroyed: it may read every column
    (RETURNING needs SELECT), and row level security, when it applies to the role, has only
    policies FOR ALL (RETURNING adds the SELECT policies to the DELETE or UPDATE ones:
    ddl-rowsecurity.html, "Policies Applied by Command Type"). The tables of ``family``
    (inheritance children, read on their own) must have no row level security for the role:
    through the parent only the parent's policies apply."""
    if not identity.switched:
        return True
    row = conn.execute(READS_EXACTLY, {"role": identity.current_user, "oid": oid, "family": list(family)}).fetchone()
    return bool(row and row[0])


@contextmanager
def every_row(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A copy of a whole table or column inside: it must hold every row, so with
    ``row_security = off`` a table whose row level security would hide rows from guard's
    role makes the copy fail ("query would be affected by row-level security policy")
    instead of holding only the rows the policies show (runtime-config-client.html)."""
    row = conn.execute(ROW_SECURITY_OFF).fetchone()
    yield
    conn.execute(ROW_SECURITY_BACK, (row[0] if row else "on",))


def finish(identity: Identity, conn: psycopg.Connection[Any], replacement: str | None) -> str | None:
    """The statement to run: the file's identity again, then ``replacement``, then what
    ``let_write`` must take back (None when nothing changes the file's statement)."""
    if not identity.switched:
        return replacement
    conn.execute(identity.back())
    if replacement is None or not identity.after:
        return replacement
    # Guard's statements after the file's: then the file's identity once more.
    return "; ".join([replacement, *dict.fromkeys(identity.after), identity.back()])
