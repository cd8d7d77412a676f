"""Apply pending migration files: each in its own transaction (default) or all in one.

Each file's statements and its history row commit together, so the history never claims a
file that did not commit. What happened to every file is returned as MigrationResults; the
caller turns them into an outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from guard.errors import Interrupted
from guard.migrations import history
from guard.report.model import MigrationError, MigrationResult

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile, Statement

SET_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{ms}ms'"
SET_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '{ms}ms'"
# Migrations run with the session's search_path reset, as a fresh session would.
RESET_SEARCH_PATH = "RESET search_path"
LOCK_NOT_AVAILABLE = "55P03"
SLOW_FILE_MS = 1000
# Who holds a lock on the relations a statement needed (after it gave up waiting).
LOCK_HOLDERS = """
SELECT DISTINCT a.pid, a.application_name, a.usename, a.state, a.xact_start,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), l.mode, l.relation::regclass::text
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.pid <> pg_backend_pid()
   AND l.relation IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
 ORDER BY a.xact_start NULLS LAST
 LIMIT 10
"""


@dataclass
class ApplyOutcome:
    results: list[MigrationResult] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # versions committed by this run, in order
    failed: MigrationResult | None = None
    unknown: bool = False  # the connection was lost at COMMIT: the last file may or may not have committed
    connection_lost: bool = False  # the connection broke during the run
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    # A file run outside a transaction failed after some of its statements took effect.
    changed_outside_transaction: bool = False


Progress = Callable[[str], None]
# The statement (and its parameters) that records a version as committed in the caller's
# journal: it runs in the file's own transaction, so it commits exactly when the file does.
OnCommit = Callable[[str], "tuple[str, tuple[Any, ...]]"]
# Runs inside the transaction just before a statement (protective copies); (conn, statement, where).
BeforeStatement = Callable[["psycopg.Connection[Any]", "Statement", str], None]
_no_hook: BeforeStatement = lambda _conn, _statement, _where: None  # noqa: E731
# guard:verify (issue #19): runs in the transaction before COMMIT, per file and (file None)
# once at the end of the one transaction; raising psycopg.Error rolls back as a failed file.
BeforeCommit = Callable[["psycopg.Connection[Any]", "MigrationFile | None"], None]
# A file's history row, its journal entry and COMMIT go as one message with the values
# quoted by psycopg (libpq's escaping) when its statements are at most this big; a bigger
# file's rows are sent as parameters in a pipeline instead, not copied into a query string.
INLINE_RECORD_BYTES = 256 * 1024


@dataclass
class _Apply:
    """What every file of one apply_pending call shares."""

    conn: psycopg.Connection[Any]
    outcome: ApplyOutcome
    progress: Progress
    on_commit: OnCommit | None
    before: BeforeStatement
    before_commit: BeforeCommit | None  # guard:verify hook (issue #19)
    before_kinds: Collection[str] | None  # the statement kinds ``before`` acts on; None: any
    local_settings: tuple[str, ...]  # SET LOCAL of the timeouts
    session_settings: tuple[str, ...]  # the same, session-wide (files run outside a transaction)
    # Send BEGIN with a file's first statement (PostgreSQL 13+ times each statement of a
    # message on its own, so the SET LOCAL statement_timeout before it applies to it).
    merge_begin: bool

    def records(self, file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements that record ``file`` in its transaction: the history row, then the
        caller's journal entry when there is one."""
        found = [history.row(file.version, file.name, [s.sql for s in file.statements])]
        if self.on_commit is not None:
            found.append(self.on_commit(file.version))
        return found

    def record(self, file: MigrationFile) -> None:
        """Run `records` (in the caller's transaction), one statement at a time."""
        for query, params in self.records(file):
            self.conn.execute(query, params)

    @property
    def begin(self) -> str:
        """BEGIN and the file's timeouts, one message."""
        return "; ".join(("BEGIN", *self.local_settings))


