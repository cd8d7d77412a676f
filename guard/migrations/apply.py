"""Apply pending migration files: each in its own transaction (default) or all in one.

Each file's statements and its history row commit together, so the history never claims a
file that did not commit. What happened to every file is returned as MigrationResults; the
caller turns them into an outcome.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard.migrations import history
from guard.report.model import MigrationError, MigrationResult

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile, Statement

SET_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{ms}ms'"
SET_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '{ms}ms'"
# Migrations run with the session's search_path reset, as a fresh session would.
RESET_SEARCH_PATH = "RESET search_path"


@dataclass
class ApplyOutcome:
    results: list[MigrationResult]
    committed: list[str]  # versions committed by this run, in order
    failed: MigrationResult | None = None
    unknown: bool = False  # the connection was lost at COMMIT: the last file may or may not have committed


Progress = Callable[[str], None]
# Runs inside a file's transaction, after its statements: commits exactly when the file does.
OnCommit = Callable[["psycopg.Connection[Any]", str], None]


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
) -> ApplyOutcome:
    """Apply ``files`` in order on an autocommit connection; stop at the first failure."""
    progress = progress or (lambda _line: None)
    results = [
        MigrationResult(f.version, f.name, display(f), "pending", len(f.statements)) for f in files
    ]
    outcome = ApplyOutcome(results=results, committed=[])
    timeouts = (
        SET_LOCK_TIMEOUT.format(ms=int(lock_timeout * 1000)),
        SET_STATEMENT_TIMEOUT.format(ms=int(statement_timeout * 1000)),
    )
    hook: OnCommit = on_commit or (lambda _conn, _version: None)
    if transaction == "all":
        _apply_all(conn, files, results, timeouts, outcome, progress, hook)
    else:
        for file, result in zip(files, results, strict=True):
            if not _apply_one(conn, file, result, timeouts, outcome, progress, hook):
                break
    for result in results:
        if result.status == "pending" and outcome.failed is not None:
            result.status = "skipped"
    return outcome


def _apply_one(
    conn: psycopg.Connection[Any],
    file: MigrationFile,
    result: MigrationResult,
    timeouts: tuple[str, ...],
    outcome: ApplyOutcome,
    progress: Progress,
    on_commit: OnCommit,
) -> bool:
    import psycopg

    started = time.perf_counter()
    progress(f"applying {result.file} ({_count(len(file.statements))})")
    executed_all = False
    try:
        with conn.transaction():
            for setting in timeouts:
                conn.execute(setting)
            _run_statements(conn, file, result)
            history.record(conn, file.version, file.name, [s.sql for s in file.statements])
            on_commit(conn, file.version)
            executed_all = True
    except _StatementFailed:
        result.duration_ms = _ms(started)
        outcome.failed = result
        return False
    except psycopg.Error as exc:
        result.duration_ms = _ms(started)
        outcome.failed = result
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
    progress(f"applied  {result.file} in {result.duration_ms:.0f} ms")
    return True


def _apply_all(
    conn: psycopg.Connection[Any],
    files: Sequence[MigrationFile],
    results: list[MigrationResult],
    timeouts: tuple[str, ...],
    outcome: ApplyOutcome,
    progress: Progress,
    on_commit: OnCommit,
) -> None:
    import psycopg

    done: list[MigrationResult] = []
    executed_all = False
    try:
        with conn.transaction():
            for setting in timeouts:
                conn.execute(setting)
            for file, result in zip(files, results, strict=True):
                started = time.perf_counter()
                progress(f"applying {result.file} ({_count(len(file.statements))})")
                _run_statements(conn, file, result)
                history.record(conn, file.version, file.name, [s.sql for s in file.statements])
                on_commit(conn, file.version)
                result.duration_ms = _ms(started)
                done.append(result)
            executed_all = True
    except _StatementFailed as failed:
        outcome.failed = failed.result
        # Everything rolled back with the one transaction, the files that had succeeded too.
        for result in done:
            result.status = "rolled_back"
        return
    except psycopg.Error as exc:
        last = results[-1]
        outcome.failed = last
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
    progress(f"applied {len(done)} files in one transaction")


class _StatementFailed(Exception):
    def __init__(self, result: MigrationResult) -> None:
        super().__init__(result.version)
        self.result = result


def _run_statements(conn: psycopg.Connection[Any], file: MigrationFile, result: MigrationResult) -> None:
    import psycopg

    for index, statement in enumerate(file.statements):
        if not statement.kind:
            continue  # only comments: kept in the history as the CLI does, nothing to run
        try:
            conn.execute(statement.sql)
        except psycopg.Error as exc:
            result.status = "failed"
            result.error = _error_from(exc, result.file, statement, index)
            raise _StatementFailed(result) from exc


def _error_from(
    exc: Exception, file: str, statement: Statement | None, index: int | None
) -> MigrationError:
    import psycopg

    diag = exc.diag if isinstance(exc, psycopg.Error) else None
    position: int | None = None
    if diag is not None and diag.statement_position:
        try:
            position = int(diag.statement_position)
        except ValueError:
            position = None
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
