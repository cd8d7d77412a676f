"""Apply pending migration files: each in its own transaction (default) or all in one.

Each file's statements and its history row commit together, so the history never claims a
file that did not commit. Every file starts from a clean session (session.py); files with
transactions of their own or statements PostgreSQL refuses in a transaction block run as
psql runs them (own_transactions.py). What happened to every file is returned as
MigrationResults; the caller turns them into an outcome.

The per-file transaction, in order (``_apply_one``): BEGIN (the file's own when it wraps
itself), the timeouts, each statement (``before`` runs ahead of the statements it acts on),
then ``_record_and_commit``: guard's identity, the history row, the caller's journal entry,
the check that both landed (a rule or trigger may discard them without an error:
ApplyContext.landed), COMMIT, and the session reset for the next file. Checks before COMMIT are the context's
``pre_commit`` hooks (apply_state.PreCommit), run ahead of the records in every path.

With PostgreSQL 13+ and no lock retries, runs of consecutive files that need nothing from
the client between their statements travel several to a message instead (pipeline.py, same
semantics); the others, chosen file by file, go as above. Each result's ``path`` says which.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence
from typing import TYPE_CHECKING, Any

from guard.migrations.apply_state import (
    ApplyContext,
    ApplyOutcome,
    BeforeCommit,
    BeforeStatement,
    OnCommit,
    PreCommit,
    Progress,
    StatementFailed,
    all_landed_at_commit,
    count,
    deferred_at_end,
    error_from,
    interrupted,
    ms,
    no_hook,
    note_slow,
    primary,
    rollback_quietly,
)
from guard.migrations.blockers import LOCK_NOT_AVAILABLE, name_blockers
from guard.migrations.own_transactions import (
    TRANSACTION_STMT,
    apply_statementwise,
    transaction_shape,
)
from guard.migrations.pipeline import (
    STREAM_FILES,
    STREAM_FIRST_FILES,
    Prepared,
    apply_stream,
    prepare,
    records_as_one,
    stream_length,
)
from guard.migrations.session import (
    AS_GUARD,
    BEFORE_LANDED_CHECK,
    FIRE_DEFERRED,
    RESET_SESSION,
    RESET_STATEMENTS,
    reset_session,
)
from guard.protect.upsert import copies_before
from guard.report.model import MigrationError, MigrationResult

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile
    from guard.tripwire import Tripwire

__all__ = ["ApplyOutcome", "BeforeCommit", "apply_pending"]

SET_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '{ms}ms'"
SET_STATEMENT_TIMEOUT = "SET LOCAL statement_timeout = '{ms}ms'"
# A file's history row, its journal entry and COMMIT go as one message with the values
# quoted by psycopg (libpq's escaping) when its statements are at most this big; a bigger
# file's rows are sent as parameters in a pipeline instead, not copied into a query string.
INLINE_RECORD_BYTES = 256 * 1024


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
    tripwire: Tripwire | None = None,
    before_commit: BeforeCommit | None = None,
    pre_commit: Sequence[PreCommit] = (),
    record_rules: int | None = None,
    records_kept: PreCommit | None = None,
) -> ApplyOutcome:
    """Apply ``files`` in order on an autocommit connection; stop at the first failure.

    ``outcome``, when given, is filled as the run goes (a signal handler may look at it).
    ``before_kinds`` names the statement kinds ``before_statement`` acts on (all when None);
    ``outside_transaction``: versions to run statement by statement (non-transactional
    statements); ``server_major`` lets a file's BEGIN travel with its first statement (13+),
    and files travel several to a message (pipeline.py) when there are no lock retries;
    ``tripwire`` (guard/tripwire.py) checks, before each armed file's COMMIT, what it destroyed;
    ``before_commit``: a file's ``-- guard:verify`` checks; ``pre_commit``: further checks run
    in each file's transaction before its COMMIT (PreCommit); ``record_rules``: how many of the
    tables guard records a file in have rules, just read (pipeline.record_tables); ``records_kept``: apply_state.RecordsKept.
    Whatever happens, the session is left as it began (guard's advisory lock kept).
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
    run = ApplyContext(
        conn=conn, outcome=outcome, progress=progress or (lambda _line: None), on_commit=on_commit,
        before=before_statement or no_hook, before_commit=before_commit,
        before_kinds=before_kinds if before_statement is not None else (),
        local_settings=local_settings,
        session_settings=tuple(setting.replace("SET LOCAL", "SET") for setting in local_settings),
        merge_begin=server_major is not None and server_major >= 13,
        tripwire=tripwire,
        pre_commit=list(pre_commit), records_kept=records_kept,
    )
    run.stream = run.merge_begin and transaction != "all" and lock_retries == 0
    run.records_as_one = run.stream and on_commit is not None and records_as_one(conn, files, record_rules)
    reset_session(conn)  # whatever guard's own steps left in the session
    try:
        if transaction == "all":
            _apply_all(run, files, results)
        else:
            _apply_each(run, files, results, outside_transaction or set(), lock_retries, lock_retry_delay)
    finally:
        # A failed file's ROLLBACK brings back the session state of the file before it.
        reset_session(conn)
    return _finish(outcome)


def _apply_each(
    run: ApplyContext, files: Sequence[MigrationFile], results: list[MigrationResult],
    outside: set[str], lock_retries: int, lock_retry_delay: float,
) -> None:
    """Each file in turn, in its own transaction (or statement by statement); a file that
    gave up waiting for a lock is tried again up to ``lock_retries`` times; runs of files
    that can travel together go as streams (pipeline.py)."""
    position = 0
    ahead: dict[int, tuple[int, Prepared]] = {}  # start -> (length, text) of a stream built ahead
    while position < len(files):
        built = ahead.pop(position, None)
        # With nothing built ahead, a short first stream: its text is quick to build, and the
        # next stream's is built while the server runs it.
        length = built[0] if built else _stream_length(run, files, position, outside, STREAM_FIRST_FILES)
        if length:
            after = position + length

            def build_next(after: int = after) -> None:
                n = _stream_length(run, files, after, outside)
                if n:
                    ahead[after] = (n, prepare(run, files[after:after + n]))

            done = apply_stream(run, files[position:after], results[position:after],
                                built[1] if built else None, meanwhile=build_next)
            if done is False:
                return
            if done:
                position = after
                continue
            ahead.clear()
            # Refused as a whole before anything ran: these files one at a time instead.
        for file, result in zip(files[position:position + max(length, 1)],
                                results[position:position + max(length, 1)], strict=True):
            if not _apply_with_retries(run, file, result, file.version in outside, lock_retries, lock_retry_delay):
                return
        position += max(length, 1)


def _stream_length(
    run: ApplyContext, files: Sequence[MigrationFile], start: int, outside: set[str], limit: int = STREAM_FILES,
) -> int:
    """How many files from ``start`` on travel in one stream, at most ``limit`` (0:
    ``files[start]`` goes alone)."""
    if not run.stream:
        return 0
    end = start
    while end < len(files) and files[end].version not in outside:
        end += 1
    return stream_length(run, files[:end], start, limit)


def _apply_with_retries(
    run: ApplyContext, file: MigrationFile, result: MigrationResult, outside: bool,
    lock_retries: int, lock_retry_delay: float,
) -> bool:
    """One file on its own; tried again up to ``lock_retries`` times when it gave up
    waiting for a lock. False when it failed."""
    outcome = run.outcome
    attempt = 0
    while not _apply_file(run, file, result, outside):
            waited_on_lock = (
                result.error is not None
                and result.error.sqlstate == LOCK_NOT_AVAILABLE
                and outcome.interrupted is None
                and not outcome.changed_outside_transaction
            )
            if not waited_on_lock or attempt >= lock_retries:
                return False
            attempt += 1
            delay = lock_retry_delay * (2 ** (attempt - 1))
            run.progress(f"{result.file}: lock not available; retry {attempt}/{lock_retries} in {delay:g}s")
            time.sleep(delay)
            outcome.failed = None
            result.status, result.error = "pending", None
    return True


def _apply_file(run: ApplyContext, file: MigrationFile, result: MigrationResult, outside: bool) -> bool:
    """One file, the way its statements ask for (see own_transactions)."""
    result.path = "single"
    has_control = any(s.kind == TRANSACTION_STMT for s in file.statements)
    shape = transaction_shape(file.statements) if has_control else None
    if outside or (shape is not None and shape.kind == "several"):
        return apply_statementwise(run, file, result)
    skip = frozenset() if shape is None or shape.kind != "wrapped" else frozenset({shape.begin, shape.commit})
    return _apply_one(run, file, result, skip)


def _finish(outcome: ApplyOutcome) -> ApplyOutcome:
    for result in outcome.results:
        if result.status == "pending" and outcome.failed is not None:
            result.status = "skipped"
    return outcome


def _begin(run: ApplyContext, file: MigrationFile, skip: frozenset[int | None]) -> str:
    """The message that opens a file's transaction: BEGIN (the file's own when it wraps
    itself: its options hold), the timeouts."""
    opening = "BEGIN"
    if skip:  # a newline ends a trailing line comment of the file's BEGIN
        opening = next(file.statements[i].sql for i in sorted(i for i in skip if i is not None)) + "\n"
    return "; ".join((opening, *run.local_settings))


def _apply_one(run: ApplyContext, file: MigrationFile, result: MigrationResult, skip: frozenset[int | None]) -> bool:
    """One file in its own transaction. Round trips are most of a small file's cost: BEGIN
    and its timeouts travel with the first statement (when no protective copy must come
    between), and the history row, the journal entry and COMMIT as one more message."""
    import psycopg

    conn, outcome = run.conn, run.outcome
    started = time.perf_counter()
    run.progress(f"applying {result.file} ({count(len(file.statements))})")
    first = next((s for i, s in enumerate(file.statements) if s.kind and i not in skip), None)
    armed = run.tripwire is not None and run.tripwire.armed(file)
    merge = (run.merge_begin and first is not None and not armed  # the tripwire's snapshot follows BEGIN
             and run.before_kinds is not None and not copies_before(first, run.before_kinds))
    begin = _begin(run, file, skip)
    executed_all = False
    try:
        if not merge:
            conn.execute(begin)
        try:
            if run.tripwire is not None:  # safety net: what the file destroys, measured from here
                run.tripwire.start(conn, file)
            _run_statements(conn, file, result, run.before, prefix=begin + "; " if merge else "", skip=skip)
            if armed or run.before_commit is not None:  # its deferred triggers, in its session, seen by the checks
                conn.execute(FIRE_DEFERRED)
            if run.tripwire is not None:  # safety net: raises (rolls the file back) before COMMIT
                _tripwire_check(run.tripwire, conn, file, result)
            if run.before_commit is not None:  # guard:verify (issue #19)
                run.before_commit(conn, file)
            executed_all = True
            _record_and_commit(run, file)
        except BaseException:
            rollback_quietly(conn)
            raise
    except StatementFailed as failed:
        result.duration_ms = ms(started)
        outcome.failed = result
        # A statement's connection breaking rolls its transaction back: certainly not committed.
        outcome.connection_lost = conn.broken or conn.closed
        if result.error is not None and result.error.sqlstate == LOCK_NOT_AVAILABLE:
            name_blockers(conn, result.error, failed.statement)
        return False
    except KeyboardInterrupt as exc:
        result.duration_ms = ms(started)
        interrupted(outcome, result, exc)
        return False
    except psycopg.Error as exc:
        result.duration_ms = ms(started)
        outcome.failed = result
        outcome.connection_lost = conn.broken or conn.closed
        if executed_all and (conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError)):
            # Lost at COMMIT: the server may have committed. Only the history can tell.
            result.status = "unknown"
            outcome.unknown = True
        else:
            result.status = "failed"
        result.error = error_from(exc, result.file, None, None)
        return False
    result.status = "applied"
    result.duration_ms = ms(started)
    outcome.committed.append(file.version)
    note_slow(run.progress, result)
    return True


