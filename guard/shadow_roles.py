"""Roles on a shadow server: cluster-wide, so every check creates them one at a time.

Roles are shared by all databases of a server; two checks sharing one `--shadow URL` server
take ROLES_LOCK (an advisory lock, held by the session) around any role they create, and
create a role only when it is missing.
"""

from __future__ import annotations

from collections.abc import Iterable

ROLES_LOCK = 0x6775617264_5348  # "guard" "SH"
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %s"


def ensure_nologin_roles(server_url: str, names: Iterable[str]) -> None:
    """Create each of ``names`` NOLOGIN when missing, under ROLES_LOCK; ``server_url`` is the
    shadow server's superuser (never the target). ConnectError when it cannot be reached."""
    from psycopg import sql

    from guard.db import connect

    conn = connect(server_url, application_name="guard check (shadow roles)")
    try:
        conn.execute("SELECT pg_advisory_lock(%s)", (ROLES_LOCK,))
        for name in names:
            if conn.execute(ROLE_EXISTS, (name,)).fetchone() is None:
                conn.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name)))
    finally:
        conn.close()  # releases the lock
