"""What applying shares: the outcome being filled, the per-call context, and the way a
failure becomes a report entry. Used by apply.py (files in guard's transactions) and
own_transactions.py (files that run statement by statement, as psql would)."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.errors import Interrupted
from guard.migrations import history
from guard.report.model import MigrationError, MigrationResult

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile, Statement
    from guard.tripwire import Tripwire

SLOW_FILE_MS = 1000


class ApplyOutcome(Struct):
    results: list[MigrationResult] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)  # versions committed by this run, in order
    failed: MigrationResult | None = None
    unknown: bool = False  # the connection was lost at COMMIT: the last file may or may not have committed
    connection_lost: bool = False  # the connection broke during the run
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    # A file run statement by statement failed after some of its statements took effect.
    changed_outside_transaction: bool = False
    # What of that file had committed, for the outcome's message ("lines 1-4 ...").
    partially_committed: str | None = None
    # Committed versions whose history row or journal entry was gone once the run had
    # committed, in commit order: version -> (history row gone, journal entry gone)
    # (history.rows_gone_after_commit).
    rows_gone: dict[str, tuple[bool, bool]] = field(default_factory=dict)
    # guard's own records of the run a later file removed once the run had committed: a
    # protective copy, its guard.copies row, the run's guard.runs row (run/protect.py records_gone).
    records_gone: list[str] = field(default_factory=list)


Progress = Callable[[str], None]
# The statement (and its parameters) that records a version as committed in the caller's
# journal: it runs in the file's own transaction, so it commits exactly when the file does.
OnCommit = Callable[[str], "tuple[str, tuple[Any, ...]]"]
# Runs inside the transaction just before a statement (protective copies); (conn, statement, where).
# It may return the statement to run instead (a DELETE that copies the rows it deletes).
BeforeStatement = Callable[["psycopg.Connection[Any]", "Statement", str], "str | None"]
no_hook: BeforeStatement = lambda _conn, _statement, _where: None  # noqa: E731
# guard:verify (issue #19): runs in the transaction before COMMIT, per file and (file None)
# once at the end of the one transaction; raising psycopg.Error fails the file (rolled back).
BeforeCommit = Callable[["psycopg.Connection[Any]", "MigrationFile | None"], None]
# Checks that run on the server inside a file's transaction, after its statements and before
# guard's records and COMMIT, and raise to roll the file back (the safety net's tripwire, a
# file's ``-- guard:verify`` lines): file -> [(sql, params)], psycopg placeholders. They run
# in every path that gives the file a transaction: streamed (pipeline.py) or on its own.
PreCommit = Callable[["MigrationFile"], "list[tuple[str, tuple[Any, ...]]]"]
# The check that guard's own records of the run are still there (guard/protect/kept.py): file
# -> [(sql, params)], run as guard right after the check that the file's records landed.
RecordsKept = PreCommit


class ApplyContext(Struct):
    """What every file of one apply_pending call shares."""

    conn: psycopg.Connection[Any]
    outcome: ApplyOutcome
    progress: Progress
    on_commit: OnCommit | None
    before: BeforeStatement
    before_kinds: Collection[str] | None  # the statement kinds ``before`` acts on; None: any
    local_settings: tuple[str, ...]  # SET LOCAL of the timeouts
    session_settings: tuple[str, ...]  # the same, session-wide (files run statement by statement)
    # Send BEGIN with a file's first statement (PostgreSQL 13+ times each statement of a
    # message on its own, so the SET LOCAL statement_timeout before it applies to it).
    merge_begin: bool
    tripwire: Tripwire | None = None  # the safety net's runtime check (guard/tripwire.py)
    before_commit: BeforeCommit | None = None  # guard:verify checks (issue #19)
    # The checks before each file's COMMIT (see PreCommit): add hooks here.
    pre_commit: list[PreCommit] = field(default_factory=list)
    # Files may travel several to a message (pipeline.py): PostgreSQL 13+, per-file
    # transactions, no lock retries.
    stream: bool = False
    # A streamed file's records go as one statement (pipeline.records_as_one).
    records_as_one: bool = False
    records_kept: RecordsKept | None = None  # see RecordsKept

    def kept(self, file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements checking, after ``landed``, that guard's records of the run are
        still there (none without a ``records_kept`` hook)."""
        return self.records_kept(file) if self.records_kept is not None else []

    def pre_commit_statements(self, file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements of every pre-COMMIT hook for ``file``, in hook order."""
        return [statement for hook in self.pre_commit for statement in hook(file)]

    def records(self, file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        """The statements that record ``file`` in its transaction: the history row, then the
        caller's journal entry when there is one."""
        found = [history.row(file.version, file.name, [s.sql for s in file.statements])]
        if self.on_commit is not None:
            found.append(self.on_commit(file.version))
        return found

    def landed(self, file: MigrationFile, records: list[tuple[str, tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
        """The statement that raises, after ``records`` (``file``'s, as ``records`` built them)
        and before COMMIT, unless each row they wrote is in its table (history.check_landed: a
        rule or a trigger may discard an INSERT without an error). One per file, in every path."""
        from guard import journal

        rows = [history.landed(file.version)]
        for query, params in records[1:]:
            row = journal.committed_landed(query, params)
            if row is not None:
                rows.append(row)
        return history.check_landed(rows)

    def record(self, file: MigrationFile, *, last: bool = True) -> None:
        """Run `records` and the `landed` check (in the caller's transaction, as guard: see
        session.AS_GUARD), one statement at a time. ``last``: the transaction ends after this
        (COMMIT next), so its deferred constraints and triggers fire before the check, as they
        would at COMMIT (session.FIRE_DEFERRED); in a transaction that goes on (``transaction:
        all``) they keep their deferral and the caller checks again before its COMMIT."""
        from guard.migrations.session import AS_GUARD, BEFORE_LANDED_CHECK

        for statement in AS_GUARD:  # one at a time: this may run in a pipeline
            self.conn.execute(statement)
        records = self.records(file)
        for query, params in records:
            self.conn.execute(query, params)
        if last:
            for statement in BEFORE_LANDED_CHECK:
                self.conn.execute(statement)
        self.conn.execute(*self.landed(file, records))
        for query, params in self.kept(file):
            self.conn.execute(query, params)


class StatementFailed(Exception):
    def __init__(self, result: MigrationResult, statement: str = "") -> None:
        super().__init__(result.version)
        self.result = result
        self.statement = statement


def interrupted(outcome: ApplyOutcome, result: MigrationResult, exc: KeyboardInterrupt) -> None:
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


def rollback_quietly(conn: psycopg.Connection[Any]) -> None:
    """End a failed file's transaction; a broken connection has already ended it."""
    import psycopg
    from psycopg.pq import TransactionStatus

    if conn.broken or conn.closed or conn.pgconn.transaction_status == TransactionStatus.IDLE:
        return
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass  # the connection went away: the server rolled the transaction back itself


def error_from(
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
    lost = history.not_landed(primary(exc)) if statement is None else None
    if lost is not None:  # guard's own row discarded: its words, not the cast's (history.check_landed)
        return MigrationError(message=lost, sqlstate=None, file=file, line=None, hint=history.NOT_LANDED_HINT)
    from guard.protect.kept import removed

    gone = removed(primary(exc)) if statement is None else None
    if gone is not None:  # guard's records of the run removed by the file (guard/protect/kept.py)
        return MigrationError(message=gone, sqlstate="GDKPT", file=file, line=None,
                              hint="the file was rolled back; a migration must leave guard's schema alone")
    text = None
    if statement is not None:
        from guard.migrations.files import _skip_space_and_comments

        # Show the statement from its first token: its leading comments are noise here.
        text = statement.sql[_skip_space_and_comments(statement.sql, 0):] or statement.sql
    if text is not None and len(text) > 500:
        text = text[:500] + " ..."
    return MigrationError(
        message=primary(exc),
        sqlstate=getattr(exc, "sqlstate", None),
        file=file,
        line=line,
        statement_index=index,
        statement=text,
        detail=diag.message_detail if diag is not None else None,
        hint=diag.message_hint if diag is not None else None,
        context=diag.context if diag is not None else None,
    )


def primary(exc: Exception) -> str:
    import psycopg

    if isinstance(exc, psycopg.Error) and exc.diag.message_primary:
        return exc.diag.message_primary
    text = str(exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__


def deferred_at_end(exc: Exception, files: int) -> str:
    """The message of an error at the end of a release's one transaction (``transaction: all``):
    a deferred constraint or trigger fired there, as at psql -1's COMMIT. Which of the ``files``
    wrote what broke it is not known; the last file, which the report names, is only last."""
    diag = getattr(exc, "diag", None)
    where = ", ".join(w for w in (f"table {diag.schema_name}.{diag.table_name}" if diag and diag.table_name else "",
                                  f"constraint {diag.constraint_name}" if diag and diag.constraint_name else "") if w)
    return (f"at the end of the release's one transaction (transaction: all), deferred to it: {primary(exc)}"
            + (f" ({where})" if where else "") + f"; any of the {files} files may have written what broke it, "
            "not only this last one")


def note_slow(progress: Progress, result: MigrationResult) -> None:
    """One line per file is printed before it runs; after it, only when it was slow enough to
    notice (every duration is in the report): a release of a thousand files stays readable."""
    if result.duration_ms is not None and result.duration_ms >= SLOW_FILE_MS:
        progress(f"applied  {result.file} in {result.duration_ms / 1000:.1f} s")


def count(n: int) -> str:
    return f"{n} statement" + ("" if n == 1 else "s")


def ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def all_landed_at_commit(run: ApplyContext, files: Sequence[MigrationFile], results: list[MigrationResult]) -> None:
    """Before the one transaction's COMMIT: its deferred constraints and triggers fire (as
    COMMIT would fire them), then each file's records are checked again: a deferred trigger
    may have deleted them. A failing check is its file's (StatementFailed); a deferred
    constraint's error is the COMMIT's (psycopg.Error)."""
    import psycopg

    from guard.migrations.session import BEFORE_LANDED_CHECK

    for statement in BEFORE_LANDED_CHECK:
        run.conn.execute(statement)
    for file, result in zip(files, results, strict=True):
        try:
            run.conn.execute(*run.landed(file, run.records(file)))
            for query, params in run.kept(file):
                run.conn.execute(query, params)
        except psycopg.Error as exc:
            result.status, result.error = "failed", error_from(exc, result.file, None, None)
            raise StatementFailed(result) from exc
