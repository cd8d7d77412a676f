"""What PostgreSQL locks, scans and rewrites, per statement and per ALTER TABLE sub-command.

One table a reader can check against its sources:
- "Explicit Locking" in the PostgreSQL 15 documentation (explicit-locking.html, table 13.2
  "Conflicting Lock Modes" and the list of commands acquiring each mode), and the
  "Lock Level" paragraph of each command's reference page (ALTER TABLE, CREATE INDEX, ...);
- `AlterTableGetLockLevel()` in src/backend/commands/tablecmds.c (REL_15_STABLE), which
  picks the lock of each ALTER TABLE sub-command (AT_* in src/include/nodes/parsenodes.h);
- for rewrites and scans: `ATRewriteTables()` / `ATRewriteTable()` (same file): a rewrite
  when a column's stored value changes (volatile default, STORED generated column, identity,
  a type change that is not binary-coercible, SET LOGGED/UNLOGGED, SET ACCESS METHOD), a scan
  when a new constraint must be checked (CHECK, NOT NULL, a partition bound), and
  `NotNullImpliedByRelConstraints()`: since PostgreSQL 12, SET NOT NULL skips its scan when a
  valid CHECK (col IS NOT NULL) proves it.

`tests/test_lint_corpus.py` replays the corpus on a real server and fails when a label and
the observed lock, relfilenode and seq_scan counter disagree: the table is checked, not trusted.
"""

from __future__ import annotations

from msgspec import Struct

ACCESS_SHARE = "ACCESS SHARE"
ROW_SHARE = "ROW SHARE"
ROW_EXCLUSIVE = "ROW EXCLUSIVE"
SHARE_UPDATE_EXCLUSIVE = "SHARE UPDATE EXCLUSIVE"
SHARE = "SHARE"
SHARE_ROW_EXCLUSIVE = "SHARE ROW EXCLUSIVE"
EXCLUSIVE = "EXCLUSIVE"
ACCESS_EXCLUSIVE = "ACCESS EXCLUSIVE"
# Weakest to strongest, as in the docs' table 13.2.
MODES = (ACCESS_SHARE, ROW_SHARE, ROW_EXCLUSIVE, SHARE_UPDATE_EXCLUSIVE, SHARE,
         SHARE_ROW_EXCLUSIVE, EXCLUSIVE, ACCESS_EXCLUSIVE)
# pg_locks.mode spells them in CamelCase.
PG_LOCKS_MODE = {m.title().replace(" ", "") + "Lock": m for m in MODES}
# Modes that block writers (INSERT/UPDATE/DELETE take ROW EXCLUSIVE): SHARE and stronger.
BLOCKS_WRITES = frozenset(MODES[4:])
# Modes that block readers (SELECT takes ACCESS SHARE).
BLOCKS_READS = frozenset({ACCESS_EXCLUSIVE})


def strongest(modes: set[str] | list[str]) -> str | None:
    """The strongest of PostgreSQL lock mode names, None for none."""
    ranked = [m for m in MODES if m in modes]
    return ranked[-1] if ranked else None


class LockFact(Struct, frozen=True):
    """lock: the mode on the target table; work: "none", "scan" (reads every row), "rewrite"
    (new relfilenode) or "index" (builds an index: reads every row); when: the condition."""

    lock: str
    work: str = "none"
    when: str = ""


