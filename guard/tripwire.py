"""The runtime tripwire: what did this file's transaction really destroy?

Static analysis cannot see inside a DO block, a CALL, a user-defined function or a trigger.
For the files it cannot vouch for, guard measures instead, on the server, in the file's own
transaction:

- at its start, one statement stores a snapshot (a transaction-local setting) of every table
  that existed before the run: its relfilenode, its size and PostgreSQL's per-transaction
  counters of deleted, updated and inserted rows (``pg_stat_xact_user_tables``: they also hold
  the session's earlier transactions not yet flushed to the statistics system, hence a
  difference between start and end, never the end value alone);
- just before its COMMIT, one DO block compares and raises when rows were deleted or updated,
  a table was truncated (TRUNCATE moves none of the counters and fires no ``sql_drop`` event:
  a table that held rows and has a new, empty relfilenode shows it), or a table or column was
  dropped (the catalog), beyond what the protective copies made in this transaction hold.

Tables and columns created earlier in the same run are not existing data: a backfill of a
column the run added destroys nothing. The exception rolls the file back. Both statements
are fixed text plus parameters, so a pipelined apply can send them without a round trip.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.lint import Finding
    from guard.migrations.files import MigrationFile, Statement
    from guard.report.model import RunReport

# The tables (and their highest column number) that existed before the run: the data the
# tripwire protects. Guard's own schemas and the catalogs are not user data.
BEFORE_RUN = """
SELECT coalesce(jsonb_object_agg(c.oid::text, a.maxnum), '{}'::jsonb)::text
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN LATERAL (SELECT max(attnum) AS maxnum FROM pg_attribute
                 WHERE attrelid = c.oid AND attnum > 0) a ON true
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'guard', %s)
   AND n.nspname NOT LIKE 'pg\\_%%'
