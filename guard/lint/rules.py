"""The rules: their ids and categories, and the dispatch from a statement to its checks.

Severities are defaults; `lint.severity` in guard.yml overrides them per rule. Reasoning
and safe alternatives follow what PostgreSQL does: the lock table (guard.lint.locks), the
statements refused in a transaction block (guard.lint.nontx). The checks themselves live in
guard.lint.destroy (data loss, breaking changes, effect unknown) and guard.lint.alter
(locks, scans and rewrites).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from guard.lint.ruleset import Finding, Handler, finding

if TYPE_CHECKING:
    from guard.lint import Linter
    from guard.migrations.files import Statement

def check(statement: Statement, linter: Linter, index: int, display: str) -> list[Finding]:
    """Findings for one statement (parsed again on its own: statements are small)."""
    if statement.kind == "CreateStmt":
        # The commonest statement by far, and only its table's name matters (to know which
        # tables the batch creates): read it from the parser's JSON, no syntax tree, and no
        # rule module loaded.
        return _note_created(statement, linter, index, display)
    import pglast

    from guard.lint import held, nontx

    handlers = _handlers()
    if statement.kind not in handlers and statement.kind not in _NON_TRANSACTIONAL_KINDS:
        return []  # no rule looks at this kind of statement: no need to parse it again
    if statement.kind in ("InsertStmt", "SelectStmt") and not linter.held and not _worth_a_look(statement.sql):
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
        for handler in handlers.get(type(raw.stmt).__name__, ()):
            out.extend(handler(raw.stmt, statement, linter, index, display))
        if linter.held and type(raw.stmt).__name__ in ("UpdateStmt", "DeleteStmt", "MergeStmt", "InsertStmt",
                                                      "SelectStmt"):
            out.extend(held.scans(raw.stmt, statement, linter, index, display))
        if type(raw.stmt).__name__ == "DoStmt":
            out.extend(_do_body(raw.stmt, statement, linter, index, display))
    return out


def _do_body(node: Any, statement: Statement, linter: Linter, index: int, display: str) -> list[Finding]:
    """The statements a DO block runs (guard.lint.plpgsql), judged as if they stood alone in the
    file at the DO block's place; only their risk findings are kept, as warnings."""
    import pglast
    from msgspec.structs import replace

    from guard.lint import plpgsql

    out: list[Finding] = []
    for inner in plpgsql.body_statements(node):
        try:
            kind = type(pglast.parse_sql(inner.sql)[0].stmt).__name__
        except (pglast.parser.ParseError, IndexError):
            continue
        where = "in the DO block, SQL built at run time (a name known only then)" if inner.dynamic else "in the DO block"
        with _runtime_names_exist(linter, inner.dynamic):
            found = check(replace(statement, sql=inner.sql, kind=kind), linter, index, display)
        for f in found:
            if f.category in ("destructive", "locking", "breaking"):  # the package's RISK_CATEGORIES
                # a warning, never a block: the run applies a DO block under the runtime tripwire,
                # which measures what it really destroyed (the protective copy cannot see inside)
                message = f.message.replace(plpgsql.PLACEHOLDER, "<run-time name>")
                out.append(replace(f, severity="warning", message=f"{where}: {message}"))
    return out


@contextmanager
def _runtime_names_exist(linter: Linter, dynamic: bool) -> Iterator[None]:
    """While a dynamic statement is judged: a relation named at run time counts as one that
    existed before, with rows (the conservative answer), whatever the database says."""
    from guard.lint import plpgsql

    exists = linter.scope.exists
    if dynamic and exists is not None:
        linter.scope.exists = lambda name: plpgsql.PLACEHOLDER in name or exists(name)
    try:
        yield
    finally:
        linter.scope.exists = exists


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
    """An INSERT/SELECT calls a function, has a WITH or an INTO, or is an upsert (from the parser's JSON, which is
    much cheaper than the syntax tree; a string that merely contains these words costs a parse)."""
    from pglast import parser

    try:
        tree = parser.parse_sql_json(sql)
    except parser.ParseError:
        return False
    return '"FuncCall"' in tree or '"withClause"' in tree or '"intoClause"' in tree or '"ONCONFLICT_UPDATE"' in tree


_NON_TRANSACTIONAL_KINDS = frozenset({
    "CreatedbStmt", "DropdbStmt", "CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterSystemStmt",
    "AlterDatabaseStmt", "DiscardStmt", "CreateSubscriptionStmt", "AlterSubscriptionStmt",
    "DropSubscriptionStmt", "AlterEnumStmt",
})


def _note_created(st: Statement, linter: Linter, index: int, display: str) -> list[Finding]:
    import json

    from pglast import parser

    from guard.lint.names import ObjectName

    try:
        stmts = json.loads(parser.parse_sql_json(st.sql)).get("stmts", [])
    except parser.ParseError:
        return []
    out: list[Finding] = []
    for item in stmts:
        create = item.get("stmt", {}).get("CreateStmt", {})
        relation = create.get("relation", {})
        if relation.get("relname"):
            for name in (relation["relname"], *_implied_sequences(relation["relname"], create)):
                linter.note_created(ObjectName(relation.get("schemaname") or None, name),
                                    temporary=relation.get("relpersistence") == "t",
                                    if_not_exists=bool(create.get("if_not_exists")))
        parents = create.get("inhRelations") or []
        if create.get("partbound") and not create["partbound"].get("is_default") and parents:
            from guard.lint.alter import default_partition

            rel = parents[0].get("RangeVar", {})
            parent = ObjectName(rel.get("schemaname") or None, rel.get("relname", ""))
            out.extend(default_partition(parent, str(linter.scope.resolve(parent)), st, linter, index, display))
    return out


_SERIAL = frozenset({"serial", "bigserial", "smallserial", "serial2", "serial4", "serial8"})


def _implied_sequences(table: str, create: dict[str, Any]) -> list[str]:
    """The sequences CREATE TABLE makes for its serial and identity columns, by PostgreSQL's
    naming (`<table>_<column>_seq`, parse_utilcmd.c generateSerialExtraStmts); a name past
    NAMEDATALEN (63 bytes), which PostgreSQL shortens, is left out."""
    out = []
    for element in create.get("tableElts") or ():
        column = element.get("ColumnDef") if isinstance(element, dict) else None
        if not column:
            continue
        names = [n.get("String", {}).get("sval", "") for n in column.get("typeName", {}).get("names", ())]
        identity = any(c.get("Constraint", {}).get("contype") == "CONSTR_IDENTITY"
                       for c in column.get("constraints") or ())
        name = f"{table}_{column.get('colname', '')}_seq"
        if (identity or names[-1:] and names[-1] in _SERIAL) and len(name.encode()) <= 63:
            out.append(name)
    return out


@cache
def _handlers() -> dict[str, list[Handler]]:
    """Each parse node's handlers, in module order (a node several modules look at runs them all)."""
    from guard.lint import alter, destroy, held, integrity

    merged: dict[str, list[Handler]] = {}
    for module in (destroy, alter, held, integrity):
        for kind, handler in module.HANDLERS.items():
            merged.setdefault(kind, []).append(handler)
    return merged
