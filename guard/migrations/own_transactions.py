"""Files that manage their own transactions, and files run statement by statement.

A file's BEGIN/COMMIT decide how psql applies it, so they decide how guard does:

- "plain" (no transaction control, SAVEPOINTs aside): guard's own transaction, as ``psql -1``.
- "wrapped" (the first statement is BEGIN/START TRANSACTION, the last COMMIT/END, nothing in
  between ends the transaction): one transaction, the file's own BEGIN (with its options)
  opening it and guard's history row committing with it instead of the file's COMMIT. The
  Supabase documentation's realtime snippet (``begin; drop publication ...; commit;``) is one.
- "several" (anything else: two transactions, statements outside them, ROLLBACK, COMMIT AND
  CHAIN): every statement in turn on the session, as ``psql -f`` without ``-1`` runs it, so
  each COMMIT (and each statement outside a transaction) takes effect when the file says.
  The history row follows in a transaction of its own. A failure after something committed
  is a partial application (exit 4) naming what committed.

Files with statements PostgreSQL refuses in a transaction block (CREATE INDEX CONCURRENTLY
& co.) run statement by statement too (apply_statementwise), with the same honest account.
A file that opens a transaction and never ends it fails: its open transaction is rolled back,
as psql's session ending would roll it back (the Supabase CLI would record the file as
applied while the server rolls it back), and the file is not recorded.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.migrations.apply_state import (
    ApplyContext,
    count,
    error_from,
    interrupted,
    ms,
    note_slow,
    rollback_quietly,
)
from guard.migrations.session import RESET_SESSION

if TYPE_CHECKING:
    from collections.abc import Sequence

    from guard.migrations.files import MigrationFile, Statement
    from guard.report.model import MigrationResult

TRANSACTION_STMT = "TransactionStmt"
_OPEN = frozenset({"TRANS_STMT_BEGIN", "TRANS_STMT_START"})
_END = frozenset({"TRANS_STMT_COMMIT", "TRANS_STMT_ROLLBACK", "TRANS_STMT_PREPARE"})


class TransactionShape(Struct, frozen=True):
    """How a file handles transactions: none of its own, one BEGIN..COMMIT around it, or several."""

    kind: str  # "plain" | "wrapped" | "several"
    begin: int | None = None  # wrapped: index of the file's own BEGIN
    commit: int | None = None  # wrapped: index of its COMMIT


def _transaction_kind(statement: Statement) -> tuple[str, bool]:
    """(TransactionStmtKind name, AND CHAIN) of a TransactionStmt."""
    import json

    from pglast import parser

    node = json.loads(parser.parse_sql_json(statement.sql))["stmts"][0]["stmt"]["TransactionStmt"]
    return str(node.get("kind", "")), bool(node.get("chain"))


def transaction_shape(statements: Sequence[Statement]) -> TransactionShape:
    """How a file with these statements is applied (see the module's docstring)."""
    control = [(i, *_transaction_kind(s)) for i, s in enumerate(statements) if s.kind == TRANSACTION_STMT]
    ends = [(i, k, chain) for i, k, chain in control if k in _OPEN or k in _END]
    if not ends:
        return TransactionShape("plain")
    executable = [i for i, s in enumerate(statements) if s.kind]
    if (len(ends) == 2 and ends[0][1] in _OPEN and ends[1][1] == "TRANS_STMT_COMMIT" and not ends[1][2]
            and ends[0][0] == executable[0] and ends[1][0] == executable[-1]):
        return TransactionShape("wrapped", begin=ends[0][0], commit=ends[1][0])
    return TransactionShape("several")


def several(files: Sequence[MigrationFile]) -> list[MigrationFile]:
    """Files of ``files`` that need their own transactions ("several"): they cannot be part of
    one transaction for the whole release (migrations.transaction: all)."""
    return [f for f in files if any(s.kind == TRANSACTION_STMT for s in f.statements)
            and transaction_shape(f.statements).kind == "several"]


def apply_statementwise(run: ApplyContext, file: MigrationFile, result: MigrationResult) -> bool:
    """``file``'s statements one at a time on the session, as psql runs a file, then its
    history row in a transaction of its own. False when it failed (``result`` says why)."""
    import psycopg
    from psycopg.pq import TransactionStatus

    conn, outcome = run.conn, run.outcome
    started = time.perf_counter()
    run.progress(f"applying {result.file} statement by statement ({count(len(file.statements))})")
    committed: list[Statement] = []  # statements whose effect has committed
    in_block: list[Statement] = []  # statements of the file's open transaction
    conn.execute("; ".join(run.session_settings))  # the session is clean: apply_pending sees to it
    try:
        for index, statement in enumerate(file.statements):
            if not statement.kind:
                continue
            try:
                alone = _watched(run, file, conn, statement)
                replacement = run.before(conn, statement, f"{result.file}:{statement.line}")
                conn.execute(replacement or statement.sql)
                _watched_after(run, file, conn, statement, alone)
            except psycopg.Error as exc:
                result.status = "failed"
                result.error = error_from(exc, result.file, statement, index)
                result.duration_ms = ms(started)
                rollback_quietly(conn)
                _partial(run, result, committed, statement)
                outcome.connection_lost = conn.broken or conn.closed
                return False
            except KeyboardInterrupt as exc:
                result.duration_ms = ms(started)
                rollback_quietly(conn)
                interrupted(outcome, result, exc)
                _partial(run, result, committed, statement)
                return False
            in_block.append(statement)
            if conn.pgconn.transaction_status == TransactionStatus.IDLE:
                committed.extend(in_block)  # outside a block, or the block's COMMIT
                in_block.clear()
        if in_block:
            return _unterminated(run, file, result, committed, in_block[0], started)
        if run.before_commit is not None and not _verified(run, file, result, bool(committed)):
            return False  # guard:verify after its last statement: its effect stays, exit 4 (issue #19)
        if not _recorded(run, file, result, bool(committed)):
            return False
    finally:
        if not (conn.broken or conn.closed) and conn.pgconn.transaction_status == TransactionStatus.IDLE:
            conn.execute(RESET_SESSION)  # the timeouts, and whatever the file left
    result.status = "applied"
    result.duration_ms = ms(started)
    outcome.committed.append(file.version)
    note_slow(run.progress, result)
    return True


def _recorded(run: ApplyContext, file: MigrationFile, result: MigrationResult, changed: bool) -> bool:
    """The history row and journal entry of a file that ran statement by statement, in a
    transaction of their own; False when they failed (a rule or trigger discarded one:
    ApplyContext.landed), the file's effect then left as it is (exit 4)."""
    import psycopg

    try:
        with run.conn.transaction():
            run.record(file)
    except psycopg.Error as exc:
        result.status, result.error, run.outcome.failed = "failed", error_from(exc, result.file, None, None), result
        run.outcome.changed_outside_transaction = changed
        if run.conn.broken or run.conn.closed:  # lost at COMMIT: only the history can tell
            result.status = "unknown"
            run.outcome.connection_lost = run.outcome.unknown = True
        return False
    return True


def _verified(run: ApplyContext, file: MigrationFile, result: MigrationResult, changed: bool) -> bool:
    """guard:verify lines of a file that ran statement by statement, after its last statement."""
    import psycopg

    assert run.before_commit is not None
    try:
        with run.conn.transaction():
            run.before_commit(run.conn, file)
    except psycopg.Error as exc:
        result.status, result.error, run.outcome.failed = "failed", error_from(exc, result.file, None, None), result
        run.outcome.changed_outside_transaction = changed
        return False
    return True


def _watched(run: ApplyContext, file: MigrationFile, conn: Any, statement: Statement) -> bool:
    """The safety net's tripwire (guard/tripwire.py) around each transaction of a file run
    statement by statement: checked before the file's COMMIT of a block; a statement outside
    any block that may run in one is wrapped in a transaction of its own with the snapshot and
    the check (psql's implicit transaction, made explicit). True when it was wrapped."""
    from psycopg.pq import TransactionStatus

    tripwire = run.tripwire
    if tripwire is None or not tripwire.armed(file):
        return False
    if conn.pgconn.transaction_status == TransactionStatus.IDLE:
        if statement.kind == TRANSACTION_STMT or not _may_run_in_block(statement):
            return False
        conn.execute("BEGIN")
        tripwire.start(conn, file)
        return True
    if statement.kind == TRANSACTION_STMT and _transaction_kind(statement)[0] == "TRANS_STMT_COMMIT":
        tripwire.check(conn, file, as_guard=False)
    return False


def _watched_after(run: ApplyContext, file: MigrationFile, conn: Any, statement: Statement, alone: bool) -> None:
    """After ``statement``: the check and COMMIT of a wrapped one; the snapshot at the start of
    a block the file opened (BEGIN, START TRANSACTION, COMMIT AND CHAIN)."""
    from psycopg.pq import TransactionStatus

    tripwire = run.tripwire
    if tripwire is None or not tripwire.armed(file):
        return
    if alone:
        tripwire.check(conn, file, as_guard=False)
        conn.execute("COMMIT")
    elif statement.kind == TRANSACTION_STMT and conn.pgconn.transaction_status == TransactionStatus.INTRANS:
        kind, chain = _transaction_kind(statement)
        if kind in _OPEN or chain:
            tripwire.start(conn, file)


def _may_run_in_block(statement: Statement) -> bool:
    """False for statements PostgreSQL refuses in a transaction block (guard/lint/nontx.py)."""
    import pglast

    from guard.lint.nontx import non_transactional

    try:
        nodes = pglast.parse_sql(statement.sql)
    except pglast.parser.ParseError:
        return False
    return all(non_transactional(node.stmt, None) is None for node in nodes)


def _unterminated(
    run: ApplyContext, file: MigrationFile, result: MigrationResult, committed: list[Statement],
    opened: Statement, started: float,
) -> bool:
    """The file ended inside a transaction it opened: roll it back, as the end of psql's
    session would, and fail the file."""
    from guard.report.model import MigrationError

    rollback_quietly(run.conn)
    result.status = "failed"
    result.duration_ms = ms(started)
    result.error = MigrationError(
        message=f"the transaction opened at line {opened.line} is never committed: rolled back, as psql "
        "rolls it back when its session ends", sqlstate=None, file=result.file, line=opened.line,
        hint="end it with COMMIT, or remove the BEGIN",
    )
    _partial(run, result, committed, opened)
    return False


def _partial(run: ApplyContext, result: MigrationResult, committed: list[Statement], failed: Statement) -> None:
    """Mark the outcome failed; when statements before ``failed`` committed, say which."""
    outcome = run.outcome
    outcome.failed = result
    real = [s for s in committed if s.kind != TRANSACTION_STMT]
    if not real:
        return
    outcome.changed_outside_transaction = True
    lines = sorted({s.line for s in real})
    shown = ", ".join(str(n) for n in lines[:12]) + (" ..." if len(lines) > 12 else "")
    outcome.partially_committed = (
        f"{result.file}: {len(real)} statement(s) had committed before line {failed.line} failed "
        f"(line(s) {shown}); the history does not list the file"
    )
    if result.error is not None:
        result.error.hint = "; ".join(h for h in (result.error.hint, outcome.partially_committed) if h)
