"""The rules: their ids and categories, and the dispatch from a statement to its checks.

Severities are defaults; `lint.severity` in guard.yml overrides them per rule. Reasoning
and safe alternatives follow what PostgreSQL does: the lock table (guard.lint.locks), the
statements refused in a transaction block (guard.lint.nontx). The checks themselves live in
guard.lint.destroy (data loss, breaking changes, effect unknown) and guard.lint.alter
(locks, scans and rewrites).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.lint import Finding, Rule

if TYPE_CHECKING:
    from guard.lint import Linter
    from guard.migrations.files import Statement

ALL = (
    # destructive: data that existed before is gone
    Rule("drop-table", "destructive", "error", "DROP TABLE deletes the table and its rows"),
    Rule("drop-materialized-view", "destructive", "error", "DROP MATERIALIZED VIEW deletes its stored rows"),
    Rule("drop-schema", "destructive", "error", "DROP SCHEMA deletes every object in it (with CASCADE)"),
    Rule("drop-column", "destructive", "error", "DROP COLUMN deletes the column's data"),
    Rule("drop-database", "destructive", "error", "DROP DATABASE deletes a whole database"),
    Rule("drop-type", "destructive", "warning", "DROP TYPE/DOMAIN fails or (CASCADE) drops columns using it"),
    Rule("drop-cascade", "destructive", "error",
         "DROP ... CASCADE also drops what depends on the object: columns, materialized views, tables' defaults"),
    Rule("drop-extension", "destructive", "warning", "DROP EXTENSION drops the extension's own tables and data"),
    Rule("truncate", "destructive", "error", "TRUNCATE deletes every row (CASCADE: of referencing tables too)"),
    Rule("delete-without-where", "destructive", "error", "DELETE without WHERE deletes every row"),
    Rule("update-without-where", "destructive", "error", "UPDATE without WHERE overwrites every row"),
    Rule("merge", "destructive", "error", "MERGE ... THEN DELETE/UPDATE deletes or overwrites existing rows"),
    Rule("alter-column-type", "destructive", "warning",
         "ALTER COLUMN TYPE rewrites the table and loses data when the new type is narrower"),
    # breaking: no data lost, clients using the old shape fail
    Rule("rename", "breaking", "warning", "renaming a table, column or view breaks clients using the old name"),
    Rule("drop-function", "breaking", "warning", "DROP FUNCTION/PROCEDURE breaks callers, triggers, policies"),
    Rule("drop-view", "breaking", "warning", "DROP VIEW breaks clients reading it"),
    # locking
    Rule("create-index", "locking", "warning", "CREATE INDEX without CONCURRENTLY blocks writes to an existing table"),
    Rule("add-foreign-key", "locking", "warning", "a FOREIGN KEY without NOT VALID scans both tables under lock"),
    Rule("add-check", "locking", "warning", "a CHECK without NOT VALID scans the table under ACCESS EXCLUSIVE"),
    Rule("add-unique", "locking", "warning", "ADD PRIMARY KEY/UNIQUE builds its index under ACCESS EXCLUSIVE"),
    Rule("set-not-null", "locking", "warning", "SET NOT NULL scans the table under ACCESS EXCLUSIVE"),
    Rule("volatile-default", "locking", "warning",
         "ADD COLUMN computed per row (volatile default, STORED generated, identity, serial) rewrites the table"),
    Rule("validate-same-transaction", "locking", "warning",
         "VALIDATE in the transaction that added the constraint NOT VALID scans under the strong lock"),
    Rule("alter-domain-check", "locking", "warning",
         "ALTER DOMAIN ADD CONSTRAINT / SET NOT NULL scans every column of the domain under SHARE"),
    Rule("table-rewrite", "locking", "warning",
         "SET TABLESPACE / SET LOGGED / SET UNLOGGED / SET ACCESS METHOD rewrite the table under ACCESS EXCLUSIVE"),
    Rule("attach-partition", "locking", "warning",
         "ATTACH PARTITION scans the partition under ACCESS EXCLUSIVE unless a CHECK proves its bound"),
    Rule("refresh-materialized-view", "locking", "warning",
         "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks its readers while it runs"),
    Rule("vacuum-full", "locking", "warning", "VACUUM FULL / CLUSTER rewrite the table under ACCESS EXCLUSIVE"),
    Rule("reindex", "locking", "warning", "REINDEX without CONCURRENTLY blocks writes (and reads of the index)"),
    # non-transactional
    # guard runs files with these outside a transaction: a failure half-way leaves the
    # statements before it applied, hence a warning.
    Rule("concurrently", "non-transactional", "warning",
         "CREATE/DROP INDEX, REINDEX and DETACH PARTITION ... CONCURRENTLY cannot run in a transaction"),
    Rule("vacuum", "non-transactional", "warning", "VACUUM cannot run in a transaction"),
    Rule("enum-add-value", "non-transactional", "warning",
         "ALTER TYPE ... ADD VALUE cannot run in a transaction before PostgreSQL 12"),
    Rule("non-transactional", "non-transactional", "warning",
         "a statement PostgreSQL refuses inside a transaction block (CLUSTER, REINDEX SCHEMA, subscriptions)"),
    Rule("database-level", "non-transactional", "error",
         "CREATE/DROP DATABASE or TABLESPACE, ALTER SYSTEM, DISCARD ALL, COMMIT/ROLLBACK PREPARED: not in a migration"),
    Rule("transaction-control", "non-transactional", "error",
         "BEGIN/COMMIT/ROLLBACK in a file break guard's one transaction per file"),
    # effect unknown: the file runs with the runtime tripwire
    Rule("effect-unknown", "effect-unknown", "info",
         "a DO block, CALL or function call whose effect no parser can know: the run watches it"),
    # the shadow's trace (guard lint --trace) disagrees with the static verdict
    Rule("trace", "locking", "warning",
         "on the shadow the statement scanned or rewrote an existing table under a lock blocking writes"),
    # style
    Rule("syntax", "style", "error", "the file does not parse"),
    Rule("pragma", "style", "error", "a guard:allow pragma with an unknown rule or no reason"),
)
_BY_ID = {r.id: r for r in ALL}

Handler = Callable[[Any, "Statement", "Linter", int, str], list[Finding]]


def finding(rule: str, statement: Statement, index: int, display: str, message: str,
            alternative: str | None) -> Finding:
    """A Finding of `rule` at the statement's position, with the rule's default category/severity."""
    r = _BY_ID[rule]
    return Finding(display, statement.line, statement.column, rule, r.category, r.severity,
                   message, alternative, index)


def check(statement: Statement, linter: Linter, index: int, display: str) -> list[Finding]:
    """Findings for one statement (parsed again on its own: statements are small)."""
    import pglast

    from guard.lint import nontx

    if statement.kind == "CreateStmt":
        # The commonest statement by far, and only its table's name matters (to know which
        # tables the batch creates): read it from the parser's JSON, no syntax tree.
        _note_created(statement.sql, linter)
        return []
    handlers = _handlers()
    if statement.kind not in handlers and statement.kind not in _NON_TRANSACTIONAL_KINDS:
        return []  # no rule looks at this kind of statement: no need to parse it again
    if statement.kind in ("InsertStmt", "SelectStmt") and not _worth_a_look(statement.sql):
        return []  # seeds: thousands of INSERT ... VALUES with nothing a rule reads
    try:
        nodes = pglast.parse_sql(statement.sql)
    except pglast.parser.ParseError:
        return []
    out: list[Finding] = []
    for raw in nodes:
        partitioned = getattr(linter.catalog, "partitioned", None)
        entry = nontx.non_transactional(raw.stmt, linter.server_major, partitioned)
        if entry is not None:
            out.append(_non_transactional(entry, statement, index, display))
        handler = handlers.get(type(raw.stmt).__name__)
        if handler is not None:
            out.extend(handler(raw.stmt, statement, linter, index, display))
    return out


def _non_transactional(entry: Any, st: Statement, i: int, d: str) -> Finding:
    tag = entry.tag
    message = f"{tag} cannot run inside a transaction block (PostgreSQL: {entry.source})"
    if entry.refused:
        return finding("database-level", st, i, d, f"{message}; guard refuses {tag} in a migration",
                       f"run {tag} by hand, outside migrations")
    alone = "guard runs its file outside a transaction: keep it alone in its own file, so a failure leaves nothing half-done"
    if "CONCURRENTLY" in tag.upper():
        return finding("concurrently", st, i, d, message, alone)
    if tag == "VACUUM":
        return finding("vacuum", st, i, d, message, "run VACUUM outside migrations (autovacuum, or a maintenance job)")
    if tag == "ALTER TYPE ... ADD":
        return finding("enum-add-value", st, i, d, "ALTER TYPE ... ADD VALUE cannot run in a transaction before "
                       "PostgreSQL 12", "keep it alone in its own file")
    return finding("non-transactional", st, i, d, message, alone)


def _worth_a_look(sql: str) -> bool:
    """An INSERT/SELECT calls a function, has a WITH or an INTO (from the parser's JSON, which is
    much cheaper than the syntax tree; a string that merely contains these words costs a parse)."""
    from pglast import parser

    try:
        tree = parser.parse_sql_json(sql)
    except parser.ParseError:
        return False
    return '"FuncCall"' in tree or '"withClause"' in tree or '"intoClause"' in tree


_NON_TRANSACTIONAL_KINDS = frozenset({
    "CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt",
    "AlterDatabaseStmt", "DiscardStmt", "CreateSubscriptionStmt", "AlterSubscriptionStmt",
    "DropSubscriptionStmt", "AlterEnumStmt",
})


def _note_created(sql: str, linter: Linter) -> None:
    import json

    from pglast import parser

    from guard.lint.names import ObjectName

    try:
        stmts = json.loads(parser.parse_sql_json(sql)).get("stmts", [])
    except parser.ParseError:
        return
    for item in stmts:
        create = item.get("stmt", {}).get("CreateStmt", {})
        relation = create.get("relation", {})
        if relation.get("relname"):
            linter.note_created(ObjectName(relation.get("schemaname") or None, relation["relname"]),
                                temporary=relation.get("relpersistence") == "t",
                                if_not_exists=bool(create.get("if_not_exists")))


def _handlers() -> dict[str, Handler]:
    from guard.lint import alter, destroy

    return {**destroy.HANDLERS, **alter.HANDLERS}
