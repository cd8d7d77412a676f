"""Checks for data loss, breaking changes, and statements whose effect no parser can know.

Every form that can destroy rows that existed before the batch is a destructive finding:
DROP TABLE / MATERIALIZED VIEW / SCHEMA / COLUMN, DROP ... CASCADE, TRUNCATE, DELETE and
UPDATE without WHERE (also inside data-modifying CTEs), MERGE ... THEN DELETE/UPDATE.
Objects are resolved as the server resolves them (guard.lint.names): a table renamed earlier
in the batch and then dropped is a drop of the original table's rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.lint.locks import NON_VOLATILE_FUNCTIONS
from guard.lint.names import ObjectName, from_names, from_rangevar
from guard.lint.ruleset import Handler, finding

if TYPE_CHECKING:
    from guard.lint import Finding, Linter
    from guard.migrations.files import Statement

# DROP's object kinds as PostgreSQL's messages name them (ObjectType -> words).
KIND_WORDS = {
    "OBJECT_TABLE": "TABLE", "OBJECT_MATVIEW": "MATERIALIZED VIEW", "OBJECT_VIEW": "VIEW",
    "OBJECT_SCHEMA": "SCHEMA", "OBJECT_TYPE": "TYPE", "OBJECT_DOMAIN": "DOMAIN",
    "OBJECT_FUNCTION": "FUNCTION", "OBJECT_PROCEDURE": "PROCEDURE", "OBJECT_ROUTINE": "ROUTINE",
    "OBJECT_AGGREGATE": "AGGREGATE", "OBJECT_EXTENSION": "EXTENSION", "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_INDEX": "INDEX", "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE", "OBJECT_TRIGGER": "TRIGGER",
    "OBJECT_POLICY": "POLICY", "OBJECT_RULE": "RULE",
}
_ROUTINES = ("OBJECT_FUNCTION", "OBJECT_PROCEDURE", "OBJECT_ROUTINE", "OBJECT_AGGREGATE")
# Built-in functions a migration's SELECT commonly calls whose effect is known and harmless
# to existing rows; any other call (a user-defined function, whatever its volatility: a STABLE
# function may call a VOLATILE one) makes the statement's effect unknown.
KNOWN_CALLS = frozenset({
    "set_config", "current_setting", "nextval", "setval", "currval", "pg_advisory_lock",
    "pg_advisory_xact_lock", "pg_advisory_unlock", "pg_try_advisory_lock", "pg_try_advisory_xact_lock",
    "gen_random_uuid", "random", "now", "clock_timestamp", "count", "sum", "min", "max", "avg",
    "format", "to_regclass", "pg_sleep", "version", "txid_current", "pg_notify", "has_table_privilege",
    "pg_get_serial_sequence", "obj_description", "col_description", "array_agg", "string_agg",
    "jsonb_agg", "json_agg", "pg_reload_conf", "generate_series", "unnest", "row_number", "rank",
    "dense_rank", "lag", "lead", "first_value", "last_value", "bool_and", "bool_or", "every",
    "jsonb_object_agg", "json_object_agg", "array_position", "regexp_matches", "regexp_split_to_table",
    "to_regtype", "to_regproc", "pg_typeof", "quote_ident", "quote_literal", "quote_nullable",
    "exists", "jsonb_set", "jsonb_array_elements", "json_array_elements",
    "jsonb_each", "json_each", "jsonb_path_query", "uuid_generate_v4",
})


def object_name(kind: str, obj: Any) -> str:
    """An object of DROP as PostgreSQL prints it: public.backfill_v2(integer), "User", a.b."""
    from pglast import ast
    from pglast.stream import RawStream

    from guard.lint.names import quote_ident

    if isinstance(obj, ast.ObjectWithArgs):
        name = ".".join(quote_ident(p.sval) for p in obj.objname or ())
        if obj.args_unspecified:
            return name
        return name + "(" + ", ".join(RawStream()(a) for a in obj.objargs or ()) + ")"
    if isinstance(obj, tuple):
        return str(from_names(obj)) if kind not in ("OBJECT_TYPE", "OBJECT_DOMAIN") \
            else ".".join(quote_ident(getattr(p, "sval", "")) for p in obj)
    if isinstance(obj, ast.TypeName):
        return RawStream()(obj)
    return quote_ident(getattr(obj, "sval", None) or type(obj).__name__)


def relation(linter: Linter, name: ObjectName) -> tuple[str, bool]:
    """(how to name it in a message, whether it holds rows from before the batch)."""
    origin = linter.scope.origin_of(name)
    resolved = linter.scope.resolve(name)
    shown = str(resolved if resolved.schema is not None else name)
    shown += f" (until this batch renamed it: {origin})" if origin is not None else ""
    return shown, not linter.table_is_new(name)


def _drop(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = enums.ObjectType(node.removeType).name
    words = KIND_WORDS.get(kind, kind.removeprefix("OBJECT_").replace("_", " "))
    cascade = node.behavior == enums.DropBehavior.DROP_CASCADE
    out: list[Finding] = []
    names = [object_name(kind, obj) for obj in node.objects or ()]
    shown = ", ".join(names)
    if kind in ("OBJECT_TABLE", "OBJECT_MATVIEW"):
        old = []
        for obj in node.objects or ():
            target = from_names(obj)
            text, existed = relation(linter, target)
            if existed:
                old.append(text)
            linter.scope.note_dropped(target)
        if old:
            rule = "drop-table" if kind == "OBJECT_TABLE" else "drop-materialized-view"
            out.append(finding(rule, st, i, d, f"DROP {words} {', '.join(old)} deletes its rows",
                               "rename it first and drop it in a later release, once nothing uses it; "
                               "guard's protective copy keeps the rows meanwhile"))
    elif kind == "OBJECT_SCHEMA":
        out.append(finding("drop-schema", st, i, d, f"DROP SCHEMA {shown} deletes everything in it",
                           "move what must survive out first; drop in a later release"))
    elif kind in ("OBJECT_TYPE", "OBJECT_DOMAIN"):
        out.append(finding("drop-type", st, i, d, f"DROP {words} {shown}: columns of this type block it or "
                           "(CASCADE) are dropped with their data", "drop the columns explicitly first, with their data kept"))
    elif kind in _ROUTINES:
        out.append(finding("drop-function", st, i, d, f"DROP {words} {shown} breaks whatever calls it",
                           "check callers, defaults, triggers and policies; keep a compatible stub"))
    elif kind == "OBJECT_VIEW":
        out.append(finding("drop-view", st, i, d, f"DROP VIEW {shown} breaks clients reading it",
                           "keep the view until no client reads it; drop it in a later release"))
    elif kind == "OBJECT_EXTENSION":
        out.append(finding("drop-extension", st, i, d, f"DROP EXTENSION {shown} drops its objects, its own "
                           "tables' rows included", "keep the extension, or copy its tables first"))
    if cascade and kind not in ("OBJECT_SCHEMA",) and _reaches_others(linter, kind, names):
        out.append(finding("drop-cascade", st, i, d, f"DROP {words} {shown} CASCADE also drops every object "
                           "depending on it: columns of its type, views, materialized views, defaults",
                           "drop the dependent objects explicitly first (RESTRICT fails instead of losing them)"))
    return out


_DEPENDENT_KIND = {"OBJECT_TABLE": "relation", "OBJECT_VIEW": "relation", "OBJECT_MATVIEW": "relation",
                   "OBJECT_FOREIGN_TABLE": "relation", "OBJECT_SEQUENCE": "relation", "OBJECT_TYPE": "type",
                   "OBJECT_DOMAIN": "type", "OBJECT_FUNCTION": "function", "OBJECT_PROCEDURE": "function"}


def _reaches_others(linter: Linter, kind: str, names: list[str]) -> bool:
    """CASCADE drops something else: without a database, assume it does; with one, ask pg_depend
    (a lookup that fails counts as reaching; an object the database does not have reaches
    nothing that existed before the batch)."""
    lookup = getattr(linter.catalog, "has_dependents", None)
    what = _DEPENDENT_KIND.get(kind)
    if lookup is None or what is None:
        return True
    return any(lookup(what, name) is not False for name in names)


def _truncate(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    cascade = node.behavior == enums.DropBehavior.DROP_CASCADE
    old = [text for text, existed in (relation(linter, from_rangevar(r)) for r in node.relations or ()) if existed]
    if not old and not cascade:
        return []
    names = ", ".join(old) or ", ".join(str(from_rangevar(r)) for r in node.relations or ())
    return [finding("truncate", st, i, d,
                    f"TRUNCATE {names} deletes every row" + (" and every row referencing them" if cascade else ""),
                    "DELETE in batches with a WHERE, or keep a copy (guard's protective copy does)")]


def _ctes(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """Data-modifying statements inside WITH: judged like the same statements on their own."""
    out: list[Finding] = []
    with_clause = getattr(node, "withClause", None)
    for cte in getattr(with_clause, "ctes", None) or ():
        inner = cte.ctequery
        handler = {"DeleteStmt": _delete, "UpdateStmt": _update, "MergeStmt": _merge}.get(type(inner).__name__)
        if handler is not None:
            out.extend(handler(inner, st, linter, i, d))
        out.extend(_ctes(inner, st, linter, i, d))
    return out


def every_row(where: Any) -> bool:
    """No WHERE, or one that names no column, subquery, parameter or function (`WHERE true`,
    `WHERE 1 = 1`): constant, so it keeps every row unless it is plainly false."""
    from pglast import ast, enums
    from pglast.visitors import Visitor

    if where is None:
        return True
    if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.OR_EXPR:
        return any(every_row(arg) for arg in where.args or ())  # `1 = 1 OR id = 5`: every row
    if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR:
        return all(every_row(arg) for arg in where.args or ())
    varying: list[Any] = []

    class _Varying(Visitor):
        def visit(self, ancestors: Any, node: Any) -> None:
            if isinstance(node, (ast.ColumnRef, ast.SubLink, ast.FuncCall, ast.ParamRef)):
                varying.append(node)

    _Varying()(where)
    null = isinstance(where, ast.A_Const) and where.isnull  # WHERE NULL keeps no row
    return not varying and not null and _constant(where) is not False


def _constant(node: Any) -> object:
    """The value of a constant WHERE's node when plain (True/False, a literal), else None."""
    from pglast import ast, enums

    if isinstance(node, ast.A_Const):
        val = node.val
        return None if node.isnull else getattr(val, "boolval", getattr(val, "ival", getattr(val, "sval", None)))
    if isinstance(node, ast.TypeCast) and node.typeName is not None and node.typeName.names \
            and node.typeName.names[-1].sval == "bool":
        text = str(_constant(node.arg)).lower()
        return True if text in ("t", "true", "y", "yes", "on", "1") else False if text in (
            "f", "false", "n", "no", "off", "0") else None
    if isinstance(node, ast.BoolExpr):
        values = [_constant(a) for a in node.args or ()]
        if node.boolop == enums.BoolExprType.NOT_EXPR:
            return None if values[0] is None else not values[0]
        if node.boolop == enums.BoolExprType.AND_EXPR:
            return False if False in values else None if None in values else True
        return True if True in values else None if None in values else False
    if isinstance(node, ast.A_Expr) and node.kind == enums.A_Expr_Kind.AEXPR_OP:
        op = [getattr(n, "sval", "") for n in node.name or ()]
        left, right = _constant(node.lexpr), _constant(node.rexpr)
        if left is not None and right is not None and op in (["="], ["<>"], ["!="]):
            return (left == right) == (op == ["="])
    return None