_TC = "tablecmds.c AlterTableGetLockLevel"
# ALTER TABLE sub-commands (pglast AlterTableType names). Sub-commands left out take
# ACCESS EXCLUSIVE (the function's default) and do no work proportional to the table.
ALTER_TABLE: dict[str, LockFact] = {
    "AT_AddColumn": LockFact(ACCESS_EXCLUSIVE, "rewrite",
                             "rewrite with a volatile default, STORED generated or identity column, a domain "
                             "type with constraints (even NOT VALID ones), or a default before PostgreSQL 11; "
                             "index build with UNIQUE/PRIMARY KEY; else none"),
    "AT_DropColumn": LockFact(ACCESS_EXCLUSIVE),
    "AT_AlterColumnType": LockFact(ACCESS_EXCLUSIVE, "rewrite",
                                   "no rewrite when binary-coercible (varchar(n) to text or a longer "
                                   "varchar, numeric with more precision and the same scale, a longer "
                                   "timestamp precision, a domain to its base type, timestamp <-> "
                                   "timestamptz in a UTC session); a new collation rebuilds the column's "
                                   "indexes (a scan)"),
    "AT_ColumnDefault": LockFact(ACCESS_EXCLUSIVE),
    "AT_SetNotNull": LockFact(ACCESS_EXCLUSIVE, "scan", "no scan when a valid CHECK (col IS NOT NULL) exists (12+)"),
    "AT_DropNotNull": LockFact(ACCESS_EXCLUSIVE),
    "AT_SetStatistics": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_SetOptions": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_ResetOptions": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_SetStorage": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_SetCompression": LockFact(ACCESS_EXCLUSIVE),
    "AT_AddConstraint": LockFact(ACCESS_EXCLUSIVE, "scan",
                                 "FOREIGN KEY: SHARE ROW EXCLUSIVE on both tables; CHECK/FOREIGN KEY scan "
                                 "unless NOT VALID; PRIMARY KEY/UNIQUE/EXCLUDE build an index unless USING INDEX"),
    "AT_ValidateConstraint": LockFact(SHARE_UPDATE_EXCLUSIVE, "scan",
                                      "a scan that blocks no reads or writes, unless a stronger lock is "
                                      "already held in the same transaction"),
    "AT_DropConstraint": LockFact(ACCESS_EXCLUSIVE),
    "AT_AlterConstraint": LockFact(ACCESS_EXCLUSIVE),
    "AT_AddIndexConstraint": LockFact(ACCESS_EXCLUSIVE, "none", "a scan when a PRIMARY KEY column is nullable"),
    "AT_ClusterOn": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_DropCluster": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_SetLogged": LockFact(ACCESS_EXCLUSIVE, "rewrite", "none when already logged"),
    "AT_SetUnLogged": LockFact(ACCESS_EXCLUSIVE, "rewrite", "none when already unlogged"),
    "AT_SetAccessMethod": LockFact(ACCESS_EXCLUSIVE, "rewrite", "none for the table's own method"),
    "AT_SetTableSpace": LockFact(ACCESS_EXCLUSIVE, "rewrite", "copies every file of the table; none when "
                                 "already there"),
    "AT_SetRelOptions": LockFact(SHARE_UPDATE_EXCLUSIVE, "none",
                                 "AlterTableGetRelOptionsLockLevel: fillfactor, autovacuum and toast "
                                 "options SHARE UPDATE EXCLUSIVE, others ACCESS EXCLUSIVE"),
    "AT_ResetRelOptions": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_EnableTrig": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_DisableTrig": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_EnableTrigAll": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_DisableTrigAll": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_EnableTrigUser": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_DisableTrigUser": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_EnableAlwaysTrig": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_EnableReplicaTrig": LockFact(SHARE_ROW_EXCLUSIVE),
    "AT_EnableRowSecurity": LockFact(ACCESS_EXCLUSIVE),
    "AT_DisableRowSecurity": LockFact(ACCESS_EXCLUSIVE),
    "AT_ForceRowSecurity": LockFact(ACCESS_EXCLUSIVE),
    "AT_NoForceRowSecurity": LockFact(ACCESS_EXCLUSIVE),
    "AT_ReplicaIdentity": LockFact(ACCESS_EXCLUSIVE),
    "AT_AddIdentity": LockFact(ACCESS_EXCLUSIVE),
    "AT_DropIdentity": LockFact(ACCESS_EXCLUSIVE),
    "AT_SetIdentity": LockFact(ACCESS_EXCLUSIVE),
    "AT_DropExpression": LockFact(ACCESS_EXCLUSIVE),
    "AT_ChangeOwner": LockFact(ACCESS_EXCLUSIVE),
    "AT_AddInherit": LockFact(SHARE_UPDATE_EXCLUSIVE, "scan", "the parent takes SHARE UPDATE EXCLUSIVE; the "
                              "child ACCESS EXCLUSIVE and is checked against the parent's constraints"),
    "AT_DropInherit": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_AttachPartition": LockFact(SHARE_UPDATE_EXCLUSIVE, "scan",
                                   "the partition takes ACCESS EXCLUSIVE and is scanned unless a valid CHECK "
                                   "implies its bound (PostgreSQL 12+: the parent only SHARE UPDATE EXCLUSIVE)"),
    "AT_DetachPartition": LockFact(ACCESS_EXCLUSIVE, "none", "CONCURRENTLY: SHARE UPDATE EXCLUSIVE (14+)"),
    "AT_DetachPartitionFinalize": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "AT_AddOf": LockFact(ACCESS_EXCLUSIVE),
    "AT_DropOf": LockFact(ACCESS_EXCLUSIVE),
    "AT_GenericOptions": LockFact(ACCESS_EXCLUSIVE),
}
ALTER_TABLE_SOURCE = _TC

