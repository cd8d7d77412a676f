"""Statements PostgreSQL refuses inside a transaction block (SQLSTATE 25001).

The table lists every caller of `PreventInTransactionBlock()` in PostgreSQL 13 to 17, with
the condition under which it calls it and the command tag it passes (the server's message
is "<tag> cannot run inside a transaction block"):

- src/backend/tcop/utility.c, standard_ProcessUtility / ProcessUtilitySlow: COMMIT PREPARED,
  ROLLBACK PREPARED, CREATE/DROP TABLESPACE, CREATE/DROP DATABASE, ALTER SYSTEM,
  CREATE INDEX CONCURRENTLY, DISCARD ALL (via DiscardCommand in commands/discard.c);
- src/backend/commands/tablecmds.c, RemoveRelations: DROP INDEX CONCURRENTLY;
  AlterTable / ATExecDetachPartition: ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY (14+);
- src/backend/commands/indexcmds.c, ExecReindex: REINDEX ... CONCURRENTLY, REINDEX SCHEMA,
  REINDEX SYSTEM, REINDEX DATABASE, and (ReindexPartitions, 14+) REINDEX of a partitioned
  table or index;
- src/backend/commands/vacuum.c, ExecVacuum/vacuum: VACUUM (not ANALYZE alone);
- src/backend/commands/cluster.c, cluster: CLUSTER without a table name, and (15+) CLUSTER
  of a partitioned table;
- src/backend/commands/dbcommands.c, AlterDatabase: ALTER DATABASE ... SET TABLESPACE;
- src/backend/commands/subscriptioncmds.c: CREATE SUBSCRIPTION with create_slot = true,
  ALTER SUBSCRIPTION ... REFRESH PUBLICATION, ALTER SUBSCRIPTION ... SET/ADD/DROP PUBLICATION
  with refresh = true (the default), DROP SUBSCRIPTION of a subscription with a replication
  slot, and (17+) ALTER SUBSCRIPTION ... SET (failover / two_phase) with a slot;
- src/backend/commands/typecmds.c, AlterEnum: ALTER TYPE ... ADD VALUE before PostgreSQL 12
  only (12 lifted it; listed for servers older than guard supports).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from msgspec import Struct


class NonTransactional(Struct, frozen=True):
    """One caller of PreventInTransactionBlock. tag: the command tag PostgreSQL names;
    versions: the majors where it applies (inclusive range); when: the condition, in words;
    refused: guard refuses it in a migration (not only runs it outside a transaction)."""

    tag: str
    source: str
    versions: tuple[int, int] = (13, 17)
    when: str = "always"
    refused: bool = False


TABLE: tuple[NonTransactional, ...] = (
    NonTransactional("CREATE INDEX CONCURRENTLY", "tcop/utility.c ProcessUtilitySlow"),
    NonTransactional("DROP INDEX CONCURRENTLY", "commands/tablecmds.c RemoveRelations"),
    NonTransactional("REINDEX CONCURRENTLY", "commands/indexcmds.c ExecReindex", (12, 17)),
    NonTransactional("REINDEX SCHEMA", "commands/indexcmds.c ExecReindex"),
    NonTransactional("REINDEX SYSTEM", "commands/indexcmds.c ExecReindex", refused=True),
    NonTransactional("REINDEX DATABASE", "commands/indexcmds.c ExecReindex", refused=True),
    NonTransactional("REINDEX TABLE", "commands/indexcmds.c ReindexPartitions", (14, 17),
                     "the table is partitioned"),
    NonTransactional("REINDEX INDEX", "commands/indexcmds.c ReindexPartitions", (14, 17),
                     "the index is partitioned"),
    NonTransactional("ALTER TABLE ... DETACH CONCURRENTLY", "commands/tablecmds.c AlterTable", (14, 17)),
    NonTransactional("VACUUM", "commands/vacuum.c ExecVacuum", when="VACUUM, not ANALYZE alone"),
    NonTransactional("CLUSTER", "commands/cluster.c cluster",
                     when="without a table name, or (15+) on a partitioned table"),
    NonTransactional("CREATE DATABASE", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("DROP DATABASE", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("ALTER DATABASE SET TABLESPACE", "commands/dbcommands.c AlterDatabase", refused=True),
    NonTransactional("CREATE TABLESPACE", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("DROP TABLESPACE", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("ALTER SYSTEM", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("COMMIT PREPARED", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("ROLLBACK PREPARED", "tcop/utility.c standard_ProcessUtility", refused=True),
    NonTransactional("DISCARD ALL", "commands/discard.c DiscardCommand", refused=True),
    NonTransactional("CREATE SUBSCRIPTION ... WITH (create_slot = true)",
                     "commands/subscriptioncmds.c CreateSubscription", when="create_slot true (the default "
                     "unless connect = false)"),
    NonTransactional("ALTER SUBSCRIPTION ... REFRESH", "commands/subscriptioncmds.c AlterSubscription"),
    NonTransactional("ALTER SUBSCRIPTION with refresh", "commands/subscriptioncmds.c AlterSubscription",
                     when="SET/ADD/DROP PUBLICATION with refresh true (the default)"),
    NonTransactional("ALTER SUBSCRIPTION ... SET (failover)", "commands/subscriptioncmds.c AlterSubscription",
                     (17, 17), "the subscription has a slot"),
    NonTransactional("ALTER SUBSCRIPTION ... SET (two_phase)", "commands/subscriptioncmds.c AlterSubscription",
                     (17, 17), "the subscription has a slot"),
    NonTransactional("DROP SUBSCRIPTION", "commands/subscriptioncmds.c DropSubscription",
                     when="the subscription has a replication slot (slot_name is not NONE)"),
    NonTransactional("ALTER TYPE ... ADD", "commands/typecmds.c AlterEnum", (9, 11)),
)
BY_TAG = {entry.tag: entry for entry in TABLE}


def _option(options: Any, name: str, default: bool) -> bool:
    for opt in options or ():
        if getattr(opt, "defname", "") == name:
            arg = getattr(opt, "arg", None)
            value = getattr(arg, "sval", None) or getattr(arg, "boolval", None) or getattr(arg, "ival", None)
            if arg is None:
                return True
            return str(value).lower() in ("true", "on", "1", "yes")
    return default


def _reindex(node: Any) -> str | None:
    from pglast import enums

    if _option(node.params, "concurrently", False):
        return "REINDEX CONCURRENTLY"
    kind = {enums.ReindexObjectType.REINDEX_OBJECT_SCHEMA: "REINDEX SCHEMA",
            enums.ReindexObjectType.REINDEX_OBJECT_SYSTEM: "REINDEX SYSTEM",
            enums.ReindexObjectType.REINDEX_OBJECT_DATABASE: "REINDEX DATABASE"}
    return kind.get(node.kind)


def _alter_subscription(node: Any) -> str | None:
    from pglast import enums

    kind = enums.AlterSubscriptionType
    if node.kind == kind.ALTER_SUBSCRIPTION_REFRESH:
        return "ALTER SUBSCRIPTION ... REFRESH"
    if node.kind in (kind.ALTER_SUBSCRIPTION_SET_PUBLICATION, kind.ALTER_SUBSCRIPTION_ADD_PUBLICATION,
                     kind.ALTER_SUBSCRIPTION_DROP_PUBLICATION) and _option(node.options, "refresh", True):
        return "ALTER SUBSCRIPTION with refresh"
    if node.kind == kind.ALTER_SUBSCRIPTION_OPTIONS:
        for name in ("failover", "two_phase"):
            if any(getattr(o, "defname", "") == name for o in node.options or ()):
                return f"ALTER SUBSCRIPTION ... SET ({name})"
    return None


def _tag(node: Any) -> str | None:
    from pglast import enums

    name = type(node).__name__
    simple = {"CreatedbStmt": "CREATE DATABASE", "DropdbStmt": "DROP DATABASE",
              "CreateTableSpaceStmt": "CREATE TABLESPACE", "DropTableSpaceStmt": "DROP TABLESPACE",
              "AlterSystemStmt": "ALTER SYSTEM"}
    if name in simple:
        return simple[name]
    if name == "IndexStmt":
        return "CREATE INDEX CONCURRENTLY" if node.concurrent else None
    if name == "DropStmt":
        return "DROP INDEX CONCURRENTLY" if node.concurrent else None
    if name == "ReindexStmt":
        return _reindex(node)
    if name == "VacuumStmt":
        return "VACUUM" if node.is_vacuumcmd else None
    if name == "ClusterStmt":
        return "CLUSTER" if node.relation is None else None
    if name == "AlterDatabaseStmt":
        named = any(getattr(o, "defname", "") == "tablespace" for o in node.options or ())
        return "ALTER DATABASE SET TABLESPACE" if named else None
    if name == "DiscardStmt":
        return "DISCARD ALL" if node.target == enums.DiscardMode.DISCARD_ALL else None
    if name == "TransactionStmt":
        kinds = {enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED: "COMMIT PREPARED",
                 enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED: "ROLLBACK PREPARED"}
        return kinds.get(node.kind)
    if name == "CreateSubscriptionStmt":
        connect = _option(node.options, "connect", True)
        return ("CREATE SUBSCRIPTION ... WITH (create_slot = true)"
                if _option(node.options, "create_slot", connect) else None)
    if name == "AlterSubscriptionStmt":
        return _alter_subscription(node)
    if name == "DropSubscriptionStmt":
        return "DROP SUBSCRIPTION"
    if name == "AlterTableStmt":
        for cmd in node.cmds or ():
            if cmd.subtype == enums.AlterTableType.AT_DetachPartition and getattr(cmd.def_, "concurrent", False):
                return "ALTER TABLE ... DETACH CONCURRENTLY"
    if name == "AlterEnumStmt" and node.oldVal is None:
        return "ALTER TYPE ... ADD"
    return None


def _partitioned(node: Any, partitioned: Callable[[str], bool] | None) -> str | None:
    """REINDEX TABLE/INDEX or CLUSTER of a partitioned relation (the catalog tells)."""
    from pglast import enums

    from guard.lint.names import from_rangevar

    relation = getattr(node, "relation", None)
    if partitioned is None or relation is None:
        return None
    if not partitioned(str(from_rangevar(relation))):
        return None
    if type(node).__name__ == "ClusterStmt":
        return "CLUSTER"
    return "REINDEX TABLE" if node.kind == enums.ReindexObjectType.REINDEX_OBJECT_TABLE else "REINDEX INDEX"


def non_transactional(node: Any, server_major: int | None,
                      partitioned: Callable[[str], bool] | None = None) -> NonTransactional | None:
    """The table's entry when PostgreSQL `server_major` (None: any of 13-17) refuses this parsed
    statement (a pglast node) inside a transaction block; None when it runs in one.
    Conditions that need the catalog (a partitioned table, a subscription's slot) count as
    met only where the statement's own text shows them (REINDEX of a partitioned table is not
    seen without `partitioned`, which answers from the catalog whether a relation is partitioned)."""
    tag = _tag(node)
    if tag is None and type(node).__name__ in ("ReindexStmt", "ClusterStmt"):
        tag = _partitioned(node, partitioned)
    if tag is None:
        return None
    entry = BY_TAG[tag]
    low, high = entry.versions
    major = server_major if server_major is not None else 17
    if major < low or (high < 17 and major > high):
        return None  # an entry still true in 17 is taken to hold for newer majors too
    return entry
