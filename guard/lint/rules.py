"""The rules: one function per statement kind, each returning findings for one statement.

Severities are defaults; `lint.severity` in guard.yml overrides them per rule. Reasoning
and safe alternatives follow what PostgreSQL does (lock levels, rewrites, transactions).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.lint import Finding, Rule

if TYPE_CHECKING:
    from guard.lint import Linter
    from guard.migrations.files import Statement

ALL = (
    # destructive
    Rule("drop-table", "destructive", "error", "DROP TABLE deletes the table and its rows"),
    Rule("drop-schema", "destructive", "error", "DROP SCHEMA deletes every object in it (with CASCADE)"),
    Rule("drop-column", "destructive", "error", "DROP COLUMN deletes the column's data"),
    Rule("drop-database", "destructive", "error", "DROP DATABASE deletes a whole database"),
    Rule("drop-type", "destructive", "warning", "DROP TYPE fails or (CASCADE) drops columns using it"),
    Rule("drop-function", "destructive", "warning", "DROP FUNCTION breaks callers, defaults, triggers, policies"),
    Rule("truncate", "destructive", "error", "TRUNCATE deletes every row (CASCADE: of referencing tables too)"),
    Rule("delete-without-where", "destructive", "error", "DELETE without WHERE deletes every row"),
    Rule("update-without-where", "destructive", "error", "UPDATE without WHERE overwrites every row"),
    Rule("alter-column-type", "destructive", "warning",
         "ALTER COLUMN TYPE rewrites the table and loses data when the new type is narrower"),
    Rule("rename", "destructive", "warning", "renaming a table or column breaks clients still using the old name"),
    # locking
    Rule("create-index", "locking", "warning", "CREATE INDEX without CONCURRENTLY blocks writes to an existing table"),
    Rule("add-foreign-key", "locking", "warning", "a FOREIGN KEY without NOT VALID scans both tables under lock"),
    Rule("add-check", "locking", "warning", "a CHECK without NOT VALID scans the table under ACCESS EXCLUSIVE"),
    Rule("add-unique", "locking", "warning", "ADD PRIMARY KEY/UNIQUE builds its index under ACCESS EXCLUSIVE"),
    Rule("set-not-null", "locking", "warning", "SET NOT NULL scans the table under ACCESS EXCLUSIVE"),
    Rule("volatile-default", "locking", "warning", "ADD COLUMN with a volatile default rewrites the table"),
    Rule("vacuum-full", "locking", "warning", "VACUUM FULL / CLUSTER rewrite the table under ACCESS EXCLUSIVE"),
    Rule("reindex", "locking", "warning", "REINDEX without CONCURRENTLY blocks writes (and reads of the index)"),
    # non-transactional
    # guard runs files with these outside a transaction: a failure half-way leaves the
    # statements before it applied, hence a warning.
    Rule("concurrently", "non-transactional", "warning",
         "CREATE/DROP INDEX CONCURRENTLY and REINDEX CONCURRENTLY cannot run in a transaction"),
    Rule("vacuum", "non-transactional", "warning", "VACUUM cannot run in a transaction"),
    Rule("enum-add-value", "non-transactional", "warning",
         "ALTER TYPE ... ADD VALUE cannot run in a transaction before PostgreSQL 12"),
    Rule("database-level", "non-transactional", "error",
         "CREATE/DROP DATABASE and ALTER SYSTEM cannot run in a transaction"),
    Rule("transaction-control", "non-transactional", "error",
         "BEGIN/COMMIT/ROLLBACK in a file break guard's one transaction per file"),
    # style
    Rule("syntax", "style", "error", "the file does not parse"),
    Rule("pragma", "style", "error", "a guard:allow pragma with an unknown rule or no reason"),
)
_BY_ID = {r.id: r for r in ALL}

VOLATILE_DEFAULTS = frozenset({
    "random", "gen_random_uuid", "uuid_generate_v4", "uuid_generate_v1", "clock_timestamp",
    "timeofday", "nextval", "txid_current", "statement_timestamp", "uuid_generate_v1mc",
})


def _finding(rule: str, statement: Statement, index: int, display: str, message: str,
             alternative: str | None) -> Finding:
    r = _BY_ID[rule]
    return Finding(display, statement.line, statement.column, rule, r.category, r.severity,
                   message, alternative, index)


def _name(rel: Any) -> str:
    return ".".join(p for p in (getattr(rel, "schemaname", None), rel.relname) if p)


def check(statement: Statement, linter: Linter, index: int, display: str) -> list[Finding]:
    """Findings for one statement (parsed again on its own: statements are small)."""
    import pglast

    if statement.kind == "CreateStmt":
        # The commonest statement by far, and only its table's name matters (to know which
        # tables the batch creates): read it from the parser's JSON, no syntax tree.
        _note_created(statement.sql, linter)
        return []
    if statement.kind not in _HANDLERS:
        return []  # no rule looks at this kind of statement: no need to parse it again
    try:
        nodes = pglast.parse_sql(statement.sql)
    except pglast.parser.ParseError:
        return []
    out: list[Finding] = []
    for raw in nodes:
        handler = _HANDLERS.get(type(raw.stmt).__name__)
        if handler is not None:
            out.extend(handler(raw.stmt, statement, linter, index, display))
    return out


def _drop(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = node.removeType
    names = []
    for obj in node.objects or ():
        if isinstance(obj, tuple):
            names.append(".".join(getattr(n, "sval", "?") for n in obj))
        else:
            names.append(getattr(obj, "sval", None) or type(obj).__name__)
    shown = ", ".join(names)
    out = []
    if kind == enums.ObjectType.OBJECT_TABLE:
        created_here = all(linter.table_is_new(n) for n in names) and linter.existing_tables is not None
        if not created_here:
            out.append(_finding("drop-table", st, i, d, f"DROP TABLE {shown} deletes the table and its rows",
                                "rename it first and drop it in a later release, once nothing uses it"))
    elif kind == enums.ObjectType.OBJECT_SCHEMA:
        out.append(_finding("drop-schema", st, i, d, f"DROP SCHEMA {shown} deletes everything in it",
                            "move what must survive out first; drop in a later release"))
    elif kind == enums.ObjectType.OBJECT_TYPE:
        out.append(_finding("drop-type", st, i, d, f"DROP TYPE {shown}: columns of this type block it or "
                            "(CASCADE) are dropped", "drop the columns explicitly first, with their data kept"))
    elif kind in (enums.ObjectType.OBJECT_FUNCTION, enums.ObjectType.OBJECT_PROCEDURE):
        out.append(_finding("drop-function", st, i, d, f"DROP FUNCTION {shown} breaks whatever calls it",
                            "check callers, defaults, triggers and policies; keep a compatible stub"))
    if node.concurrent:
        out.append(_finding("concurrently", st, i, d, "DROP INDEX CONCURRENTLY cannot run in a transaction",
                            "guard runs its file outside a transaction: keep it alone in its own file, so a failure leaves nothing half-done"))
    return out


def _dropdb(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [
        _finding("drop-database", st, i, d, f"DROP DATABASE {node.dbname} deletes a whole database",
                 "never from a migration"),
        _finding("database-level", st, i, d, "DROP DATABASE cannot run in a transaction", "not from a migration"),
    ]


def _truncate(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    names = ", ".join(_name(r) for r in node.relations or ())
    cascade = node.behavior == enums.DropBehavior.DROP_CASCADE
    return [_finding("truncate", st, i, d,
                     f"TRUNCATE {names} deletes every row" + (" and every row referencing them" if cascade else ""),
                     "DELETE in batches with a WHERE, or keep a copy (guard's protective copy does)")]


def _delete(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if node.whereClause is not None:
        return []
    return [_finding("delete-without-where", st, i, d, f"DELETE FROM {_name(node.relation)} without WHERE "
                     "deletes every row", "add the WHERE you mean; use TRUNCATE deliberately if you mean all")]


def _update(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if node.whereClause is not None:
        return []
    return [_finding("update-without-where", st, i, d, f"UPDATE {_name(node.relation)} without WHERE "
                     "overwrites every row", "add the WHERE you mean; backfill large tables in batches")]


def _rename(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    if node.renameType not in (enums.ObjectType.OBJECT_TABLE, enums.ObjectType.OBJECT_COLUMN):
        return []
    what = "column" if node.renameType == enums.ObjectType.OBJECT_COLUMN else "table"
    target = _name(node.relation) + (f".{node.subname}" if node.subname else "")
    return [_finding("rename", st, i, d, f"renaming {what} {target} to {node.newname} breaks clients "
                     "still using the old name", "add the new name, migrate clients, drop the old name later "
                     "(a view or generated column can bridge)")]


def _index(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    table = _name(node.relation)
    if node.concurrent:
        return [_finding("concurrently", st, i, d, "CREATE INDEX CONCURRENTLY cannot run in a transaction",
                         "guard runs its file outside a transaction: keep it alone in its own file, so a failure leaves nothing half-done")]
    if linter.table_is_new(table):
        return []
    return [_finding("create-index", st, i, d, f"CREATE INDEX on {table} blocks its writes while it builds",
                     "CREATE INDEX CONCURRENTLY, alone in its own migration file")]


def _alter_table(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import ast, enums

    table = _name(node.relation)
    new = linter.table_is_new(table)
    out: list[Finding] = []
    for cmd in node.cmds or ():
        sub = cmd.subtype
        if sub == enums.AlterTableType.AT_DropColumn:
            out.append(_finding("drop-column", st, i, d, f"DROP COLUMN {table}.{cmd.name} deletes its data",
                                "stop using the column first; drop it in a later release"))
        elif sub == enums.AlterTableType.AT_AlterColumnType and not new:
            out.append(_finding("alter-column-type", st, i, d,
                                f"changing the type of {table}.{cmd.name} rewrites the table under ACCESS "
                                "EXCLUSIVE and loses data if the new type is narrower",
                                "add a new column, backfill in batches, switch readers, drop the old one"))
        elif sub == enums.AlterTableType.AT_SetNotNull and not new:
            out.append(_finding("set-not-null", st, i, d, f"SET NOT NULL on {table}.{cmd.name} scans the table "
                                "under ACCESS EXCLUSIVE", "add CHECK (col IS NOT NULL) NOT VALID, VALIDATE it, "
                                "then SET NOT NULL (PostgreSQL 12+ skips the scan)"))
        elif sub == enums.AlterTableType.AT_AddColumn and isinstance(cmd.def_, ast.ColumnDef) and not new:
            out.extend(_add_column(cmd.def_, table, st, linter, i, d))
        elif sub == enums.AlterTableType.AT_AddConstraint and isinstance(cmd.def_, ast.Constraint) and not new:
            out.extend(_constraint(cmd.def_, table, st, i, d))
    return out


def _add_column(col: Any, table: str, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import ast, enums

    for constraint in col.constraints or ():
        if isinstance(constraint, ast.Constraint) and constraint.contype == enums.ConstrType.CONSTR_DEFAULT:
            volatile = _calls_volatile(constraint.raw_expr)
            old_server = linter.server_major is not None and linter.server_major < 11
            if volatile or old_server:
                why = "a volatile default" if volatile else "a default before PostgreSQL 11"
                return [_finding("volatile-default", st, i, d, f"ADD COLUMN {table}.{col.colname} with {why} "
                                 "rewrites the whole table under ACCESS EXCLUSIVE",
                                 "add the column without a default, set the default, backfill in batches")]
    return []


def _calls_volatile(expr: Any) -> bool:
    from pglast import ast

    if isinstance(expr, ast.FuncCall):
        name = expr.funcname[-1].sval if expr.funcname else ""
        if name in VOLATILE_DEFAULTS:
            return True
        return any(_calls_volatile(a) for a in expr.args or ())
    if isinstance(expr, ast.TypeCast):
        return _calls_volatile(expr.arg)
    return False


def _constraint(con: Any, table: str, st: Statement, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = con.contype
    if kind == enums.ConstrType.CONSTR_FOREIGN and not con.skip_validation:
        return [_finding("add-foreign-key", st, i, d, f"a FOREIGN KEY on {table} without NOT VALID checks every "
                         "row while both tables are locked", "ADD ... NOT VALID, then VALIDATE CONSTRAINT "
                         "in a later statement (it takes a weaker lock)")]
    if kind == enums.ConstrType.CONSTR_CHECK and not con.skip_validation:
        return [_finding("add-check", st, i, d, f"a CHECK on {table} without NOT VALID scans the table under "
                         "ACCESS EXCLUSIVE", "ADD ... NOT VALID, then VALIDATE CONSTRAINT")]
    if kind in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE) and not con.indexname:
        return [_finding("add-unique", st, i, d, f"ADD PRIMARY KEY/UNIQUE on {table} builds its index under "
                         "ACCESS EXCLUSIVE", "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD ... USING INDEX")]
    return []


def _note_created(sql: str, linter: Linter) -> None:
    import json

    from pglast import parser

    try:
        stmts = json.loads(parser.parse_sql_json(sql)).get("stmts", [])
    except parser.ParseError:
        return
    for item in stmts:
        relation = item.get("stmt", {}).get("CreateStmt", {}).get("relation", {})
        if relation.get("relname"):
            linter.created.add(".".join(p for p in (relation.get("schemaname"), relation["relname"]) if p))
            linter.created.add(relation["relname"])


def _vacuum(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    options = {getattr(o, "defname", "") for o in node.options or ()}
    out = []
    if node.is_vacuumcmd:
        out.append(_finding("vacuum", st, i, d, "VACUUM cannot run in a transaction",
                            "run VACUUM outside migrations (autovacuum, or a maintenance job)"))
    if "full" in options:
        out.append(_finding("vacuum-full", st, i, d, "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
                            "pg_repack, or a maintenance window"))
    return out


def _cluster(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [_finding("vacuum-full", st, i, d, "CLUSTER rewrites the table under ACCESS EXCLUSIVE",
                     "pg_repack, or a maintenance window")]


def _reindex(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    params = {getattr(p, "defname", "") for p in node.params or ()}
    if "concurrently" in params:
        return [_finding("concurrently", st, i, d, "REINDEX CONCURRENTLY cannot run in a transaction",
                         "keep it alone in its own file")]
    return [_finding("reindex", st, i, d, "REINDEX blocks writes (and reads through the index) while it runs",
                     "REINDEX ... CONCURRENTLY (PostgreSQL 12+), alone in its own file")]


def _enum(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if node.oldVal is not None or linter.server_major is None or linter.server_major >= 12:
        return []
    return [_finding("enum-add-value", st, i, d, "ALTER TYPE ... ADD VALUE cannot run in a transaction before "
                     "PostgreSQL 12", "keep it alone in its own file")]


def _database_level(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    what = "ALTER SYSTEM" if type(node).__name__ == "AlterSystemStmt" else "CREATE DATABASE"
    return [_finding("database-level", st, i, d, f"{what} cannot run in a transaction", "not from a migration")]


def _transaction(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [_finding("transaction-control", st, i, d, "transaction control in a migration file fights guard's "
                     "one transaction per file", "remove BEGIN/COMMIT: guard wraps each file in a transaction")]


_HANDLERS = {
    "DropStmt": _drop,
    "DropdbStmt": _dropdb,
    "TruncateStmt": _truncate,
    "DeleteStmt": _delete,
    "UpdateStmt": _update,
    "RenameStmt": _rename,
    "IndexStmt": _index,
    "AlterTableStmt": _alter_table,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "ReindexStmt": _reindex,
    "AlterEnumStmt": _enum,
    "AlterSystemStmt": _database_level,
    "CreatedbStmt": _database_level,
    "TransactionStmt": _transaction,
}
