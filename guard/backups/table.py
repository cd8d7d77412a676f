"""The backup log table (``backup_logs``): its SQL, the table provider and the table sink.

The table is the team's own record of backups, automated and manual, with row-level
security on and no access for PUBLIC / Supabase's ``anon`` and ``authenticated`` roles.
``get_backup_stats()`` summarises it (total, automated, manual, last backup, recent entries).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from msgspec import Struct
from psycopg import sql

from guard.backups import (
    BackupEntry,
    BackupInfo,
    ProviderContext,
    ProviderError,
    Registered,
    SinkContext,
    SinkError,
)
from guard.errors import Blocked
from guard.plugins import PluginSpec

if TYPE_CHECKING:
    import psycopg

    from guard.config import BackupLogConfig, Config, PluginConfig

# {schema}, {table}, {index}, {func} are identifiers composed with psycopg.sql.
CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {schema}"
CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS {schema}.{table} (
    id          bigserial PRIMARY KEY,
    kind        text NOT NULL CHECK (kind IN ('automated', 'manual')),
    reason      text,
    created_by  text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    metadata    jsonb NOT NULL DEFAULT '{{}}'::jsonb
)
"""
# One manual entry per guard run: a retried step finds the entry it already wrote.
CREATE_RUN_INDEX = """
CREATE UNIQUE INDEX IF NOT EXISTS {index} ON {schema}.{table} ((metadata ->> 'run_id'))
 WHERE metadata ? 'run_id'
"""
CREATE_TIME_INDEX = "CREATE INDEX IF NOT EXISTS {index} ON {schema}.{table} (kind, created_at DESC)"
ENABLE_RLS = "ALTER TABLE {schema}.{table} ENABLE ROW LEVEL SECURITY"
REVOKE_TABLE = "REVOKE ALL ON TABLE {schema}.{table} FROM {grantees}"
# The id's sequence by what it is (not by its name): anon holding USAGE on it could setval()
# it and make every later insert collide.
ID_SEQUENCE = "SELECT pg_get_serial_sequence(%s, 'id')"
REVOKE_SEQUENCE = "REVOKE ALL ON SEQUENCE {sequence} FROM {grantees}"
CREATE_STATS_FUNCTION = """
CREATE OR REPLACE FUNCTION {schema}.{func}()
RETURNS jsonb
LANGUAGE sql STABLE SECURITY INVOKER
SET search_path = ''
AS $guard$
  SELECT jsonb_build_object(
    'total_backups', count(*),
    'automated_backups', count(*) FILTER (WHERE kind = 'automated'),
    'manual_backups', count(*) FILTER (WHERE kind = 'manual'),
    'last_backup_at', max(created_at) FILTER (WHERE COALESCE(metadata ->> 'status', 'completed') = 'completed'),
    'last_attempt_at', max(created_at),
    'last_automated_at', max(created_at) FILTER (WHERE kind = 'automated'),
    'last_manual_at', max(created_at) FILTER (WHERE kind = 'manual'),
    'recent', COALESCE((
        SELECT jsonb_agg(r ORDER BY r.created_at DESC)
          FROM (SELECT id, kind, reason, created_by, created_at, metadata
                  FROM {schema}.{table} ORDER BY created_at DESC, id DESC LIMIT 20) r
    ), '[]'::jsonb))
  FROM {schema}.{table}
$guard$
"""
REVOKE_FUNCTION = "REVOKE ALL ON FUNCTION {schema}.{func}() FROM {grantees}"
# Supabase exposes the public schema through its API as these roles: they must not read backups.
SUPABASE_API_ROLES = ("anon", "authenticated")
EXISTING_ROLES = "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname"
TABLE_COLUMNS = """
SELECT a.attname FROM pg_attribute a
 WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
"""
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"

