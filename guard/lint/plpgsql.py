"""The SQL a DO block runs, as PL/pgSQL's own parser (pglast.parse_plpgsql) sees it.

Tools generate DO blocks around plain DDL to make it idempotent, e.g. drizzle-kit's
`DO $$ BEGIN ALTER TABLE ... ADD CONSTRAINT ... FOREIGN KEY ...; EXCEPTION WHEN duplicate_object
THEN null; END $$;`. The statement inside runs in the migration's transaction and takes the same
locks as on its own, so the lint judges it as such (the DO block stays effect-unknown too: a
loop, a condition or a dynamic EXECUTE may do more). Only static SQL and EXECUTE of a string
literal are read; anything built at run time is left to the runtime tripwire.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def body_statements(node: Any) -> list[str]:
    """The SQL statements a plpgsql DoStmt runs, in order ([] for another language, or a body
    PL/pgSQL cannot parse)."""
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
    return [sql for sql in _queries(parsed) if sql]


def _queries(tree: Any) -> Iterator[str]:
    """Walk the PL/pgSQL JSON in order: PLpgSQL_stmt_execsql's query, and a dynamic EXECUTE's
    query when it is one string literal."""
    if isinstance(tree, list):
        for item in tree:
            yield from _queries(item)
        return
    if not isinstance(tree, dict):
        return
    for key, value in tree.items():
        if key == "PLpgSQL_stmt_execsql":
            yield value.get("sqlstmt", {}).get("PLpgSQL_expr", {}).get("query", "")
        elif key == "PLpgSQL_stmt_dynexecute":
            yield _literal(value.get("query", {}).get("PLpgSQL_expr", {}).get("query", ""))
        else:
            yield from _queries(value)


def _literal(expr: str) -> str:
    """The text of `expr` when it is a single string literal ('...'), else ""."""
    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(f"SELECT {expr}"))
        target = tree["stmts"][0]["stmt"]["SelectStmt"]["targetList"]
    except (parser.ParseError, KeyError, IndexError):
        return ""
    if len(target) != 1:
        return ""
    const = target[0].get("ResTarget", {}).get("val", {}).get("A_Const", {})
    return str(const.get("sval", {}).get("sval", ""))