# Other statements, from the docs' "Explicit Locking" list and each command's reference page.
STATEMENTS: dict[str, LockFact] = {
    "CREATE INDEX": LockFact(SHARE, "index", "ON ONLY a partitioned table: the parent alone, nothing read"),
    "CREATE INDEX CONCURRENTLY": LockFact(SHARE_UPDATE_EXCLUSIVE, "index", "outside a transaction"),
    "DROP INDEX": LockFact(ACCESS_EXCLUSIVE, "none", "on the index's table"),
    "DROP INDEX CONCURRENTLY": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "REINDEX": LockFact(SHARE, "index", "ACCESS EXCLUSIVE on the index itself (blocks reads using it)"),
    "REINDEX CONCURRENTLY": LockFact(SHARE_UPDATE_EXCLUSIVE, "index"),
    "CLUSTER": LockFact(ACCESS_EXCLUSIVE, "rewrite"),
    "VACUUM": LockFact(SHARE_UPDATE_EXCLUSIVE, "scan"),
    "VACUUM FULL": LockFact(ACCESS_EXCLUSIVE, "rewrite"),
    "ANALYZE": LockFact(SHARE_UPDATE_EXCLUSIVE),
    "REFRESH MATERIALIZED VIEW": LockFact(ACCESS_EXCLUSIVE, "rewrite"),
    "REFRESH MATERIALIZED VIEW CONCURRENTLY": LockFact(EXCLUSIVE, "scan"),
    "TRUNCATE": LockFact(ACCESS_EXCLUSIVE, "rewrite"),
    "DROP TABLE": LockFact(ACCESS_EXCLUSIVE),
    "CREATE TRIGGER": LockFact(SHARE_ROW_EXCLUSIVE),
    "CREATE RULE": LockFact(ACCESS_EXCLUSIVE),
    "CREATE POLICY": LockFact(ACCESS_EXCLUSIVE),
    "ALTER DOMAIN ADD CONSTRAINT": LockFact(SHARE, "scan", "every table with a column of the domain, "
                                            "unless NOT VALID (typecmds.c validateDomainConstraint)"),
    "ALTER DOMAIN VALIDATE CONSTRAINT": LockFact(SHARE, "scan", "every table with a column of the domain "
                                                 "(typecmds.c AlterDomainValidateConstraint): unlike a table's "
                                                 "VALIDATE, it blocks writes"),
    "CREATE TABLE PARTITION OF": LockFact(ACCESS_EXCLUSIVE, "none", "on the parent; a filled DEFAULT partition "
                                          "is scanned under ACCESS EXCLUSIVE (partbounds.c "
                                          "check_default_partition_contents); ATTACH PARTITION likewise"),
    "DO": LockFact(ACCESS_SHARE, "none", "whatever the statements of its body take (guard.lint.plpgsql)"),
        "ALTER TYPE ALTER ATTRIBUTE TYPE": LockFact(ACCESS_EXCLUSIVE, "rewrite", "typed tables of the type"),
    "LOCK TABLE": LockFact(ACCESS_EXCLUSIVE, "none", "the mode named, ACCESS EXCLUSIVE by default"),
    "UPDATE": LockFact(ROW_EXCLUSIVE, "scan"),
    "DELETE": LockFact(ROW_EXCLUSIVE, "scan"),
    "MERGE": LockFact(ROW_EXCLUSIVE, "scan"),
}
STATEMENTS_SOURCE = "PostgreSQL 15 docs, explicit-locking.html and each command's reference page"

# Built-in functions that are not VOLATILE (pg_proc.provolatile 'i' or 's'), the ones a column
# default or generated expression commonly calls. Any function not listed counts as volatile
# (a default calling it rewrites the table), as squawk's allow-list does: unknown means risky.
NON_VOLATILE_FUNCTIONS = frozenset({
    "now", "current_timestamp", "current_date", "current_time", "localtimestamp", "localtime",
    "transaction_timestamp", "current_user", "session_user", "current_role", "user",
    "current_schema", "current_database", "lower", "upper", "length", "char_length", "btrim",
    "trim", "ltrim", "rtrim", "concat", "concat_ws", "coalesce", "nullif", "greatest", "least",
    "abs", "round", "floor", "ceil", "ceiling", "trunc", "to_char", "to_date", "to_timestamp",
    "to_number", "date_trunc", "date_part", "extract", "make_date", "make_interval",
    "make_timestamp", "make_timestamptz", "jsonb_build_object", "json_build_object",
    "jsonb_build_array", "json_build_array", "to_jsonb", "to_json", "array_length", "cardinality",
    "substring", "substr", "replace", "left", "right", "md5", "sha256", "encode", "decode",
    "timezone", "age", "int4", "int8", "text", "numeric", "bool", "format", "split_part",
    "regexp_replace", "array_to_string", "string_to_array", "pg_catalog.now",
    # stable or immutable too (pg_proc.provolatile), found missing by an independent review
    "statement_timestamp", "current_setting", "to_tsvector", "strpos", "position", "initcap", "repeat",
    "lpad", "rpad", "translate", "jsonb_strip_nulls", "array_remove", "array_append", "array_cat",
    "int4range", "int8range", "numrange", "daterange", "tsrange", "tstzrange",
})