def _where_words(node: Any) -> str:
    return "without WHERE" if node.whereClause is None else "with a constant WHERE"


def _every_row(node: Any, st: Statement, linter: Linter, i: int, d: str, rule: str, said: str,
               alternative: str) -> list[Finding]:
    """A DELETE or UPDATE ``node``: the findings of its CTEs and calls, and ``rule`` when it
    reaches every row of a table that existed (``said``: the sentence, ``{table}`` and
    ``{where}`` filled in)."""
    out = _ctes(node, st, linter, i, d) + _calls(node, st, linter, i, d)
    text, existed = relation(linter, from_rangevar(node.relation))
    if every_row(node.whereClause) and existed:
        out.append(finding(rule, st, i, d, said.format(table=text, where=_where_words(node)), alternative))
    return out


def _delete(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return _every_row(node, st, linter, i, d, "delete-without-where", "DELETE FROM {table} {where} deletes every row",
                      "add the WHERE you mean; use TRUNCATE deliberately if you mean all")


def _update(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return _every_row(node, st, linter, i, d, "update-without-where", "UPDATE {table} {where} overwrites every row",
                      "add the WHERE you mean; backfill large tables in batches")


def _merge(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    out = _ctes(node, st, linter, i, d) + _calls(node, st, linter, i, d)
    text, existed = relation(linter, from_rangevar(node.relation))
    actions = {c.commandType for c in node.mergeWhenClauses or ()}
    changes = actions & {enums.CmdType.CMD_DELETE, enums.CmdType.CMD_UPDATE}
    if changes and existed:
        out.append(finding("merge", st, i, d, f"MERGE INTO {text} deletes or overwrites the rows it matches",
                           "keep a copy of the matched rows first (guard's protective copy), or INSERT ... ON CONFLICT DO NOTHING"))
    return out


def _select(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    _search_path_call(node, linter)
    into = getattr(node, "intoClause", None)
    if into is not None:  # SELECT ... INTO creates its table
        linter.note_created(from_rangevar(into.rel), temporary=into.rel.relpersistence == "t")
    return _ctes(node, st, linter, i, d) + _calls(node, st, linter, i, d)


def _insert(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    out = _ctes(node, st, linter, i, d) + _calls(node, st, linter, i, d)
    conflict = node.onConflictClause
    if conflict is not None and conflict.action == enums.OnConflictAction.ONCONFLICT_UPDATE:
        text, existed = relation(linter, from_rangevar(node.relation))
        if existed:
            out.append(finding("upsert", st, i, d, f"INSERT INTO {text} ... ON CONFLICT DO UPDATE overwrites the rows "
                               "whose key it meets", "keep a copy of the table first (guard's protective copy), "
                               "or ON CONFLICT DO NOTHING"))
    return out


def _function_names(node: Any) -> list[str]:
    from pglast import ast
    from pglast.visitors import Visitor

    found: list[str] = []

    class _Calls(Visitor):
        def visit_FuncCall(self, ancestors: Any, call: Any) -> None:  # noqa: N802 (pglast's naming)
            found.append(".".join(p.sval for p in call.funcname))

    if isinstance(node, ast.Node):
        _Calls()(node)
    return found


def _calls(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    unknown = []
    for name in _function_names(node):
        short = name.rpartition(".")[2]
        kind = linter.catalog.function_kind(name) if linter.catalog is not None else None
        known = short in KNOWN_CALLS or short in NON_VOLATILE_FUNCTIONS or name.startswith("pg_catalog.")
        if kind == "builtin" or (kind is None and known):
            continue
        unknown.append(name)
    if not unknown:
        return []
    return [finding("effect-unknown", st, i, d, f"calls {', '.join(sorted(set(unknown)))}: what it changes is "
                    "invisible to the parser", "nothing to change: the run watches this file with the tripwire")]


def _inner(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """EXPLAIN ANALYZE and PREPARE hold a statement that runs (now, or at EXECUTE): judged as it."""
    query = node.query
    if type(node).__name__ == "ExplainStmt" and not any(
            getattr(o, "defname", "") == "analyze" and str(getattr(getattr(o, "arg", None), "sval", "true")).lower()
            not in ("false", "off", "0") for o in node.options or ()):
        return []  # plain EXPLAIN plans the statement without running it
    handler = HANDLERS.get(type(query).__name__)
    return handler(query, st, linter, i, d) if handler is not None else []


def _execute(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [finding("effect-unknown", st, i, d, f"EXECUTE {node.name}: the prepared statement's effect is judged "
                    "where it was prepared, if in this batch", "nothing to change: the run watches this file with the tripwire")]


def _rule(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [finding("effect-unknown", st, i, d, f"CREATE RULE {node.rulename}: its actions run in place of later "
                    "statements on the table", "nothing to change: the run watches this file with the tripwire")]


def _do(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [finding("effect-unknown", st, i, d, "a DO block: what it changes is invisible to the parser",
                    "nothing to change: the run watches this file with the tripwire")]


def _call(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    name = ".".join(p.sval for p in node.funccall.funcname)
    return [finding("effect-unknown", st, i, d, f"CALL {name}: what it changes is invisible to the parser",
                    "nothing to change: the run watches this file with the tripwire")]


def _search_path_call(node: Any, linter: Linter) -> None:
    """SELECT set_config('search_path', '...', false|true) changes the session's path."""
    from pglast import ast

    for target in getattr(node, "targetList", None) or ():
        call = getattr(target, "val", None)
        if not isinstance(call, ast.FuncCall) or not call.funcname or call.funcname[-1].sval != "set_config":
            continue
        args = call.args or ()
        values = [getattr(getattr(a, "val", None), "sval", None) for a in args[:2]]
        if len(values) == 2 and values[0] == "search_path" and values[1] is not None:
            linter.scope.set_search_path(values[1])


def _set(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    if node.kind == enums.VariableSetKind.VAR_RESET_ALL:
        linter.scope.reset_file()
        return []
    if (node.name or "").lower() != "search_path":
        return []
    if node.kind in (enums.VariableSetKind.VAR_SET_DEFAULT, enums.VariableSetKind.VAR_RESET):
        linter.scope.reset_file()
        return []
    parts = []
    for arg in node.args or ():
        value = getattr(getattr(arg, "val", None), "sval", None)
        if value is not None:
            parts.append('"' + value.replace('"', '""') + '"')
    linter.scope.set_search_path(", ".join(parts))
    return []


_RENAMED_BY_NAME = frozenset({*_ROUTINES, "OBJECT_SCHEMA", "OBJECT_TYPE", "OBJECT_DOMAIN"})


def _rename(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = enums.ObjectType(node.renameType).name
    if kind in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW") and node.relation is not None:
        old = from_rangevar(node.relation)
        existed = not linter.table_is_new(old)
        linter.scope.note_renamed(old, ObjectName(old.schema, node.newname))
        if existed:
            return [finding("rename", st, i, d, f"renaming {KIND_WORDS[kind].lower()} {old} to {node.newname} breaks "
                            "clients still using the old name", "add the new name, migrate clients, drop the old "
                            "name later (a view can bridge)")]
        return []
    if kind in _RENAMED_BY_NAME:  # callers name them: SQL, casts, RPC (PostgREST /rpc/<name>)
        what = KIND_WORDS.get(kind, kind.removeprefix("OBJECT_")).lower()
        shown = getattr(node, "subname", None) or object_name(kind, node.object)
        return [finding("rename", st, i, d, f"renaming {what} {shown} to {node.newname} breaks callers still using "
                        "the old name", "create the new one beside the old, move callers, drop the old later")]
    if kind in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT") and node.relation is not None:
        linter.forget_checks(str(linter.scope.resolve(from_rangevar(node.relation))))
    if kind == "OBJECT_COLUMN" and node.relation is not None:
        table = from_rangevar(node.relation)
        if not linter.table_is_new(table):
            return [finding("rename", st, i, d, f"renaming column {table}.{node.subname} to {node.newname} breaks "
                            "clients still using the old name", "add the new column, backfill, migrate clients, "
                            "drop the old one later (a generated column or view can bridge)")]
    return []


def _enum_rename(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """ALTER TYPE ... RENAME VALUE: every stored row now reads the new label; code writing or
    comparing the old one fails (invalid input value for enum)."""
    if node.oldVal is None:
        return []
    name = ".".join(p.sval for p in node.typeName)
    return [finding("rename", st, i, d, f"renaming value {node.oldVal!r} of enum {name} to {node.newVal!r} breaks "
                    "clients still writing or comparing the old label", "add the new value, move clients and rows "
                    "to it, stop using the old one (an enum value cannot be dropped)")]


def _set_schema(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = enums.ObjectType(node.objectType).name
    if kind not in ("OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW") or node.relation is None:
        return []
    old = from_rangevar(node.relation)
    existed = not linter.table_is_new(old)
    linter.scope.note_renamed(old, ObjectName(node.newschema, old.name))
    if not existed:
        return []
    return [finding("rename", st, i, d, f"moving {old} to schema {node.newschema} breaks clients using the old name",
                    "leave a view under the old name while clients move")]


def _drop_owned(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """DROP OWNED BY: every object the roles own in this database goes, tables with their rows
    (DROP OWNED ref. page); which ones only the catalog knows at the time, so no copy is made."""
    roles = ", ".join(getattr(r, "rolename", None) or "CURRENT_USER" for r in node.roles or ())
    return [finding("drop-owned", st, i, d,
                    f"DROP OWNED BY {roles} drops every table, view, function... they own here, rows included",
                    "DROP each object by name (guard copies a dropped table), or REASSIGN OWNED first")]


def _create_as(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    rel = node.into.rel
    linter.note_created(from_rangevar(rel), temporary=rel.relpersistence == "t", if_not_exists=node.if_not_exists)
    return []


HANDLERS: dict[str, Handler] = {
    "DropStmt": _drop,
    "TruncateStmt": _truncate,
    "DeleteStmt": _delete,
    "UpdateStmt": _update,
    "MergeStmt": _merge,
    "SelectStmt": _select,
    "InsertStmt": _insert,
    "DoStmt": _do,
    "CallStmt": _call,
    "VariableSetStmt": _set,
    "RenameStmt": _rename,
    "AlterEnumStmt": _enum_rename,
    "AlterObjectSchemaStmt": _set_schema,
    "CreateTableAsStmt": _create_as,
    "ExplainStmt": _inner,
    "PrepareStmt": _inner,
    "ExecuteStmt": _execute,
    "RuleStmt": _rule,
    "DropOwnedStmt": _drop_owned,
}