def _record_and_commit(run: ApplyContext, file: MigrationFile) -> None:
    """Guard's identity (session.AS_GUARD), the file's history row and journal entry, the check
    that they landed, COMMIT, then the session reset for the next file, in one round trip: one
    message with client-side quoted values for ordinary files, a pipeline with parameters for
    big ones (sequential where libpq has no pipelines). Any failure leaves the transaction to
    roll back; a connection lost here may have committed (the caller asks the history)."""
    from contextlib import nullcontext

    import psycopg

    conn = run.conn
    if sum(len(s.sql) for s in file.statements) <= INLINE_RECORD_BYTES:
        # The pre-COMMIT checks first (apply_state.PreCommit), in the file's session state.
        # After the records, the check that they landed (ApplyContext.landed).
        checks, records = run.pre_commit_statements(file), run.records(file)
        landed, kept = run.landed(file, records), run.kept(file)
        # The file's deferred triggers first, in its session (role, search_path); holdable cursors
        # closed unrun (as the streamed path's reset does): COMMIT would run them after the check.
        query = "; ".join([FIRE_DEFERRED, *(q for q, _ in checks), *AS_GUARD, *(q for q, _ in records),
                           *BEFORE_LANDED_CHECK, landed[0], *(q for q, _ in kept), "COMMIT", *RESET_STATEMENTS])
        params = tuple(p for _, ps in (*checks, *records, landed, *kept) for p in ps)
        psycopg.ClientCursor(conn).execute(query, params)
        return
    with conn.pipeline() if psycopg.Pipeline.is_supported() else nullcontext():
        conn.execute(FIRE_DEFERRED)  # the file's, in its session (as above)
        for query, params in run.pre_commit_statements(file):
            conn.execute(query, params)
        run.record(file)
        conn.execute("COMMIT")
    reset_session(conn)


