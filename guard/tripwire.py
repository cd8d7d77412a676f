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
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.migrations.session import AS_GUARD, GUARD_SEARCH_PATH

if TYPE_CHECKING:
    import psycopg

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

# Guard's own statements in a file's transaction run under search_path pg_catalog, pg_temp,
# whatever the file (a SET before its own BEGIN) or the database's defaults (in force again
# after each file's session reset) put there: a schema listed before pg_catalog could
# otherwise stand in for set_config, jsonb_object_agg or an operator (a trap set_config that
# stored an empty snapshot let a DO block's DELETE through with exit 0). The file's own
# search_path is kept aside first and put back, LOCAL, for its statements.
KEEP_PATH = ("SELECT pg_catalog.set_config('guard.file_search_path', "
             "pg_catalog.current_setting('search_path'), true)")
SAFE_PATH = GUARD_SEARCH_PATH
BACK_PATH = ("SELECT pg_catalog.set_config('search_path', "
             "pg_catalog.current_setting('guard.file_search_path'), true)")


def safe_path(statement: str, params: tuple[Any, ...] = ()) -> list[tuple[str, tuple[Any, ...]]]:
    """``statement`` (psycopg placeholders, ``params``) between KEEP_PATH + SAFE_PATH and
    BACK_PATH: run in this order, in one transaction, it cannot call what a schema before
    pg_catalog defines, and the statements after it see the search_path as it was."""
    return [(KEEP_PATH, ()), (SAFE_PATH, ()), (statement, params), (BACK_PATH, ())]


