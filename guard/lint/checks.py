"""The names PostgreSQL gives CHECK constraints that a migration declares without one, and the
columns a CHECK references: shared by the lint's ALTER TABLE rules (guard.lint.alter) and its
reading of what earlier migration files declare (guard.lint.declared)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def check_columns(expr: Any) -> frozenset[str]:
    """The column names a CHECK expression references (its ColumnRef nodes)."""
    from pglast import ast
    from pglast.visitors import Visitor

    found: set[str] = set()

    class _Refs(Visitor):
        def visit_ColumnRef(self, _ancestors: Any, node: Any) -> None:  # noqa: N802
            fields = [getattr(f, "sval", None) for f in node.fields or ()]
            if fields and fields[-1]:
                found.add(str(fields[-1]))

    _Refs()(ast.SelectStmt(whereClause=expr))
    return frozenset(found)


def check_name(table: str, con: Any, taken: Iterable[str]) -> str:
    """The name PostgreSQL gives a CHECK: its own, else `<table>_<column>_check` when it references
    one column, `<table>_check` otherwise, with 1, 2, ... appended while taken (heap.c
    AddRelationNewConstraints, ChooseConstraintName; names past 63 bytes differ, and are then
    simply unknown)."""
    if con.conname:
        return str(con.conname)
    columns = check_columns(con.raw_expr)
    base = f"{table}_{next(iter(columns))}_check" if len(columns) == 1 else f"{table}_check"
    used, name, n = set(taken), base, 0
    while name in used:
        n += 1
        name = f"{base}{n}"
    return name