def _apply_all(run: ApplyContext, files: Sequence[MigrationFile], results: list[MigrationResult]) -> None:
    """Every file in one transaction; each still starts from a clean session (the reset's
    statements may all run inside a transaction block). Files wrapping themselves in
    BEGIN/COMMIT lose those two: the one transaction already holds them."""
    import psycopg

    conn, outcome = run.conn, run.outcome
    done: list[MigrationResult] = []
    executed_all = at_end = False
    try:
        with conn.transaction():
            for file, result in zip(files, results, strict=True):
                started = time.perf_counter()
                run.progress(f"applying {result.file} ({count(len(file.statements))})")
                conn.execute("; ".join((RESET_SESSION, *run.local_settings)))
                shape = transaction_shape(file.statements)
                skip = frozenset({shape.begin, shape.commit}) if shape.kind == "wrapped" else frozenset()
                result.path = "single"
                # The snapshot after the reset (RESET ALL clears it): per file, as in per-file mode.
                if run.tripwire is not None:
                    run.tripwire.start(conn, file)
                _run_statements(conn, file, result, run.before, skip=skip)
                _checks_and_records(run, file, result)
                result.duration_ms = ms(started)
                done.append(result)
            if run.before_commit is not None:  # guard:verify: configured sql checks (issue #19)
                run.before_commit(conn, None)
            at_end = True  # what fails from here fired at the transaction's end (deferred)
            all_landed_at_commit(run, files, results)
            executed_all = True
    except StatementFailed as failed:
        outcome.failed = failed.result
        outcome.connection_lost = conn.broken or conn.closed
        # Everything rolled back with the one transaction, the files that had succeeded too (all
        # of them, the failing one included, when its check failed at the end: all_landed_at_commit).
        for result in done:
            if result is not failed.result:
                result.status = "rolled_back"
        return
    except KeyboardInterrupt as exc:
        current = next((r for r in results if r.status == "pending" and r not in done), results[-1])
        interrupted(outcome, current, exc)
        for result in done:
            result.status = "rolled_back"
        return
    except psycopg.Error as exc:
        _all_failed_at_commit(run, results, done, executed_all, exc, at_end or executed_all)
        return
    for result in done:
        result.status = "applied"
        outcome.committed.append(result.version)
    run.progress(f"applied {len(done)} files in one transaction")