@contextmanager
def _on_safe_path(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """The block runs on ``conn`` (in its open transaction) as ``safe_path`` runs a statement:
    the search_path kept aside, guard's own, then put back. Not put back when the block
    aborted the transaction (the whole transaction, the setting with it, is rolled back)."""
    conn.execute(f"{KEEP_PATH}; {SAFE_PATH}")
    try:
        yield
    finally:
        if not (conn.broken or conn.closed) and conn.info.transaction_status.name == "INTRANS":
            conn.execute(BACK_PATH)


# The snapshot at the start of the file's transaction, kept in a transaction-local setting.
# Per table: relfilenode, whether it held rows (statistics, pages, else its size: opening every
# relation costs a cold session milliseconds, so only tables that look empty are measured),
# an estimate of its rows, the counters (PostgreSQL's pg_stat_get_xact_* functions, which
# pg_stat_xact_user_tables reads), the number of dropped columns older than the run, the
# highest column number before the run, each column's type and modifier (by column number:
# a rewrite that changed them may have rounded or cut values), its name and its partition root (known here: once a
# partitioned table is dropped, pg_partition_root() of its partitions is NULL).
START = """
SELECT set_config('guard.tripwire', (s.snap || jsonb_build_object('k', md5(s.snap::text || %s)))::text, true)
  FROM (SELECT coalesce(jsonb_object_agg(c.oid::text, jsonb_build_object(
         'f', c.relfilenode, 'h', held.held, 'n', held.estimate,
         'd', pg_stat_get_xact_tuples_deleted(c.oid), 'u', pg_stat_get_xact_tuples_updated(c.oid),
         'i', pg_stat_get_xact_tuples_inserted(c.oid), 'x', gone.n, 'm', b.maxnum, 't', gone.types,
         'r', quote_ident(n.nspname) || '.' || quote_ident(c.relname),
         'p', coalesce(pg_partition_root(c.oid)::oid, c.oid))), '{}'::jsonb) AS snap
  FROM (SELECT key::oid AS oid, (value #>> '{}')::int AS maxnum FROM jsonb_each(%s::jsonb)) b
  JOIN pg_class c ON c.oid = b.oid AND c.relkind = 'r'
  JOIN pg_namespace n ON n.oid = c.relnamespace
  CROSS JOIN LATERAL (SELECT count(*) FILTER (WHERE a.attisdropped) AS n,
                             string_agg(CASE WHEN a.attisdropped THEN '' ELSE a.atttypid || ':' || a.atttypmod END,
                                        ',' ORDER BY a.attnum) AS types
                        FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attnum > 0 AND a.attnum <= b.maxnum) gone
  CROSS JOIN LATERAL (SELECT greatest(c.reltuples, pg_stat_get_live_tuples(c.oid))::bigint AS estimate) e
  CROSS JOIN LATERAL (SELECT CASE WHEN e.estimate > 0 OR c.relpages > 0 THEN true
                                  ELSE pg_relation_size(c.oid) > 0 END AS held,
                             nullif(e.estimate, 0) AS estimate) held) s
"""

# Just before COMMIT. Fixed text: every input comes from the setting START left and from the
# copies registered in this transaction (guard.copies rows whose ``xact`` is this transaction's
# top-level id: a copy made after a file's SAVEPOINT has a subtransaction's xmin).
CHECK = """
DO $guard_tripwire$
DECLARE
  t record;
  -- How each refusal's hint ends: the decisions that disarm the tripwire.
  accept constant text := 'accept the loss with -- guard:allow <rule> <reason>, confirmed PITR or lint.destructive: warn';
  problems text[] := '{}';
  now_rows bigint;
  -- Set by the Protector just before it copies a table whole: only that table (and the
  -- partitions below it). A copy made now cannot hold what is already gone; an earlier whole
  -- copy (already checked this way when it was made) does.
  only_oid oid := nullif(current_setting('guard.tripwire_only', true), '')::oid;
  has_copies boolean := EXISTS (SELECT FROM pg_catalog.pg_attribute WHERE attrelid = to_regclass('guard.copies')
                                  AND attname = 'xact' AND NOT attisdropped);
  -- This transaction's copies, read once: whole tables, columns (one entry per copy), rows.
  whole_of oid[] := '{}';
  columns_of oid[] := '{}';
  rows_of jsonb := '[]';
  candidates jsonb;
  counted bigint;
  covered bigint;
  retyped bigint;
  -- START's snapshot, sealed with a hash keyed by a secret the file never sees (guard sets
  -- guard.tripwire_key after the file's statements). A file that ran RESET ALL (or RESET/SET
  -- guard.tripwire) took it away or put another in its place (SET guard.tripwire = '{}'):
  -- compared with that, every deletion would pass, so the file is refused instead.
  -- Mid-file (only_oid set: before_whole_copy) the seal is not checked, the one at COMMIT is;
  -- without a snapshot there (a file run without the tripwire) there is nothing to compare.
  stored jsonb := nullif(current_setting('guard.tripwire', true), '')::jsonb;
  snapshot jsonb;
BEGIN
  IF only_oid IS NOT NULL AND stored IS NULL THEN
    RETURN;
  END IF;
  snapshot := CASE WHEN jsonb_typeof(stored) = 'object' THEN stored - 'k' END;
  IF snapshot IS NULL OR (only_oid IS NULL AND stored->>'k' IS DISTINCT FROM
     md5(snapshot::text || coalesce(current_setting('guard.tripwire_key', true), ''))) THEN
    RAISE EXCEPTION 'tripwire: this file reset guard''s snapshot of the tables (RESET ALL, or RESET or SET '
                    'of guard.tripwire) or put another in its place, so what it destroyed cannot be measured'
      USING ERRCODE = 'GDTRP',
            HINT = 'the file was rolled back; reset only the parameters the file set (RESET name) instead of '
                   'RESET ALL, or ' || accept;
  END IF;
  -- With track_counts off PostgreSQL counts no deleted or updated rows (pgstat_init_relation):
  -- a file that turned it off would pass whatever it deleted.
  IF only_oid IS NULL AND current_setting('track_counts') = 'off' THEN
    RAISE EXCEPTION 'tripwire: this file turned track_counts off, so the rows it deleted or updated cannot be counted'
      USING ERRCODE = 'GDTRP',
            HINT = 'the file was rolled back; leave track_counts on, or ' || accept;
  END IF;
  IF has_copies THEN
    EXECUTE 'SELECT coalesce(array_agg(source_oid) FILTER (WHERE kind = ''table''), ''{}''), '
            '       coalesce(array_agg(source_oid) FILTER (WHERE kind = ''column''), ''{}''), '
            '       coalesce(jsonb_agg(jsonb_build_object(''s'', source_oid, ''n'', coalesce(rows, 0))) '
            '                FILTER (WHERE kind = ''rows''), ''[]'') '
            '  FROM guard.copies WHERE xact = pg_current_xact_id()'
      INTO whole_of, columns_of, rows_of;
  END IF;
  -- One set-based pass finds the candidates; only they are looked at one by one. A table's
  -- ancestors (itself first, then its partitioned parents: a copy of any of them holds its
  -- rows; pg_partition_ancestors() lists none for a table outside partitioning); a dropped
  -- one's, from the snapshot.
  WITH snap AS (
      SELECT key::oid AS oid, value AS v
        FROM jsonb_each(snapshot)
       WHERE only_oid IS NULL OR key::oid = only_oid OR (value->>'p')::oid = only_oid
          OR only_oid IN (SELECT relid::oid FROM pg_partition_ancestors(key::oid))
    ), state AS (
      SELECT s.oid, s.v, c.oid IS NULL AS gone,
             c.relfilenode <> (s.v->>'f')::oid AS moved,
             greatest(pg_stat_get_xact_tuples_deleted(s.oid) - (s.v->>'d')::bigint, 0) AS dels,
             greatest(pg_stat_get_xact_tuples_updated(s.oid) - (s.v->>'u')::bigint, 0) AS upds,
             pg_stat_get_xact_tuples_inserted(s.oid) - (s.v->>'i')::bigint AS ins,
             (SELECT count(*) FROM pg_attribute d WHERE d.attrelid = s.oid AND d.attisdropped
                 AND d.attnum > 0 AND d.attnum <= (s.v->>'m')::int) - (s.v->>'x')::bigint AS lost_columns
        FROM snap s LEFT JOIN pg_class c ON c.oid = s.oid
    )
  SELECT coalesce(jsonb_agg(to_jsonb(hit) || jsonb_build_object('ancestors', a.ancestors, 'whole', a.ancestors && whole_of)),
                  '[]'::jsonb)
    INTO candidates
    FROM (SELECT * FROM state WHERE gone OR moved OR dels > 0 OR upds > 0 OR lost_columns > 0) hit
    CROSS JOIN LATERAL (SELECT CASE WHEN hit.gone THEN ARRAY[hit.oid, coalesce((hit.v->>'p')::oid, hit.oid)]
                                    ELSE ARRAY[hit.oid] || ARRAY(SELECT relid::oid FROM pg_partition_ancestors(hit.oid)
                                                                  WHERE relid <> hit.oid) END AS ancestors) a;
  FOR t IN SELECT * FROM jsonb_to_recordset(candidates) AS c(
             oid oid, v jsonb, gone boolean, moved boolean, ins bigint, lost_columns bigint, whole boolean,
             ancestors oid[]) LOOP
    CONTINUE WHEN t.whole OR NOT (t.v->>'h')::boolean;
    IF t.gone THEN
      problems := problems || format('dropped table %s (about %s row(s))', t.v->>'r',
                                     coalesce(t.v->>'n', 'an unknown number of'));
      CONTINUE;
    END IF;
    retyped := 0;
    IF t.moved THEN
      -- A new relfilenode: TRUNCATE, or a rewrite (ALTER COLUMN TYPE, SET LOGGED...). After a
      -- TRUNCATE every row in the table was inserted since, and PostgreSQL restarts the
      -- transaction's counters at it; after a rewrite the old rows are still there, but a
      -- column with another type or modifier may hold rounded or cut values (a change that
      -- cannot lose any, varchar(10) to varchar(20), rewrites nothing).
      EXECUTE format('SELECT count(*) FROM %s', t.oid::regclass) INTO now_rows;
      IF now_rows <= greatest(t.ins, 0) THEN
        problems := problems || format('truncated %s (about %s row(s))', t.v->>'r',
                                       coalesce(t.v->>'n', 'an unknown number of'));
        CONTINUE;
      END IF;
      SELECT count(*) INTO retyped FROM pg_attribute a
       WHERE a.attrelid = t.oid AND a.attnum > 0 AND a.attnum <= (t.v->>'m')::int AND NOT a.attisdropped
         AND (string_to_array(t.v->>'t', ','))[a.attnum] <> a.atttypid || ':' || a.atttypmod;
    END IF;
    -- One column copy per column dropped or retyped.
    IF t.lost_columns + retyped > (SELECT count(*) FROM unnest(columns_of) s WHERE s = ANY(t.ancestors)) THEN
      problems := problems || format('%s of %s', concat_ws(' and ',
                    CASE WHEN t.lost_columns > 0 THEN 'dropped a column' END,
                    CASE WHEN retyped > 0 THEN 'changed the type of a column' END), t.v->>'r');
    END IF;
  END LOOP;
  -- Rows, per group: a table with the highest of its ancestors that has a copy of rows in this
  -- transaction (a DELETE of a partitioned table copies its partitions' rows in one copy), and
  -- every copy of rows below that ancestor covers the group.
  FOR t IN SELECT key, sum(dels) AS dels, sum(upds) AS upds, string_agg(DISTINCT v->>'r', ', ') AS names,
                  bool_or(EXISTS (SELECT FROM pg_attribute a WHERE a.attrelid = g.oid AND NOT a.attisdropped
                                   AND a.attnum > (g.v->>'m')::int)) AS gained
             FROM (SELECT x.*, coalesce((SELECT u.a FROM unnest(x.ancestors) WITH ORDINALITY u(a, i)
                                          WHERE u.a IN (SELECT (r->>'s')::oid FROM jsonb_array_elements(rows_of) r)
                                          ORDER BY u.i DESC LIMIT 1), x.oid) AS key
                     FROM jsonb_to_recordset(candidates) AS x(oid oid, v jsonb, gone boolean, dels bigint,
                                                               upds bigint, whole boolean, ancestors oid[])) g
            WHERE NOT gone AND NOT whole AND (dels > 0 OR upds > 0)
            GROUP BY key LOOP
    SELECT coalesce(sum((r->>'n')::bigint), 0) INTO covered FROM jsonb_array_elements(rows_of) r
     WHERE (r->>'s')::oid = t.key OR t.key IN (SELECT relid::oid FROM pg_partition_ancestors((r->>'s')::oid));
    -- A table that gained a column in this run: its updates are taken as a backfill of it.
    counted := t.dels + (CASE WHEN t.gained THEN 0 ELSE t.upds END);
    IF counted > covered THEN
      problems := problems || format('%s %s row(s) of %s',
        concat_ws(' and ', CASE WHEN t.dels > 0 THEN 'deleted' END,
                           CASE WHEN t.upds > 0 AND NOT t.gained THEN 'updated' END),
        counted - covered, t.names);
    END IF;
  END LOOP;
  IF cardinality(problems) > 0 THEN
    RAISE EXCEPTION 'tripwire: this file % without a protective copy or an explicit decision',
                    array_to_string(problems, '; ')
      USING ERRCODE = 'GDTRP',
            HINT = 'the file was rolled back; copy the data first, or ' || accept;
  END IF;
END
$guard_tripwire$
"""
SQLSTATE = "GDTRP"
# Before the check at COMMIT: the whole snapshot is compared, whatever a file set
# guard.tripwire_only to (before_whole_copy's own narrowing, mid-file, is not in force then).
# The key of the snapshot's seal goes in with it (a hex string: safe as a literal).
WHOLE = "SELECT pg_catalog.set_config('guard.tripwire_only', '', true), pg_catalog.set_config('guard.tripwire_key', '{key}', true)"
# Guard's identity for the check of a file whose session goes on after this COMMIT: a role the
# file set may not read guard's schema. LOCAL: the file's own settings are back after COMMIT.
AS_GUARD_LOCALLY = ("SET LOCAL SESSION AUTHORIZATION DEFAULT", "SET LOCAL ROLE NONE", GUARD_SEARCH_PATH)

# Statement kinds whose whole effect the parser knows and that destroy no existing data
# (plain DDL). Anything else may run code (functions, triggers, DO, CALL) or destroy rows.
PLAIN_DDL = frozenset({
    "CreateStmt", "IndexStmt", "CreateSchemaStmt", "CommentStmt", "GrantStmt", "GrantRoleStmt",
    "CreateFunctionStmt", "CreateTrigStmt", "CreatePolicyStmt", "AlterPolicyStmt", "ViewStmt",
    "CreateSeqStmt", "AlterSeqStmt", "CreateEnumStmt", "CreateDomainStmt", "CompositeTypeStmt",
    "CreateExtensionStmt", "AlterDefaultPrivilegesStmt", "AlterOwnerStmt", "VariableSetStmt",
    "CreateRoleStmt", "AlterRoleStmt", "RenameStmt", "AlterEnumStmt",
    "TransactionStmt", "AlterFunctionStmt", "CreateCastStmt", "DefineStmt", "AlterObjectSchemaStmt",
})


def needs_tripwire(statements: Iterable[Statement]) -> bool:
    """True when the parser cannot vouch for what ``statements`` destroy: anything but plain
    DDL (DO, CALL, SELECT/INSERT that may call functions or fire triggers, DML, DROP, an
    ALTER TABLE that drops or retypes a column, and DDL that runs code on existing rows:
    see ``runs_code``). A stand-in for the lint layer's "effect unknown" classification,
    which may replace it."""
    for statement in statements:
        if not statement.kind or (statement.kind in PLAIN_DDL and not runs_code(statement)):
            continue
        from guard.protect.targets import targets

        if statement.kind == "AlterTableStmt" and not targets(statement.sql) and not runs_code(statement):
            continue
        return True
    return False


def runs_code(statement: Statement) -> bool:
    """Whether DDL ``statement`` runs code, or changes columns, of rows that already exist: a
    function other than a known built-in in a column default, a CHECK, a generated column or
    an index expression is called once per existing row (and may delete anything: a
    function declared IMMUTABLE may call a VOLATILE one); VALIDATE CONSTRAINT calls a CHECK's
    functions again; ALTER TYPE ... DROP/ALTER ATTRIBUTE drops or rewrites the columns of
    typed tables (CREATE TABLE ... OF type)."""
    from pglast import parser

    if statement.kind not in ("AlterTableStmt", "IndexStmt"):
        return False
    try:
        text = parser.parse_sql_json(statement.sql)
    except parser.ParseError:
        return True
    if '"AT_ValidateConstraint"' in text:
        return True
    if '"objtype":"OBJECT_TYPE"' in text and ('"AT_DropColumn"' in text or '"AT_AlterColumnType"' in text):
        return True
    return '"FuncCall"' in text and any(not _known_call(call) for call in _calls(json.loads(text)))


def _calls(node: Any) -> Iterable[Any]:
    if isinstance(node, dict):
        if "FuncCall" in node:
            yield node["FuncCall"]
        for value in node.values():
            yield from _calls(value)
    elif isinstance(node, list):
        for value in node:
            yield from _calls(value)


def _known_call(call: dict[str, Any]) -> bool:
    """A built-in the lint knows (by its bare name, or anything qualified with pg_catalog)."""
    from guard.lint.destroy import KNOWN_CALLS
    from guard.lint.locks import NON_VOLATILE_FUNCTIONS

    names = [part.get("String", {}).get("sval", "") for part in call.get("funcname", ())]
    if len(names) == 2 and names[0] == "pg_catalog":
        return True
    return len(names) == 1 and (names[0] in KNOWN_CALLS or names[0] in NON_VOLATILE_FUNCTIONS)


class Tripwire(Struct):
    """Armed for the files the parser cannot vouch for; ``before_run`` is BEFORE_RUN's JSON."""

    before_run: str
    files: set[str] = field(default_factory=set)  # versions that run with the tripwire
    # Seals the snapshot (START, CHECK): a file cannot make one that passes for guard's.
    key: str = field(default_factory=lambda: secrets.token_hex(16))

    def armed(self, file: MigrationFile) -> bool:
        """Whether ``file`` runs with the tripwire."""
        return file.version in self.files

    def streamed(self, file: MigrationFile) -> tuple[list[tuple[str, tuple[Any, ...]]], list[str]]:
        """For a file that travels in a stream (migrations/pipeline.py): the snapshot's
        statement (after BEGIN) and the check's statements (before guard's session reset,
        which would clear the snapshot), or two empty lists when the file is not armed."""
        if file.version not in self.files:
            return [], []
        return safe_path(START, (self.key, self.before_run)), [*AS_GUARD, WHOLE.format(key=self.key), CHECK]

    def start(self, conn: psycopg.Connection[Any], file: MigrationFile) -> None:
        """In the file's transaction, before its first statement: store the snapshot."""
        if file.version in self.files:
            with _on_safe_path(conn):
                conn.execute(START, (self.key, self.before_run))

    def start_all(self, conn: psycopg.Connection[Any], files: Iterable[MigrationFile]) -> None:
        """The snapshot at the start of one transaction for all ``files`` (transaction: all)."""
        if any(f.version in self.files for f in files):
            with _on_safe_path(conn):
                conn.execute(START, (self.key, self.before_run))

    def check(self, conn: psycopg.Connection[Any], file: MigrationFile, *, as_guard: bool = True) -> None:
        """In the file's transaction, before COMMIT: raises psycopg.Error (SQLSTATE GDTRP)
        naming each table and row count destroyed without a copy or decision. ``as_guard``:
        first take guard's identity and search_path, whatever the file set (its last
        transaction: guard's history row follows the same way); False where the file's
        session goes on after this COMMIT (a file with transactions of its own)."""
        if file.version in self.files:
                conn.execute("; ".join((*(AS_GUARD if as_guard else AS_GUARD_LOCALLY), WHOLE.format(key=self.key), CHECK)))


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
    with conn.transaction():  # SAFE_PATH is LOCAL: the database's default search_path is in force here
        conn.execute(SAFE_PATH)
        row = conn.execute(BEFORE_RUN, (copy_schema,)).fetchone()
    return Tripwire(before_run=row[0] if row else json.dumps({}), files=versions)


def for_run(
    conn: psycopg.Connection[Any], report: RunReport, findings: Iterable[Finding],
    pending: Iterable[MigrationFile], display: Callable[[MigrationFile], str], *,
    destructive: str, copy_schema: str,
) -> Tripwire | None:
    """The tripwire of a guarded run, or None when no file needs one or an explicit decision
    accepts the loss for all of them: ``lint.destructive: warn``, point-in-time recovery a
    provider confirmed, or (per file) a ``guard:allow`` pragma accepting a destructive finding
    of that file. Each decision is in the report: the findings' ``accepted``, the backups."""
    if destructive == "warn":
        return None
    backups = report.backups
    if backups is not None and any(
        p.status == "ok" and p.pitr and p.pitr.get("latest") for p in backups.providers
    ):
        return None
    pending = list(pending)
    accepted = {f.file for f in findings if f.category == "destructive" and f.accepted}
    allowed = {p.version for p in pending if display(p) in accepted}
    return arm(conn, pending, copy_schema=copy_schema, allowed=allowed)


def before_whole_copy(conn: psycopg.Connection[Any], oid: int) -> None:
    """Just before a protective copy of the whole table ``oid`` (TRUNCATE, DROP, MERGE): raises
    psycopg.Error (SQLSTATE GDTRP) when this transaction already deleted, updated, truncated or
    dropped columns of it without a copy: the copy, made now, cannot hold them, and at COMMIT
    it would count as covering them. Nothing to do when the file runs without the tripwire
    (no snapshot: an explicit decision accepted the loss)."""
    with _on_safe_path(conn):  # mid-file: the file's search_path is in force
        conn.execute("SELECT set_config('guard.tripwire_only', %s, true)", (str(oid),))
        conn.execute(CHECK)  # a failure aborts the transaction, the setting with it
        conn.execute("SELECT set_config('guard.tripwire_only', '', true)")