def apply_pending(
    conn: psycopg.Connection[Any],
    files: Sequence[MigrationFile],
    *,
    transaction: str,
    lock_timeout: float,
    statement_timeout: float,
    display: Callable[[MigrationFile], str],
    progress: Progress | None = None,
    on_commit: OnCommit | None = None,
    outcome: ApplyOutcome | None = None,
    lock_retries: int = 0,
    lock_retry_delay: float = 5.0,
    before_statement: BeforeStatement | None = None,
    before_kinds: Collection[str] | None = None,
    outside_transaction: set[str] | None = None,
    server_major: int | None = None,
    before_commit: BeforeCommit | None = None,
) -> ApplyOutcome:
    """Apply ``files`` in order on an autocommit connection; stop at the first failure.

    ``outcome``, when given, is filled as the run goes (a signal handler may look at it).
    ``before_kinds`` names the statement kinds ``before_statement`` acts on (all when None);
    ``server_major`` lets a file's BEGIN travel with its first statement (13 and newer).
    """
    results = [
        MigrationResult(f.version, f.name, display(f), "pending", len(f.statements)) for f in files
    ]
    outcome = outcome if outcome is not None else ApplyOutcome()
    outcome.results = results
    local_settings = (
        SET_LOCK_TIMEOUT.format(ms=int(lock_timeout * 1000)),
        SET_STATEMENT_TIMEOUT.format(ms=int(statement_timeout * 1000)),
    )
    run = _Apply(
        conn=conn, outcome=outcome, progress=progress or (lambda _line: None), on_commit=on_commit,
        before=before_statement or _no_hook, before_commit=before_commit,
        before_kinds=before_kinds if before_statement is not None else (),
        local_settings=local_settings,
        session_settings=tuple(setting.replace("SET LOCAL", "SET") for setting in local_settings),
        merge_begin=server_major is not None and server_major >= 13,
    )
    if transaction == "all":
        _apply_all(run, files, results)
    else:
        for file, result in zip(files, results, strict=True):
            attempt = 0
            apply = _apply_outside if file.version in (outside_transaction or set()) else _apply_one
            while not apply(run, file, result):
                waited_on_lock = (
                    result.error is not None
                    and result.error.sqlstate == LOCK_NOT_AVAILABLE
                    and outcome.interrupted is None
                )
                if not waited_on_lock or attempt >= lock_retries:
                    return _finish(outcome)
                attempt += 1
                delay = lock_retry_delay * (2 ** (attempt - 1))
                run.progress(
                    f"{result.file}: lock not available; retry {attempt}/{lock_retries} in {delay:g}s"
                )
                time.sleep(delay)
                outcome.failed = None
                result.status, result.error = "pending", None
    return _finish(outcome)


def _finish(outcome: ApplyOutcome) -> ApplyOutcome:
    results = outcome.results
    for result in results:
        if result.status == "pending" and outcome.failed is not None:
            result.status = "skipped"
    return outcome