# What makes an entry unreadable, or NULL: a created_at Python cannot hold (infinity, a year
# before 1 or after 9999: psycopg raises DataError loading it) or metadata that is not an
# object. Such a row is returned with its damage named instead of its values (NULL), so the
# error can name it; the bounds keep a day's margin for the session's time zone.
DAMAGE = """CASE
  WHEN NOT isfinite(created_at) THEN 'created_at is ' || created_at::text
  WHEN created_at < '0001-01-02 00:00:00+00' OR created_at > '9999-12-30 00:00:00+00'
    THEN 'created_at ' || created_at::text || ' is outside the years 1 to 9999'
  WHEN jsonb_typeof(metadata) <> 'object' THEN 'metadata is a JSON ' || jsonb_typeof(metadata) || ', not an object'
END"""
NEWEST_AUTOMATED = """
SELECT id, CASE WHEN d IS NULL THEN created_at END, CASE WHEN d IS NULL THEN metadata END, d
  FROM (SELECT *, {damage} AS d FROM {schema}.{table}) e
 WHERE kind = 'automated'
 ORDER BY created_at DESC, id DESC
 LIMIT 1
"""
NEWEST_COMPLETED_AUTOMATED = """
SELECT id, CASE WHEN d IS NULL THEN created_at END, CASE WHEN d IS NULL THEN metadata END, d
  FROM (SELECT *, {damage} AS d FROM {schema}.{table}) e
 WHERE kind = 'automated' AND COALESCE(metadata ->> 'status', 'completed') = 'completed'
 ORDER BY created_at DESC, id DESC
 LIMIT 1
"""
_DAMAGE = sql.SQL(DAMAGE)
DELETE_ENTRY = """
DELETE FROM {schema}.{table} WHERE id = %s
RETURNING kind, created_at::text, reason, metadata::text
"""


def damaged(log: BackupLogConfig, entry_id: int, what: str) -> str:
    """The one line saying entry ``entry_id`` of the backup log is damaged (``what``: how, as
    :data:`DAMAGE` says) and the exact command that removes it."""
    return (f"entry {entry_id} of {qualified(log)} is damaged ({what}): guard cannot read it as a backup; "
            f"remove it with `guard backup remove {entry_id}` (or correct it in SQL), then run again")


def remove_entry(conn: psycopg.Connection[Any], log: BackupLogConfig, entry_id: int) -> tuple[Any, ...] | None:
    """Delete entry ``entry_id`` (damaged or not); (kind, created_at, reason, metadata) as
    text, or None when there is no such entry."""
    with conn.transaction():
        return conn.execute(_q(DELETE_ENTRY, log), (entry_id,)).fetchone()
INSERT_ENTRY = """
INSERT INTO {schema}.{table} (kind, reason, created_by, created_at, metadata)
VALUES (%(kind)s, %(reason)s, %(created_by)s, COALESCE(%(created_at)s, now()), %(metadata)s)
ON CONFLICT ((metadata ->> 'run_id')) WHERE metadata ? 'run_id' DO NOTHING
RETURNING id
"""
# What makes an entry this run's (or this snapshot's) and not an earlier one's under the same id.
IDENTITY_KEYS = ("restore_point", "pending_versions", "snapshot_id", "sha256")
ENTRY_BY_RUN = "SELECT id, metadata FROM {schema}.{table} WHERE metadata ->> 'run_id' = %s"
STATS = "SELECT {schema}.{func}()"

STATS_FUNCTION = "get_backup_stats"
REQUIRED_COLUMNS = {"id", "kind", "reason", "created_by", "created_at", "metadata"}


def _names(log: BackupLogConfig) -> dict[str, sql.Composable]:
    return {
        "schema": sql.Identifier(log.schema),
        "table": sql.Identifier(log.table),
        "func": sql.Identifier(STATS_FUNCTION),
    }


def _q(template: str, log: BackupLogConfig, **extra: sql.Composable) -> sql.Composed:
    return sql.SQL(template).format(**_names(log), **extra)


def qualified(log: BackupLogConfig) -> str:
    return f"{log.schema}.{log.table}"


def _regclass(log: BackupLogConfig) -> str:
    return sql.Identifier(log.schema, log.table).as_string(None)