def _checks_and_records(run: ApplyContext, file: MigrationFile, result: MigrationResult) -> None:
    """In the one transaction, after ``file``'s statements: its checks, then its records and
    the check that they landed; a failure here is ``file``'s (StatementFailed), not the last
    file's at COMMIT."""
    import psycopg

    conn = run.conn
    try:
        for query, params in run.pre_commit_statements(file):
            conn.execute(query, params)
    except psycopg.Error as exc:
        result.status, result.error = "failed", error_from(exc, result.file, None, None)
        raise StatementFailed(result) from exc
    if run.tripwire is not None:
        _tripwire_check(run.tripwire, conn, file, result)
    if run.before_commit is not None:  # guard:verify (issue #19)
        run.before_commit(conn, file)
    try:
        run.record(file, last=False)
    except psycopg.Error as exc:
        result.status, result.error = "failed", error_from(exc, result.file, None, None)
        raise StatementFailed(result) from exc


def _all_failed_at_commit(
    run: ApplyContext, results: list[MigrationResult], done: list[MigrationResult], executed_all: bool,
    exc: Exception, at_end: bool,
) -> None:
    import psycopg

    conn, outcome, last = run.conn, run.outcome, results[-1]
    outcome.failed, outcome.connection_lost = last, conn.broken or conn.closed
    if executed_all and (conn.broken or conn.closed or isinstance(exc, psycopg.OperationalError)):
        for result in done:
            result.status = "unknown"
        outcome.unknown = True
    else:
        for result in done:
            result.status = "rolled_back"
        last.status = "failed"
    deferred = at_end and not outcome.unknown and len(results) > 1  # fired at the one transaction's end
    message = deferred_at_end(exc, len(results)) if deferred else primary(exc)
    last.error = MigrationError(message=message, sqlstate=getattr(exc, "sqlstate", None), file=last.file, line=None)