def _apply_one(run: _Apply, file: MigrationFile, result: MigrationResult) -> bool:
    """One file in its own transaction. Round trips are most of a small file's cost: BEGIN
    and its timeouts travel with the first statement (when no protective copy must come
    between), and the history row, the journal entry and COMMIT as one more message."""
    import psycopg

    conn, outcome = run.conn, run.outcome
    started = time.perf_counter()
    run.progress(f"applying {result.file} ({_count(len(file.statements))})")
    first = next((s for s in file.statements if s.kind), None)
    merge = (run.merge_begin and first is not None
             and run.before_kinds is not None and first.kind not in run.before_kinds)
    executed_all = False
    try:
        if not merge:
            conn.execute(run.begin)
        try:
            _run_statements(conn, file, result, run.before, prefix=run.begin + "; " if merge else "")
            if run.before_commit is not None:  # guard:verify (issue #19)
                run.before_commit(conn, file)
            executed_all = True
            _record_and_commit(run, file)
        except BaseException:
            _rollback_quietly(conn)
            raise
    except _StatementFailed as failed:
        result.duration_ms = _ms(started)
        outcome.failed = result
        # A statement's connection breaking rolls its transaction back: certainly not committed.
        outcome.connection_lost = conn.broken or conn.closed
        if result.error is not None and result.error.sqlstate == LOCK_NOT_AVAILABLE:
            _name_blockers(conn, result.error, failed.statement)
        return False
    except KeyboardInterrupt as exc:
        result.duration_ms = _ms(started)
        _interrupted(outcome, result, exc)
        return False
    except psycopg.Error as exc:
        result.duration_ms = _ms(started)
        outcome.failed = result
        outcome.connection_lost = conn.broken or conn.closed
        if executed_all and (conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError)):
            # Lost at COMMIT: the server may have committed. Only the history can tell.
            result.status = "unknown"
            outcome.unknown = True
        else:
            result.status = "failed"
        result.error = _error_from(exc, result.file, None, None)
        return False
    result.status = "applied"
    result.duration_ms = _ms(started)
    outcome.committed.append(file.version)
    _note_slow(run.progress, result)
    return True


def _note_slow(progress: Progress, result: MigrationResult) -> None:
    """One line per file is printed before it runs; after it, only when it was slow enough to
    notice (every duration is in the report): a release of a thousand files stays readable."""
    if result.duration_ms is not None and result.duration_ms >= SLOW_FILE_MS:
        progress(f"applied  {result.file} in {result.duration_ms / 1000:.1f} s")


def _record_and_commit(run: _Apply, file: MigrationFile) -> None:
    """The file's history row and journal entry, then COMMIT, in one round trip: one message
    with client-side quoted values for ordinary files, a pipeline with parameters for big
    ones (sequential where libpq has no pipelines). Any failure leaves the transaction to
    roll back; a connection lost here may have committed (the caller asks the history)."""
    from contextlib import nullcontext

    import psycopg

    conn = run.conn
    if sum(len(s.sql) for s in file.statements) <= INLINE_RECORD_BYTES:
        records = run.records(file)
        query = "; ".join([*(q for q, _ in records), "COMMIT"])
        psycopg.ClientCursor(conn).execute(query, tuple(p for _, params in records for p in params))
        return
    with conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext():
        run.record(file)
        conn.execute("COMMIT")


def _rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    """End a failed file's transaction; a broken connection has already ended it."""
    import psycopg
    from psycopg.pq import TransactionStatus

    if conn.broken or conn.closed or conn.pgconn.transaction_status == TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection went away: the server rolled the transaction back itself


RESET_TIMEOUTS = ("RESET lock_timeout", "RESET statement_timeout")


def _apply_outside(run: _Apply, file: MigrationFile, result: MigrationResult) -> bool:
    """A file with CREATE INDEX CONCURRENTLY & co.: each statement on its own (autocommit),
    then the history row. A failure after a statement took effect leaves the database changed."""
    import psycopg

    conn, outcome = run.conn, run.outcome
    started = time.perf_counter()
    run.progress(f"applying {result.file} outside a transaction ({_count(len(file.statements))})")
    executed = 0
    try:
        for setting in run.session_settings:
            conn.execute(setting)
        for index, statement in enumerate(file.statements):
            if not statement.kind:
                continue
            try:
                run.before(conn, statement, f"{result.file}:{statement.line}")
                conn.execute(statement.sql)
            except psycopg.Error as exc:
                result.status = "failed"
                result.error = _error_from(exc, result.file, statement, index)
                result.duration_ms = _ms(started)
                outcome.failed = result
                outcome.connection_lost = conn.broken or conn.closed
                outcome.changed_outside_transaction = executed > 0
                return False
            except KeyboardInterrupt as exc:
                result.duration_ms = _ms(started)
                _interrupted(outcome, result, exc)
                outcome.changed_outside_transaction = executed > 0
                return False
            executed += 1
        if run.before_commit is not None:  # guard:verify after the last statement: exit 4 (issue #19)
            try:
                with conn.transaction():
                    run.before_commit(conn, file)
            except psycopg.Error as exc:
                result.status, result.error, outcome.failed = "failed", _error_from(exc, result.file, None, None), result
                outcome.changed_outside_transaction = executed > 0
                return False
        with conn.transaction():
            run.record(file)
    finally:
        if not (conn.broken or conn.closed):
            for reset in RESET_TIMEOUTS:
                conn.execute(reset)
    result.status = "applied"
    result.duration_ms = _ms(started)
    outcome.committed.append(file.version)
    _note_slow(run.progress, result)
    return True