def install(conn: psycopg.Connection[Any], log: BackupLogConfig) -> list[str]:
    """Create (idempotently) the table, its indexes, RLS, revokes and get_backup_stats().

    Runs in one transaction under guard's install lock (guard.guard_schema.installing), so
    concurrent installs take turns; returns what it did, for the operator. Raises Blocked
    when an existing table of that name has a different shape.
    """
    from guard.guard_schema import installing

    done: list[str] = []
    with installing(conn):  # two `guard init`s at once take turns (guard_schema.UPGRADE_LOCK)
        existed = conn.execute(TABLE_EXISTS, (_regclass(log),)).fetchone()
        conn.execute(_q(CREATE_SCHEMA, log))
        conn.execute(_q(CREATE_TABLE, log))
        columns = {r[0] for r in conn.execute(TABLE_COLUMNS, (_regclass(log),)).fetchall()}
        missing = REQUIRED_COLUMNS - columns
        if missing:
            raise Blocked(
                f"table {qualified(log)} exists but lacks columns {', '.join(sorted(missing))}",
                hint="choose another name with backup_log.table, or migrate the existing table",
            )
        done.append(
            f"table {qualified(log)} {'already present' if existed and existed[0] else 'created'}"
        )
        conn.execute(_q(CREATE_RUN_INDEX, log, index=sql.Identifier(f"{log.table}_run_id_key")))
        conn.execute(
            _q(CREATE_TIME_INDEX, log, index=sql.Identifier(f"{log.table}_kind_created_at_idx"))
        )
        conn.execute(_q(ENABLE_RLS, log))
        conn.execute(_q(CREATE_STATS_FUNCTION, log))
        roles = [r[0] for r in conn.execute(EXISTING_ROLES, (list(SUPABASE_API_ROLES),)).fetchall()]
        who = sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(r) for r in roles)])
        conn.execute(_q(REVOKE_TABLE, log, grantees=who))
        conn.execute(_q(REVOKE_FUNCTION, log, grantees=who))
        sequence = conn.execute(ID_SEQUENCE, (_regclass(log),)).fetchone()
        if sequence and sequence[0]:
            conn.execute(sql.SQL(REVOKE_SEQUENCE).format(sequence=sql.SQL(sequence[0]), grantees=who))
        done.append("row-level security on; no access for PUBLIC" + (f", {', '.join(roles)}" if roles else ""))
        done.append(f"function {log.schema}.{STATS_FUNCTION}() installed")
    return done


def table_exists(conn: psycopg.Connection[Any], log: BackupLogConfig) -> bool:
    row = conn.execute(TABLE_EXISTS, (_regclass(log),)).fetchone()
    return bool(row and row[0])


def write_entry(
    conn: psycopg.Connection[Any],
    log: BackupLogConfig,
    *,
    kind: str,
    reason: str,
    created_by: str,
    metadata: Mapping[str, Any],
    created_at: dt.datetime | None = None,
) -> int:
    """Insert one entry; with a run_id in metadata, a second call for the same run (same
    IDENTITY_KEYS) returns the first entry's id, and one for another is a SinkError."""
    from psycopg.types.json import Jsonb

    from guard.db import if_present

    values = {"kind": kind, "reason": reason, "created_by": created_by, "created_at": created_at,
              "metadata": Jsonb(dict(metadata))}
    present, row = if_present(conn, lambda: conn.execute(_q(INSERT_ENTRY, log), values).fetchone(),
                              lambda: table_exists(conn, log))
    if not present:
        raise SinkError(f"backup log table {qualified(log)} does not exist (run `guard init`)")
    if row is not None:
        return int(row[0])
    existing = conn.execute(_q(ENTRY_BY_RUN, log), (metadata.get("run_id"),)).fetchone()
    assert existing is not None
    import json

    ours = json.loads(json.dumps(dict(metadata), default=str))
    theirs = existing[1] if isinstance(existing[1], dict) else {}
    if any(ours.get(k) != theirs.get(k) for k in IDENTITY_KEYS):
        # Another run's entry under the same id: never taken for this one's.
        raise SinkError(f"{qualified(log)} already holds entry {existing[0]} for run id "
                        f"{metadata.get('run_id')}, with other details: not this run's")
    return int(existing[0])


