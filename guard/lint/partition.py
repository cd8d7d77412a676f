"""ATTACH PARTITION without a scan: a valid CHECK of the partition already proves its bound.

PostgreSQL scans the table being attached for rows outside the partition's bound, under ACCESS
EXCLUSIVE, unless its valid CHECK constraints (and NOT NULL columns) imply the partition
constraint (docs, ALTER TABLE ... ATTACH PARTITION: "if a valid CHECK constraint ... proves",
the scan is skipped; tablecmds.c QueuePartitionConstraintValidation ->
PartConstraintImpliedByRelConstraint -> predicate_implied_by). The recommended pattern is
exactly that: ADD a CHECK matching the bound NOT VALID, VALIDATE it, then ATTACH.

This module proves the common forms of that implication, conservatively (anything it cannot
read is "not proven", i.e. a scan): a single-column RANGE bound implied by comparisons of the key
with constants (`k >= lo AND k < hi`, BETWEEN, a tighter constant), a LIST bound without NULL
implied by `k IN (...)` / `k = ANY (ARRAY[...])` / `k = c` with values among the bound's. The
proof is weak implication (predicate_implied_by(..., weak=true): a CHECK passes on NULL), so
`k IS NOT NULL` must be stated or the column NOT NULL, as the corpus's trace shows. Constants are compared as
numbers for numeric keys and as ISO dates/times for date and timestamp keys; other key types
(text: collation order) are never proven.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from msgspec import Struct, field

NUMERIC = frozenset({"int2", "int4", "int8", "numeric", "float4", "float8", "smallint", "integer", "bigint"})
TEMPORAL = frozenset({"date", "timestamp", "timestamptz"})
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$")


class PartitionFacts(Struct, frozen=True):
    """What the proof needs: the parent's strategy ('r' range, 'l' list, 'h' hash), its key
    columns with their pg_type names, the partition's valid CHECK expressions (SQL text) and
    its NOT NULL columns."""

    strategy: str
    key: tuple[tuple[str, str], ...]
    checks: tuple[str, ...] = ()
    not_null: frozenset[str] = field(default_factory=frozenset)


def _compare(type_name: str) -> Callable[[str, str], int | None]:
    def numbers(a: str, b: str) -> int | None:
        if type_name in ("int2", "int4", "int8") and not (a.lstrip("-").isdigit() and b.lstrip("-").isdigit()):
            return None  # `k >= 1.5` on an integer key is a numeric comparison: PostgreSQL cannot use it
        try:
            x, y = Decimal(a), Decimal(b)
        except InvalidOperation:
            return None
        return (x > y) - (x < y)

    def instants(a: str, b: str) -> int | None:
        from datetime import datetime

        if not (_ISO.match(a) and _ISO.match(b)):
            return None
        x, y = datetime.fromisoformat(a), datetime.fromisoformat(b)
        return (x > y) - (x < y)

    if type_name in NUMERIC:
        return numbers
    if type_name in TEMPORAL:
        return instants
    return lambda a, b: None


def _const(node: Any) -> str | None:
    """The text of a constant (A_Const, possibly cast), None for anything else."""
    from pglast import ast

    while isinstance(node, ast.TypeCast):
        node = node.arg
    if not isinstance(node, ast.A_Const) or node.isnull:
        return None
    value = node.val
    for attr in ("sval", "ival", "fval"):
        if hasattr(value, attr):
            return str(getattr(value, attr))
    return None


def _column(node: Any) -> str | None:
    from pglast import ast

    fields: Any = getattr(node, "fields", None) or ()
    if isinstance(node, ast.ColumnRef) and len(fields) == 1 and hasattr(fields[0], "sval"):
        return str(fields[0].sval)
    return None


_FLIP = {">=": "<=", ">": "<", "<=": ">=", "<": ">", "=": "="}


def _conjuncts(expr: Any) -> list[Any]:
    from pglast import ast, enums

    if isinstance(expr, ast.BoolExpr) and expr.boolop == enums.BoolExprType.AND_EXPR:
        args: Any = expr.args or ()
        return [c for arg in args for c in _conjuncts(arg)]
    return [expr]


def _facts(node: Any, key: str) -> list[tuple[str, Any]]:
    """(operator, value) facts about column `key` one conjunct states: ('>=', '5'), ('in',
    ['a', 'b']), ('not null', None); [] when it says nothing readable about it."""
    from pglast import ast, enums

    expr: Any = node
    if isinstance(expr, ast.NullTest) and expr.nulltesttype == enums.NullTestType.IS_NOT_NULL \
            and _column(expr.arg) == key:
        return [("not null", None)]
    if not isinstance(expr, ast.A_Expr):
        return []
    op = expr.name[-1].sval if expr.name else ""
    right: Any = expr.rexpr
    if expr.kind == enums.A_Expr_Kind.AEXPR_BETWEEN and _column(expr.lexpr) == key:
        low, high = (_const(v) for v in right)
        return [f for f in ((">=", low), ("<=", high)) if f[1] is not None]
    if expr.kind == enums.A_Expr_Kind.AEXPR_IN and op == "=" and _column(expr.lexpr) == key:
        values = [_const(v) for v in right]
        return [("in", values)] if None not in values else []
    if expr.kind == enums.A_Expr_Kind.AEXPR_OP_ANY and op == "=" and _column(expr.lexpr) == key \
            and isinstance(expr.rexpr, ast.A_ArrayExpr):
        values = [_const(v) for v in expr.rexpr.elements or ()]
        return [("in", values)] if None not in values else []
    if expr.kind != enums.A_Expr_Kind.AEXPR_OP or op not in _FLIP:
        return []
    if _column(expr.lexpr) == key and _const(expr.rexpr) is not None:
        fact = (op, _const(expr.rexpr))
    elif _column(expr.rexpr) == key and _const(expr.lexpr) is not None:
        fact = (_FLIP[op], _const(expr.lexpr))
    else:
        return []
    return [("in", [fact[1]])] if op == "=" else [fact]


def _parse(text: str) -> Any:
    """The expression of a CHECK as pg_get_constraintdef prints it ("CHECK (...)") or a bare one."""
    import pglast

    body = text.strip()
    if body.upper().startswith("CHECK"):
        body = body[5:].strip()
    body = re.sub(r"\s+NOT VALID$", "", body)
    try:
        select: Any = pglast.parse_sql(f"SELECT 1 WHERE {body}")[0].stmt
        return select.whereClause
    except (pglast.parser.ParseError, IndexError, AttributeError):
        return None


def bound_proven(facts: PartitionFacts, bound: Any) -> bool:
    """Whether the partition's CHECKs imply `bound` (a pglast PartitionBoundSpec) as PostgreSQL's
    predicate proof would; False when unsure."""
    if len(facts.key) != 1 or bound.is_default or facts.strategy not in ("r", "l"):
        return False
    key, type_name = facts.key[0]
    compare = _compare(type_name)
    stated = [f for text in facts.checks if (expr := _parse(text)) is not None
              for c in _conjuncts(expr) for f in _facts(c, key)]
    # PartConstraintImpliedByRelConstraint asks for weak implication (a CHECK passes on NULL):
    # the key's IS NOT NULL must be stated, or the column NOT NULL; a strict comparison is not enough
    not_null = key in facts.not_null or any(op == "not null" for op, _ in stated)
    if not not_null:
        return False
    if facts.strategy == "l":
        values = [_const(v) for v in bound.listdatums or ()]
        if not values or None in values:
            return False  # a bound holding NULL: its constraint is not a plain IN
        allowed = [v for op, vs in stated if op == "in" for v in vs]
        return bool(allowed) and all(a in values for a in allowed)  # the same literal: the same value
    return _range_lower(stated, bound.lowerdatums, compare) and _range_upper(stated, bound.upperdatums,
                                                                                          compare)


def _bound_value(datums: Sequence[Any] | None) -> tuple[bool, str | None]:
    """(unbounded, value) of a single-column range bound (MINVALUE/MAXVALUE: unbounded)."""
    datum = (datums or [None])[0]
    if _column(datum) in ("minvalue", "maxvalue"):
        return True, None
    return False, _const(datum)


def _range_lower(stated: list[tuple[str, Any]], datums: Any, compare: Callable[[str, str], int | None]) -> bool:
    unbounded, low = _bound_value(datums)
    if unbounded:
        return True
    if low is None:
        return False
    return any(op in (">=", ">") and (c := compare(v, low)) is not None and c >= 0 for op, v in stated)


def _range_upper(stated: list[tuple[str, Any]], datums: Any, compare: Callable[[str, str], int | None]) -> bool:
    unbounded, high = _bound_value(datums)
    if unbounded:
        return True
    if high is None:
        return False
    return any((op == "<" and (c := compare(v, high)) is not None and c <= 0)
               or (op == "<=" and (c := compare(v, high)) is not None and c < 0) for op, v in stated)