"""

# The snapshot at the start of the file's transaction, kept in a transaction-local setting.
# Per table: relfilenode, bytes, counters (PostgreSQL's pg_stat_get_xact_* functions, which
# pg_stat_xact_user_tables reads), the number of dropped columns older than the run, the
# highest column number before the run, an estimate of its rows and its name.
START = """
SELECT set_config('guard.tripwire', coalesce(jsonb_object_agg(c.oid::text, jsonb_build_object(
         'f', c.relfilenode, 's', pg_relation_size(c.oid),
         'd', pg_stat_get_xact_tuples_deleted(c.oid), 'u', pg_stat_get_xact_tuples_updated(c.oid),
         'i', pg_stat_get_xact_tuples_inserted(c.oid),
         'x', (SELECT count(*) FROM pg_attribute
                WHERE attrelid = c.oid AND attisdropped AND attnum <= (b.value #>> '{}')::int),
         'm', (b.value #>> '{}')::int,
         'n', greatest(c.reltuples, pg_stat_get_live_tuples(c.oid))::bigint,
         'r', quote_ident(n.nspname) || '.' || quote_ident(c.relname))), '{}'::jsonb)::text, true)
  FROM jsonb_each(%s::jsonb) b
  JOIN pg_class c ON c.oid = b.key::oid AND c.relkind = 'r'
  JOIN pg_namespace n ON n.oid = c.relnamespace
"""

# Just before COMMIT. Fixed text: every input comes from the setting START left and from the
# copies registered in this transaction (guard.copies rows whose xmin is this transaction).
CHECK = """
DO $guard_tripwire$
DECLARE
  snap jsonb := coalesce(nullif(current_setting('guard.tripwire', true), ''), '{}')::jsonb;
  t record;
  problems text[] := '{}';
  now_rows bigint;
  dels bigint;
  upds bigint;
  ins bigint;
  whole boolean;
  cols boolean;
  covered bigint;
  gained boolean;
  has_copies boolean := to_regclass('guard.copies') IS NOT NULL;
BEGIN
  FOR t IN SELECT key::oid AS oid, value AS v FROM jsonb_each(snap) LOOP
    whole := false; cols := false; covered := 0;
    IF has_copies THEN
      EXECUTE 'SELECT coalesce(bool_or(kind = ''table''), false), '
              '       coalesce(bool_or(kind = ''column''), false), coalesce(sum(rows), 0) '
              '  FROM guard.copies WHERE source_oid = $1 AND xmin = xid(pg_current_xact_id())'
        INTO whole, cols, covered USING t.oid;
    END IF;
    CONTINUE WHEN whole;
    IF NOT EXISTS (SELECT FROM pg_class WHERE oid = t.oid) THEN
      IF (t.v->>'s')::bigint > 0 THEN
        problems := problems || format('dropped table %s (about %s row(s))', t.v->>'r', t.v->>'n');
      END IF;
      CONTINUE;
    END IF;
    dels := pg_stat_get_xact_tuples_deleted(t.oid) - (t.v->>'d')::bigint;
    upds := pg_stat_get_xact_tuples_updated(t.oid) - (t.v->>'u')::bigint;
    ins := pg_stat_get_xact_tuples_inserted(t.oid) - (t.v->>'i')::bigint;
    IF (SELECT relfilenode FROM pg_class WHERE oid = t.oid) <> (t.v->>'f')::oid
       AND (t.v->>'s')::bigint > 0 THEN
      -- A new relfilenode: TRUNCATE, or a rewrite (ALTER COLUMN TYPE, SET LOGGED...). After a
      -- TRUNCATE every row in the table was inserted since, and PostgreSQL restarts the
      -- transaction's counters at it; after a rewrite the old rows are still there.
      EXECUTE format('SELECT count(*) FROM %s', t.oid::regclass) INTO now_rows;
      IF now_rows <= greatest(ins, 0) THEN
        problems := problems || format('truncated %s (about %s row(s))', t.v->>'r', t.v->>'n');
        CONTINUE;
      END IF;
    END IF;
    IF (SELECT count(*) FROM pg_attribute WHERE attrelid = t.oid AND attisdropped
         AND attnum <= (t.v->>'m')::int) > (t.v->>'x')::bigint
       AND (t.v->>'s')::bigint > 0 AND NOT cols THEN
      problems := problems || format('dropped a column of %s (about %s row(s))', t.v->>'r', t.v->>'n');
    END IF;
    -- A table that gained a column in this run: its updates are taken as a backfill of it.
    gained := EXISTS (SELECT FROM pg_attribute WHERE attrelid = t.oid AND NOT attisdropped
                       AND attnum > (t.v->>'m')::int);
    IF gained THEN upds := 0; END IF;
    IF greatest(dels, 0) + greatest(upds, 0) > covered THEN
      problems := problems || format('%s %s row(s) of %s',
        concat_ws(' and ', CASE WHEN dels > 0 THEN 'deleted' END, CASE WHEN upds > 0 THEN 'updated' END),
        greatest(dels, 0) + greatest(upds, 0) - covered, t.v->>'r');
    END IF;
  END LOOP;
  IF cardinality(problems) > 0 THEN
    RAISE EXCEPTION 'tripwire: this file % without a protective copy or an explicit decision',
                    array_to_string(problems, '; ')
      USING ERRCODE = 'GDTRP',
            HINT = 'the file was rolled back; copy the data first, or accept the loss with '
                   '-- guard:allow <rule> <reason>, confirmed PITR or lint.destructive: warn';
  END IF;
END
$guard_tripwire$
"""
SQLSTATE = "GDTRP"

# Statement kinds whose whole effect the parser knows and that destroy no existing data
# (plain DDL). Anything else may run code (functions, triggers, DO, CALL) or destroy rows.
PLAIN_DDL = frozenset({
    "CreateStmt", "IndexStmt", "CreateSchemaStmt", "CommentStmt", "GrantStmt", "GrantRoleStmt",
    "CreateFunctionStmt", "CreateTrigStmt", "CreatePolicyStmt", "AlterPolicyStmt", "ViewStmt",
    "CreateSeqStmt", "AlterSeqStmt", "CreateEnumStmt", "CreateDomainStmt", "CompositeTypeStmt",
    "CreateExtensionStmt", "AlterDefaultPrivilegesStmt", "AlterOwnerStmt", "VariableSetStmt",
    "CreateRoleStmt", "AlterRoleStmt", "RenameStmt", "AlterEnumStmt", "CreateTableAsStmt",
    "TransactionStmt", "AlterFunctionStmt", "CreateCastStmt", "DefineStmt", "AlterObjectSchemaStmt",
})


def needs_tripwire(statements: Iterable[Statement]) -> bool:
    """True when the parser cannot vouch for what ``statements`` destroy: anything but plain
    DDL (DO, CALL, SELECT/INSERT that may call functions or fire triggers, DML, DROP, and an
    ALTER TABLE that drops or retypes a column). A stand-in for the lint layer's
    "effect unknown" classification, which may replace it."""
    from guard.protect.targets import targets

    for statement in statements:
        if not statement.kind or statement.kind in PLAIN_DDL:
            continue
        if statement.kind == "AlterTableStmt" and not targets(statement.sql):
            continue
        return True
    return False


@dataclass
class Tripwire:
    """Armed for the files the parser cannot vouch for; ``before_run`` is BEFORE_RUN's JSON."""

    before_run: str
    files: set[str] = field(default_factory=set)  # versions that run with the tripwire

    def armed(self, file: MigrationFile) -> bool:
        """Whether ``file`` runs with the tripwire."""
        return file.version in self.files

    def start(self, conn: psycopg.Connection[Any], file: MigrationFile) -> None:
        """In the file's transaction, before its first statement: store the snapshot."""
        if file.version in self.files:
            conn.execute(START, (self.before_run,))

    def start_all(self, conn: psycopg.Connection[Any], files: Iterable[MigrationFile]) -> None:
        """The snapshot at the start of one transaction for all ``files`` (transaction: all)."""
        if any(f.version in self.files for f in files):
            conn.execute(START, (self.before_run,))

    def check(self, conn: psycopg.Connection[Any], file: MigrationFile) -> None:
        """In the file's transaction, before COMMIT: raises psycopg.Error (SQLSTATE GDTRP)
        naming each table and row count destroyed without a copy or decision."""
        if file.version in self.files:
            conn.execute(CHECK)


def arm(
    conn: psycopg.Connection[Any], files: Iterable[MigrationFile], *, copy_schema: str,
    allowed: set[str] | None = None,
) -> Tripwire | None:
    """A Tripwire for the ``files`` that need one (``allowed``: versions whose destruction an
    explicit decision accepted), or None when none does. Reads the catalog once."""
    versions = {f.version for f in files
                if f.version not in (allowed or set()) and needs_tripwire(f.statements)}
    if not versions:
        return None
    row = conn.execute(BEFORE_RUN, (copy_schema,)).fetchone()
    return Tripwire(before_run=row[0] if row else json.dumps({}), files=versions)


def for_run(
    conn: psycopg.Connection[Any], config: Config, report: RunReport, findings: Iterable[Finding],
    pending: Iterable[MigrationFile], display: Callable[[MigrationFile], str],
) -> Tripwire | None:
    """The tripwire of a guarded run, or None when no file needs one or an explicit decision
    accepts the loss for all of them: ``lint.destructive: warn``, point-in-time recovery a
    provider confirmed, or (per file) a ``guard:allow`` pragma accepting a destructive finding
    of that file. Each decision is in the report: the findings' ``accepted``, the backups."""
    if config.lint.destructive == "warn":
        return None
    backups = report.backups
    if backups is not None and any(
        p.status == "ok" and p.pitr and p.pitr.get("latest") for p in backups.providers
    ):
        return None
    pending = list(pending)
    accepted = {f.file for f in findings if f.category == "destructive" and f.accepted}
    allowed = {p.version for p in pending if display(p) in accepted}
    return arm(conn, pending, copy_schema=config.protect.schema, allowed=allowed)
