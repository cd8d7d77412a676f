"""The SQL a DO block runs, as PL/pgSQL's own parser (pglast.parse_plpgsql) sees it.

Tools generate DO blocks around plain DDL to make it idempotent, e.g. drizzle-kit's
`DO $$ BEGIN ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ...; EXCEPTION WHEN duplicate_object
THEN null; END $$;`. The statement inside runs in the migration's transaction and takes the same
locks as on its own, so the lint judges it as such (the DO block stays effect-unknown too: a
loop, a condition or a dynamic EXECUTE may do more). Static SQL is read, and an EXECUTE as far
as its string is made of constants (a literal, format() of constants, `||`): the parts known
only at run time stand as PLACEHOLDER, so `EXECUTE format('DROP TABLE %I', t)` is still a DROP
TABLE, of a table named at run time. The runtime tripwire measures what the block really did.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from msgspec import Struct

# Stands for a part of an EXECUTE's SQL known only at run time (a variable, a call): a name
# no migration uses, so that the statement's shape can still be judged.
PLACEHOLDER = "guard_runtime_name"


class BodyStatement(Struct, frozen=True):
    """A statement a DO block runs. dynamic: built at run time (EXECUTE of a concatenation or of
    format() with a non-constant argument): the parts not known are PLACEHOLDER."""

    sql: str
    dynamic: bool = False


def body_statements(node: Any, *, keep_unknown: bool = False) -> list[BodyStatement]:
    """The SQL statements a plpgsql DoStmt runs, in order ([] for another language, or a body
    PL/pgSQL cannot parse). An EXECUTE of a string literal, of format() with constant
    arguments, or of a concatenation of them is read; the non-constant parts of one become
    PLACEHOLDER (dynamic=True); an EXECUTE of a bare variable is left out (unknown), or with
    keep_unknown kept as BodyStatement("", dynamic=True)."""
    import pglast

    args = {getattr(a, "defname", ""): getattr(getattr(a, "arg", None), "sval", None) for a in node.args or ()}
    body, language = args.get("as"), (args.get("language") or "plpgsql").lower()
    if not body or language != "plpgsql":
        return []
    tag = "$guard_do$"
    while tag in body:
        tag = tag[:-1] + "_$"
    try:
        parsed = pglast.parse_plpgsql(f"CREATE FUNCTION guard_do() RETURNS void LANGUAGE plpgsql AS {tag}{body}{tag}")
    except Exception:  # noqa: BLE001 - pglast raises its own parse errors: the block stays unknown
        return []
    function = parsed[0].get("PLpgSQL_function", {}) if parsed and isinstance(parsed[0], dict) else {}
    consts = _constants(function)
    return [s for s in _queries(parsed, consts) if s.sql or (keep_unknown and s.dynamic)]


def _targets(tree: Any) -> Iterator[int]:
    """Every varno the body assigns (`:=`, a FOR loop's variable, INTO)."""
    if isinstance(tree, list):
        for item in tree:
            yield from _targets(item)
    elif isinstance(tree, dict):
        for key, value in tree.items():
            if key in ("varno", "target") and isinstance(value, int):
                yield value
            else:
                yield from _targets(value)


def _constants(function: dict[str, Any]) -> dict[str, str]:
    """Variables whose value is a constant text: declared with a default made of constants and
    never assigned in the body (`DECLARE t text := 'items';`), by name."""
    assigned = set(_targets(function.get("action", {})))
    out: dict[str, str] = {}
    for varno, datum in enumerate(function.get("datums", [])):
        var = datum.get("PLpgSQL_var") if isinstance(datum, dict) else None
        query = ((var or {}).get("default_val") or {}).get("PLpgSQL_expr", {}).get("query")
        if var is None or query is None or varno in assigned:
            continue
        found = _dynamic(query, {})
        if found.sql and not found.dynamic:
            out[var["refname"]] = found.sql
    return out


def _queries(tree: Any, consts: dict[str, str]) -> Iterator[BodyStatement]:
    """Walk the PL/pgSQL JSON in order: PLpgSQL_stmt_execsql's query, and a dynamic EXECUTE's
    query as far as it is made of constants (and variables holding one)."""
    if isinstance(tree, list):
        for item in tree:
            yield from _queries(item, consts)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == "PLpgSQL_stmt_execsql":
            yield BodyStatement(value.get("sqlstmt", {}).get("PLpgSQL_expr", {}).get("query", ""))
        elif key == "PLpgSQL_stmt_perform":  # PERFORM f(): PL/pgSQL runs it as SELECT f()
            yield BodyStatement(value.get("expr", {}).get("PLpgSQL_expr", {}).get("query", ""))
        elif key == "PLpgSQL_stmt_dynexecute":
            yield _dynamic(value.get("query", {}).get("PLpgSQL_expr", {}).get("query", ""), consts)
        else:
            yield from _queries(value, consts)


def _dynamic(expr: str, consts: dict[str, str]) -> BodyStatement:
    """The SQL an EXECUTE expression builds, as far as constants tell (see body_statements)."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(f"SELECT {expr}"))
        target = tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"]
    except (parser.ParseError, KeyError, IndexError):
        return BodyStatement("", dynamic=True)
    if len(target) != 1:
        return BodyStatement("", dynamic=True)
    text, known = _text(target[0].get("ResTarget", {}).get("val", {}), consts)
    if text is None or text.strip() == PLACEHOLDER:
        return BodyStatement("", dynamic=True)
    return BodyStatement(text, dynamic=not known)


def _const(node: dict[str, Any], consts: dict[str, str]) -> str | None:
    while "TypeCast" in node:
        node = node["TypeCast"].get("arg", {})
    fields = node.get("ColumnRef", {}).get("fields", [])
    if len(fields) == 1 and fields[0].get("String", {}).get("sval") in consts:
        return consts[fields[0]["String"]["sval"]]
    const = node.get("A_Const")
    if const is None or const.get("isnull"):
        return None
    for kind, field_name in (("sval", "sval"), ("ival", "ival"), ("fval", "fval"), ("boolval", "boolval")):
        if kind in const:
            return str(const[kind].get(field_name, 0 if kind == "ival" else ""))
    return None


def _text(node: dict[str, Any], consts: dict[str, str]) -> tuple[str | None, bool]:
    """(text, fully known) of a string expression: a constant (or a variable holding one),
    `a || b`, format(...), concat(...), concat_ws(...); any other part is PLACEHOLDER."""
    const = _const(node, consts)
    if const is not None:
        return const, True
    if "A_Expr" in node and [n.get("String", {}).get("sval") for n in node["A_Expr"].get("name", [])] == ["||"]:
        left, lknown = _text(node["A_Expr"].get("lexpr", {}), consts)
        right, rknown = _text(node["A_Expr"].get("rexpr", {}), consts)
        return (left or "") + (right or ""), lknown and rknown
    call = node.get("FuncCall")
    name = [n.get("String", {}).get("sval") for n in call.get("funcname", [])][-1:] if call else []
    args = call.get("args", []) if call else []
    if name == ["format"]:
        template = _const(args[0], consts) if args else None
        if template is not None:
            return _format(template, [_const(a, consts) for a in args[1:]])
    elif name in (["quote_ident"], ["quote_literal"]) and len(args) == 1 and _const(args[0], consts) is not None:
        return _format("%I" if name == ["quote_ident"] else "%L", [_const(args[0], consts)])
    elif name in (["concat"], ["concat_ws"]) and args:
        parts = [_text(a, consts) for a in args]
        glue = (parts.pop(0)[0] or "") if name == ["concat_ws"] else ""
        return glue.join(p or "" for p, _ in parts), all(k for _, k in parts)
    return PLACEHOLDER, False


_SPEC = re.compile(r"%(?:(\d+)\$)?-?\d*([sIL%])")


def _format(template: str, values: list[str | None]) -> tuple[str | None, bool]:
    """format(template, values...) as PostgreSQL's format() renders it (%s, %I, %L, %%, %n$),
    an unknown value (None) as PLACEHOLDER (docs: "format" in String Functions)."""
    from guard.lint.names import quote_ident

    out, known, position = [], True, 0
    last = 0
    for match in _SPEC.finditer(template):
        out.append(template[last:match.start()])
        last = match.end()
        kind = match.group(2)
        if kind == "%":
            out.append("%")
            continue
        index = int(match.group(1)) - 1 if match.group(1) else position
        position = index + 1
        value = values[index] if index < len(values) else None
        if value is None:
            known = False
            out.append("'?'" if kind == "L" else PLACEHOLDER)
        elif kind == "I":
            out.append(".".join(quote_ident(p) for p in [value]))
        elif kind == "L":
            out.append("'" + value.replace("'", "''") + "'")
        else:
            out.append(value)
    out.append(template[last:])
    return "".join(out), known