def _apply_all(run: _Apply, files: Sequence[MigrationFile], results: list[MigrationResult]) -> None:
    import psycopg

    conn, outcome = run.conn, run.outcome
    done: list[MigrationResult] = []
    executed_all = False
    try:
        with conn.transaction():
            conn.execute("; ".join(run.local_settings))
            for file, result in zip(files, results, strict=True):
                started = time.perf_counter()
                run.progress(f"applying {result.file} ({_count(len(file.statements))})")
                _run_statements(conn, file, result, run.before)
                if run.before_commit is not None:  # guard:verify (issue #19)
                    run.before_commit(conn, file)
                run.record(file)
                result.duration_ms = _ms(started)
                done.append(result)
            if run.before_commit is not None:  # guard:verify: configured sql checks (issue #19)
                run.before_commit(conn, None)
            executed_all = True
    except _StatementFailed as failed:
        outcome.failed = failed.result
        outcome.connection_lost = conn.broken or conn.closed
        # Everything rolled back with the one transaction, the files that had succeeded too.
        for result in done:
            result.status = "rolled_back"
        return
    except KeyboardInterrupt as exc:
        current = next((r for r in results if r.status == "pending" and r not in done), results[-1])
        _interrupted(outcome, current, exc)
        for result in done:
            result.status = "rolled_back"
        return
    except psycopg.Error as exc:
        last = results[-1]
        outcome.failed = last
        outcome.connection_lost = conn.broken or conn.closed
        if executed_all and (conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError)):
            for result in done:
                result.status = "unknown"
            outcome.unknown = True
        else:
            for result in done:
                result.status = "rolled_back"
            last.status = "failed"
        last.error = MigrationError(
            message=_primary(exc), sqlstate=exc.sqlstate, file=last.file, line=None
        )
        return
    for result in done:
        result.status = "applied"
        outcome.committed.append(result.version)
    run.progress(f"applied {len(done)} files in one transaction")


def _interrupted(outcome: ApplyOutcome, result: MigrationResult, exc: KeyboardInterrupt) -> None:
    name = exc.signal_name if isinstance(exc, Interrupted) else "SIGINT"  # Ctrl-C without guard's handler
    outcome.interrupted = name
    outcome.failed = result
    result.status = "failed"
    result.error = MigrationError(
        message=f"interrupted by {name}; the running statement was cancelled and the file rolled back",
        sqlstate=None,
        file=result.file,
        line=None,
    )


class _StatementFailed(Exception):
    def __init__(self, result: MigrationResult, statement: str = "") -> None:
        super().__init__(result.version)
        self.result = result
        self.statement = statement


