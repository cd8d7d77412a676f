"""Locks a file already holds when a later statement of it reads every row.

PostgreSQL keeps every lock to the end of the transaction (docs 13.3, "Explicit Locking"), and
guard runs each file in one transaction: after `ALTER TABLE t ADD COLUMN c int` (ACCESS
EXCLUSIVE, from guard.lint.locks), a backfill `UPDATE t SET c = 0 WHERE c IS NULL` in the same
file reads all of t while nobody can read or write it; the same for VALIDATE CONSTRAINT (its
own SHARE UPDATE EXCLUSIVE does not matter then), DELETE, INSERT ... SELECT, and for weaker
locks that still block writes (CREATE INDEX: SHARE; CREATE TRIGGER, a FOREIGN KEY: SHARE ROW
EXCLUSIVE). The lint records per file, from the lock table, the strongest lock taken on each
table that existed before the batch; a statement that then scans such a table is locking.
A WHERE pinning a column to constants (`id = 5`, `id IN (1, 2)`) counts as a point lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.lint import locks
from guard.lint.names import from_rangevar
from guard.lint.ruleset import finding

if TYPE_CHECKING:
    from guard.lint import Finding, Linter
    from guard.migrations.files import Statement


def hold(linter: Linter, key: str, mode: str) -> None:
    """Record that the file's transaction now holds `mode` on the table `key` (resolved text)."""
    linter.held[key] = locks.strongest([mode, *([linter.held[key]] if key in linter.held else [])]) or mode


def blocking(linter: Linter, key: str) -> str | None:
    """The lock blocking writes the file already holds on `key`, else None."""
    mode = linter.held.get(key)
    return mode if mode in locks.BLOCKS_WRITES else None


def key_of(linter: Linter, rel: Any) -> str:
    return str(linter.scope.resolve(from_rangevar(rel)))


def _point_lookup(where: Any) -> bool:
    """WHERE pins a column to constants at its top level (`col = 1`, `col IN (1, 2)`, under AND)."""
    from pglast import ast, enums

    if isinstance(where, ast.BoolExpr) and where.boolop == enums.BoolExprType.AND_EXPR:
        return any(_point_lookup(arg) for arg in where.args or ())
    if not isinstance(where, ast.A_Expr):
        return False
    sides = (where.lexpr, where.rexpr)
    if where.kind == enums.A_Expr_Kind.AEXPR_OP and [getattr(n, "sval", "") for n in where.name or ()] == ["="]:
        return any(isinstance(s, ast.ColumnRef) for s in sides) and any(isinstance(s, ast.A_Const) for s in sides)
    if where.kind == enums.A_Expr_Kind.AEXPR_OP_ANY and isinstance(where.rexpr, ast.A_ArrayExpr):
        values = where.rexpr.elements or ()  # col = ANY (ARRAY[1, 2])
        return isinstance(where.lexpr, ast.ColumnRef) and bool(values) and all(isinstance(v, ast.A_Const)
                                                                            for v in values)
    if where.kind == enums.A_Expr_Kind.AEXPR_IN:
        values = where.rexpr if isinstance(where.rexpr, tuple) else ()
        return isinstance(where.lexpr, ast.ColumnRef) and bool(values) and all(isinstance(v, ast.A_Const)
                                                                            for v in values)
    return False


def scans(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """UPDATE / DELETE / INSERT ... SELECT (also inside WITH) reading a table the file already
    locked. MERGE is left out: it reads its source and finds target rows by the join (an index on
    the key, often), as the trace shows."""
    from pglast import ast

    targets: list[Any] = []
    if isinstance(node, (ast.UpdateStmt, ast.DeleteStmt)) and not _point_lookup(node.whereClause):
        targets.append(node.relation)
    elif isinstance(node, ast.InsertStmt) and isinstance(node.selectStmt, ast.SelectStmt) \
            and not _point_lookup(node.selectStmt.whereClause):
        targets.extend(r for r in node.selectStmt.fromClause or () if isinstance(r, ast.RangeVar))
    out = []
    for cte in getattr(getattr(node, "withClause", None), "ctes", None) or ():  # WITH u AS (UPDATE ...)
        out.extend(scans(cte.ctequery, st, linter, i, d))
    for rel in targets:
        mode = blocking(linter, key_of(linter, rel))
        if mode is not None:
            what = type(node).__name__.removesuffix("Stmt").upper()
            out.append(finding("scan-under-lock", st, i, d, f"{what} reads every row of {from_rangevar(rel)} "
                               f"while this file's transaction holds {mode} on it (taken by an earlier "
                               "statement): writers wait for the whole scan",
                               "move the backfill to its own migration file, in batches"))
    return out


def _lock(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """LOCK [TABLE] [ONLY] t, ... [IN mode MODE] [NOWAIT]: its mode (parsenodes LockStmt.mode is
    lockdefs.h's number, 1 = ACCESS SHARE; no mode = ACCESS EXCLUSIVE), held to the end of the
    transaction (LOCK ref. page: "there is no UNLOCK TABLE command"). A mode blocking writes on
    a table that existed before is a finding: it blocks them through the rest of the file, and
    while it waits for the lock every later query of the table queues behind it."""
    mode = locks.MODES[node.mode - 1]
    out = []
    for rel in node.relations or ():
        if linter.table_is_new(from_rangevar(rel)):
            continue
        hold(linter, key_of(linter, rel), mode)
        if mode in locks.BLOCKS_WRITES:
            blocked = "reads and writes" if mode in locks.BLOCKS_READS else "writes"
            out.append(finding("lock-table", st, i, d, f"LOCK {'ONLY ' if not rel.inh else ''}{from_rangevar(rel)} "
                               f"takes {mode} (blocks its {blocked}) and holds it until the file's transaction "
                               "ends, through every later statement of the file",
                               "drop the LOCK (each statement takes the lock it needs), or keep the file to the "
                               "statements that need it, with a short lock_timeout"))
    return out


def _trigger(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if not linter.table_is_new(from_rangevar(node.relation)):
        hold(linter, key_of(linter, node.relation), locks.STATEMENTS["CREATE TRIGGER"].lock)
    return []


HANDLERS = {"LockStmt": _lock, "CreateTrigStmt": _trigger}