def _tripwire_check(tripwire: Tripwire, conn: psycopg.Connection[Any], file: MigrationFile,
                    result: MigrationResult) -> None:
    """The safety net's check of one file before its COMMIT: a failure is the file's."""
    import psycopg

    try:
        tripwire.check(conn, file)
    except psycopg.Error as exc:
        result.status = "failed"
        result.error = error_from(exc, result.file, None, None)
        raise StatementFailed(result) from exc


def _run_statements(
    conn: psycopg.Connection[Any], file: MigrationFile, result: MigrationResult, before: BeforeStatement,
    *, prefix: str = "", skip: frozenset[int | None] = frozenset(),
) -> None:
    """Each statement in turn but those of ``skip``; ``prefix`` (BEGIN and its settings)
    goes with the first."""
    import psycopg

    for index, statement in enumerate(file.statements):
        if not statement.kind or index in skip:
            continue  # only comments: kept in the history as the CLI does, nothing to run
        # With a prefix the transaction is not open yet, and the caller sends one only when
        # ``before`` has nothing to do for this statement.
        replacement = None
        try:
            if not prefix:
                replacement = before(conn, statement, f"{result.file}:{statement.line}")
        except psycopg.Error as exc:
            result.status = "failed"
            result.error = error_from(exc, result.file, statement, index)
            result.error.message = f"protective copy before this statement failed: {result.error.message}"
            raise StatementFailed(result, statement.sql) from exc
        try:
            conn.execute(prefix + (replacement or statement.sql))
        except psycopg.Error as exc:
            result.status = "failed"
            # A position in a rewritten statement (safety net) is not one in the file.
            shift = len(prefix) if replacement is None else len(replacement) + 1
            result.error = error_from(exc, result.file, statement, index, shift=shift)
            raise StatementFailed(result, statement.sql) from exc
        prefix = ""