def _relations(statement: str) -> list[str]:
    """Relation names a statement refers to (schema-qualified when written so)."""
    import json

    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(statement))
    except Exception:  # noqa: BLE001 - naming blockers is best effort
        return []
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            # A RangeVar is wrapped ({"RangeVar": {...}}) in node lists, bare in typed fields.
            range_var = node.get("RangeVar", node if "relname" in node else None)
            if isinstance(range_var, dict) and isinstance(range_var.get("relname"), str):
                name = range_var["relname"]
                if range_var.get("schemaname"):
                    name = f"{range_var['schemaname']}.{name}"
                if name not in found:
                    found.append(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def _name_blockers(conn: psycopg.Connection[Any], error: MigrationError, statement: str) -> None:
    """After a lock timeout: who holds locks on the statement's relations, and a hint."""
    import psycopg

    relations = _relations(statement)
    if not relations or conn.broken or conn.closed:
        return
    try:
        rows = conn.execute(LOCK_HOLDERS, (relations,)).fetchall()
    except psycopg.Error:
        return
    error.blockers = [
        {
            "pid": r[0], "application_name": r[1], "user": r[2], "state": r[3],
            "transaction_started": r[4].isoformat() if r[4] else None, "query": r[5],
            "mode": r[6], "relation": r[7],
        }
        for r in rows
    ]
    if rows:
        oldest = rows[0]
        error.hint = (
            f"{len(rows)} session(s) hold locks on {', '.join(sorted({r[7] for r in rows}))}: "
            f"pid {oldest[0]} ({oldest[1] or oldest[2]}, {oldest[3]}, in a transaction since "
            f"{oldest[4].isoformat() if oldest[4] else '?'}). Retry when it has finished, in a "
            "quiet period, or set migrations.lock_retries"
        )


def _run_statements(
    conn: psycopg.Connection[Any], file: MigrationFile, result: MigrationResult, before: BeforeStatement,
    *, prefix: str = "",
) -> None:
    """Each statement in turn; ``prefix`` (BEGIN and its settings) goes with the first."""
    import psycopg

    for index, statement in enumerate(file.statements):
        if not statement.kind:
            continue  # only comments: kept in the history as the CLI does, nothing to run
        # With a prefix the transaction is not open yet, and the caller sends one only when
        # ``before`` has nothing to do for this statement.
        try:
            if not prefix:
                before(conn, statement, f"{result.file}:{statement.line}")
        except psycopg.Error as exc:
            result.status = "failed"
            result.error = _error_from(exc, result.file, statement, index)
            result.error.message = f"protective copy before this statement failed: {result.error.message}"
            raise _StatementFailed(result, statement.sql) from exc
        try:
            conn.execute(prefix + statement.sql)
        except psycopg.Error as exc:
            result.status = "failed"
            result.error = _error_from(exc, result.file, statement, index, shift=len(prefix))
            raise _StatementFailed(result, statement.sql) from exc
        prefix = ""


def _error_from(
    exc: Exception, file: str, statement: Statement | None, index: int | None, *, shift: int = 0
) -> MigrationError:
    """The report's error; ``shift``: characters sent before the statement in its message."""
    import psycopg

    diag = exc.diag if isinstance(exc, psycopg.Error) else None
    position: int | None = None
    if diag is not None and diag.statement_position:
        try:
            position = int(diag.statement_position) - shift
        except ValueError:
            position = None
        if position is not None and position < 1:
            position = None  # in the BEGIN sent with it, not in the statement
    line = statement.line_at(position) if statement is not None else None
    text = None
    if statement is not None:
        from guard.migrations.files import _skip_space_and_comments

        # Show the statement from its first token: its leading comments are noise here.
        text = statement.sql[_skip_space_and_comments(statement.sql, 0):] or statement.sql
    if text is not None and len(text) > 500:
        text = text[:500] + " ..."
    return MigrationError(
        message=_primary(exc),
        sqlstate=getattr(exc, "sqlstate", None),
        file=file,
        line=line,
        statement_index=index,
        statement=text,
        detail=diag.message_detail if diag is not None else None,
        hint=diag.message_hint if diag is not None else None,
        context=diag.context if diag is not None else None,
    )


def _primary(exc: Exception) -> str:
    import psycopg

    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def _count(n: int) -> str:
    return f"{n} statement" + ("" if n == 1 else "s")


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)
