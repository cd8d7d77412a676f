"""Helpers the command families share."""

from __future__ import annotations

from typing import Any

from guard.config import Config, require_database_url


def open_connection(config: Config, purpose: str) -> Any:
    """A connection to the target named ``guard PURPOSE`` in pg_stat_activity (ConnectError)."""
    from guard.db import connect

    return connect(require_database_url(config), application_name=f"guard {purpose}")


def privileged(action: Any, what: str) -> Any:
    """``action()``; a PostgreSQL error becomes Blocked (exit 3) saying what the role may not do."""
    import psycopg

    from guard.errors import Blocked

    try:
        return action()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise Blocked(f"the role may not {what}: {exc.diag.message_primary}") from None
    except psycopg.Error as exc:
        raise Blocked(f"cannot {what}: {exc.diag.message_primary or exc}") from None


def plural(n: int, noun: str) -> str:
    """``1 table``, ``2 tables``."""
    return f"{n} {noun}" + ("" if n == 1 else "s")