def stats(conn: psycopg.Connection[Any], log: BackupLogConfig) -> dict[str, Any]:
    """get_backup_stats() as a dict; ProviderError when the table or function is missing."""
    import psycopg

    if not table_exists(conn, log):
        raise ProviderError(f"backup log table {qualified(log)} does not exist (run `guard init`)")
    try:
        row = conn.execute(_q(STATS, log)).fetchone()
    except psycopg.errors.UndefinedFunction:
        raise ProviderError(
            f"function {log.schema}.{STATS_FUNCTION}() does not exist (run `guard init`)"
        ) from None
    assert row is not None
    value = row[0]
    return value if isinstance(value, dict) else json.loads(value)


# ----------------------------------------------------------------------- provider and sink


class TableProvider(Struct):
    """Automated entries of the backup log table: the newest completed one."""

    log: BackupLogConfig
    label: str = "table"

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Config) -> TableProvider:
        return cls(config.backup_log, label=f"table {qualified(config.backup_log)}")

    def newest_backup(self, ctx: ProviderContext) -> BackupInfo:
        import psycopg

        from guard.db import fetch_all, if_present

        conn = ctx.conn
        try:  # both reads in one round trip
            present, rows = if_present(conn, lambda: fetch_all(conn, [(_q(NEWEST_AUTOMATED, self.log, damage=_DAMAGE), None),
                                                                      (_q(NEWEST_COMPLETED_AUTOMATED, self.log, damage=_DAMAGE), None)]),
                                       lambda: table_exists(conn, self.log))
        except psycopg.errors.UndefinedTable:
            raise ProviderError(f"cannot read {qualified(self.log)}: a table it needs does not exist") from None
        except psycopg.errors.InsufficientPrivilege:
            raise ProviderError(
                f"role may not read {qualified(self.log)}"
            ) from None
        except psycopg.Error as exc:
            raise ProviderError(f"cannot read {qualified(self.log)}: {exc.diag.message_primary}") from None
        if not present or rows is None:
            raise ProviderError(f"backup log table {qualified(self.log)} does not exist (run `guard init`)")
        newest, completed = (rows[0][0] if rows[0] else None), (rows[1][0] if rows[1] else None)
        for row in (newest, completed):
            if row is not None and row[3]:  # the entry the verdict rests on cannot be read
                raise ProviderError(damaged(self.log, row[0], row[3]))
        if newest is None:
            return BackupInfo(completed_at=None)
        newest_failed = (newest[2] or {}).get("status", "completed") != "completed"
        details: dict[str, Any] = {}
        if completed is not None:
            details = {"id": completed[0]}
            details.update({k: v for k, v in (completed[2] or {}).items() if k in ("source", "type", "location")})
        return BackupInfo(
            completed_at=completed[1] if completed else None,
            newest_failed=newest_failed,
            details=details,
        )


class TableSink(Struct):
    """Writes the manual-backup entry into the backup log table, once per run id."""

    log: BackupLogConfig
    label: str = "table"

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Config) -> TableSink:
        return cls(config.backup_log, label=f"table {qualified(config.backup_log)}")

    def record(self, entry: BackupEntry, ctx: SinkContext) -> str:
        import psycopg

        from guard.db import own_transaction

        try:  # one INSERT (and, for a run id already logged, one read)
            with own_transaction(ctx.conn):
                entry_id = write_entry(
                    ctx.conn,
                    self.log,
                    kind=entry.kind,
                    reason=entry.reason,
                    created_by=entry.created_by,
                    metadata=entry.metadata,
                )
        except psycopg.Error as exc:
            raise SinkError(
                f"cannot write to {qualified(self.log)}: {exc.diag.message_primary}"
            ) from None
        return str(entry_id)


PROVIDERS = {"table": Registered(PluginSpec(), TableProvider.from_config)}
SINKS = {"table": Registered(PluginSpec(), TableSink.from_config)}
