"""Many files' transactions in one message: a release in a few round trips, each file's
semantics kept.

Each file of a stream is ``BEGIN; <timeouts>; <its statements>; <pre-COMMIT checks>;
<its deferred constraints fired>; <session reset>; <guard's identity>; <history row>;
<journal row>; <the check that both landed>; COMMIT``, and a stream is one simple Query
message holding the transactions of up to STREAM_FILES files (at most STREAM_BYTES of SQL).
The property used is PostgreSQL's, documented in the protocol chapter, "Message Flow" >
"Simple Query" > "Multiple Statements in a Simple Query"
(https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-MULTI-STATEMENT):
a COMMIT in the string commits at once, and when a statement fails the server abandons the
rest of the string. So the files before the failing one stay committed, the failing one
rolls back (its transaction is aborted and ends with our ROLLBACK), and the files after it
never start: exactly what sending them one at a time gives, minus the round trips. A failure
at COMMIT itself (a deferred constraint) also abandons the rest of the string.

Why not libpq's pipeline mode (protocol chapter, "Extended Query" and "Pipelining"): there,
after an error the server discards messages until the next Sync, which gives the same
property with one Sync per stream; but every statement must be its own Parse/Bind/Execute
(the extended protocol refuses several commands in one Parse), so a file's ~18 statements
are 18 calls through psycopg and 18 messages, and one Sync per file would not do: an error
at COMMIT ends the transaction, and the next file's messages after that Sync would run.
Measured on this machine with 1,000 files, the two take the same time (the server's own
work dominates), so the simpler one on the client is kept: one string, one call.

What the simple protocol asks in return, and how each is met:

- The server parses the whole string before running any of it, so a statement its parser
  refuses (guard's parser is a newer PostgreSQL's) rejects the whole stream with nothing
  run: no result came back, and the stream's files are then applied one at a time.
- Each statement of the string returns one result, so the number of results before the
  error names the failing statement. What committed is then read back from the history
  (one query) rather than trusted to that count.
- Statements run between a COMMIT and the next BEGIN would share the next file's
  transaction (an implicit block that BEGIN extends), started under the previous file's
  session defaults. So the session reset (session.py) runs inside each file's
  transaction, before its COMMIT, where all of its statements are allowed: the next
  BEGIN starts clean.
- PostgreSQL 13+ times each statement of a multi-statement message on its own
  (statement_timeout); older servers would time the whole stream: they never stream.

A file streams only when nothing has to happen on the client between its statements
(``streamable``); any other file goes the file-at-a-time way (apply.py), chosen per file,
and each result's ``path`` says which it took. Never streamed: files run outside a
transaction (CONCURRENTLY, VACUUM...) or with transaction control of their own, files with
a protective copy to take before a statement, COPY, files over STREAM_FILE_BYTES (their
history row goes as a parameter), runs with lock retries (a retry needs the client between
files), and ``transaction: all`` (one transaction already: there is no per-file commit to
stream, and the file-at-a-time path keeps its simpler failure account).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.migrations.apply_state import ApplyContext, error_from, interrupted, ms, rollback_quietly
from guard.migrations.blockers import LOCK_NOT_AVAILABLE, name_blockers
from guard.migrations.own_transactions import TRANSACTION_STMT
from guard.migrations.session import AFTER_RESET_AS_GUARD, FIRE_DEFERRED, RESET_STATEMENTS
from guard.protect.upsert import copies_before
from guard.report.model import MigrationError

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile
    from guard.report.model import MigrationResult

STREAM_FILES = 250
# The first stream of a run of them (nothing in flight to hide its text's building): short,
# so the server starts early and the next stream's text is built while it works.
STREAM_FIRST_FILES = 25
STREAM_BYTES = 1024 * 1024
# Files bigger than this send their history row as a parameter (apply.INLINE_RECORD_BYTES).
STREAM_FILE_BYTES = 256 * 1024
# Statements whose result is not one CommandComplete: the server would switch protocols.
_NOT_STREAMED_KINDS = frozenset({TRANSACTION_STMT, "CopyStmt"})
# Settings that change how the server's lexer reads the statements after them: a stream is
# lexed whole when it arrives, one statement at a time would see them change (scan.l).
_LEXER_SETTINGS = re.compile(r"standard_conforming_strings|backslash_quote", re.IGNORECASE)
SELECT_COMMITTED = "SELECT version FROM supabase_migrations.schema_migrations WHERE version = ANY(%s)"


class _Part(Struct, frozen=True):
    """One statement of the stream: which file, which of its statements (None: guard's)."""

    file: int
    statement: int | None
    offset: int  # character offset of the statement in the stream's text


def streamable(run: ApplyContext, file: MigrationFile) -> bool:
    """True when ``file`` can travel in a stream: no protective copy to take before one of
    its statements, no transaction control or COPY of its own, no setting that changes how
    the statements after it are lexed, and small enough to have its
    history row quoted into the text. The caller has already excluded files that run
    outside a transaction and runs with lock retries."""
    if run.before_commit is not None and "guard:verify" in (file.text or ""):
        return False  # its checks run as Python (run/verify.py) before its COMMIT
    size = 0
    for statement in file.statements:
        if statement.kind in _NOT_STREAMED_KINDS:
            return False
        if copies_before(statement, run.before_kinds):  # an INSERT only when it is an upsert
            return False
        if _LEXER_SETTINGS.search(statement.sql):
            return False
        size += len(statement.sql)
    return size <= STREAM_FILE_BYTES


def _file_text(run: ApplyContext, file: MigrationFile, cursor: psycopg.ClientCursor[Any]) -> list[tuple[int | None, str]]:
    """The statements of ``file``'s transaction in a stream, (statement index or None, sql);
    ``cursor`` quotes guard's parameters (one for the whole stream)."""
    # The safety net's tripwire: its snapshot after BEGIN, its check (a statement that raises)
    # before COMMIT and before the session reset, whose RESET ALL would clear the snapshot.
    start, check = run.tripwire.streamed(file) if run.tripwire is not None else ([], [])
    parts: list[tuple[int | None, str]] = [(None, "BEGIN"), *((None, s) for s in run.local_settings)]
    parts += [(None, cursor.mogrify(q, p)) for q, p in start]
    parts += [(i, s.sql) for i, s in enumerate(file.statements) if s.kind]
    # The file's deferred constraints and triggers fire here, as they would at its COMMIT
    # (the file's session still in force, before the checks and the tripwire's AS_GUARD, so
    # the checks see what they did): the reset's DISCARD TEMP refuses to drop a temp table
    # with events pending (55006), which one file at a time never meets.
    parts.append((None, FIRE_DEFERRED))
    # The place for checks that must pass before COMMIT (apply_state.PreCommit).
    parts += [(None, cursor.mogrify(q, p)) for q, p in run.pre_commit_statements(file)]
    parts += [(None, s) for s in check]
    parts += [(None, s) for s in (*RESET_STATEMENTS, *AFTER_RESET_AS_GUARD)]
    records = run.records(file)
    for record in [_one_statement(records)] if run.records_as_one else records:
        parts.append((None, cursor.mogrify(*record)))
    parts.append((None, FIRE_DEFERRED))  # a deferred trigger on guard's tables fires before the check
    parts.append((None, cursor.mogrify(*run.landed(file, records))))  # raises unless they landed
    parts += [(None, cursor.mogrify(q, p) if p else q) for q, p in run.kept(file)]  # guard's records of the run
    parts.append((None, "COMMIT"))
    return parts


# Rules rewrite an INSERT into another query, several or none, and a WITH does not survive
# that: PostgreSQL refuses a WITH in a query a rule makes several of ("WITH cannot be used in
# a query that is rewritten by rules into multiple queries", rewriteHandler.c RewriteQuery),
# refuses a data-modifying WITH on a table with rules, and a DO INSTEAD NOTHING drops the
# WITH with the statement. Qualified throughout: the database's search_path is in force.
_RECORD_TABLES_HAVE_RULES = (
    "SELECT pg_catalog.count(*) FROM pg_catalog.pg_class WHERE relhasrules AND oid OPERATOR(pg_catalog.=) ANY "
    "(ARRAY[pg_catalog.to_regclass('supabase_migrations.schema_migrations'), pg_catalog.to_regclass('guard.run_commits')])"
)


# Statements that make a rule, or may make one the parser cannot see (EXECUTE in a DO block or
# in a function the release makes): a DO ALSO rule on either table made by a DO block turned
# the one-statement records into PostgreSQL's 0A000 (WITH with rules) and failed a sound file.
_MAY_MAKE_RULES = frozenset({"RuleStmt", "DoStmt", "CreateFunctionStmt"})


def records_as_one(conn: psycopg.Connection[Any], files: Sequence[MigrationFile], rules: int | None = None) -> bool:
    """True when guard's records of a streamed file may go as one statement (``_one_statement``):
    no rule on the history table or guard.run_commits, and no file of ``files`` makes one
    (CREATE RULE) or may make one unseen (a DO block, a function: _MAY_MAKE_RULES). One query, none given ``rules``, how many of those tables have rules, just
    read (:func:`record_tables`)."""
    if any(s.kind in _MAY_MAKE_RULES for file in files for s in file.statements):
        return False
    if rules is None:
        row = conn.execute(_RECORD_TABLES_HAVE_RULES).fetchone()
        rules = row[0] if row is not None else None
    return rules == 0


def record_tables(conn: psycopg.Connection[Any]) -> tuple[bool, int]:
    """(the history table is complete, as history.is_complete says; how many of the tables
    guard records a file in have rules, as :func:`records_as_one` asks): one query for both,
    asked before a release's first file."""
    from guard.migrations.history import HISTORY_COMPLETE

    row = conn.execute(f"SELECT ({HISTORY_COMPLETE}), ({_RECORD_TABLES_HAVE_RULES})").fetchone()
    assert row is not None
    return bool(row[0]), int(row[1])


def _one_statement(records: list[tuple[str, tuple[Any, ...]]]) -> tuple[str, tuple[Any, ...]]:
    """guard's records of a file (the history row first, then the journal's) as one statement:
    the others as data-modifying WITH queries before the history row's INSERT. PostgreSQL runs
    each of them exactly once, to completion, whether or not anything reads them (queries.html,
    "Data-Modifying Statements in WITH"). One statement fewer a file; only when no rule is
    in the way (``records_as_one``)."""
    (history, params), others = records[0], records[1:]
    if not others:
        return history, params
    ctes = ", ".join(f"guard_record_{i} AS ({query})" for i, (query, _) in enumerate(others))
    ordered = tuple(p for _, ps in others for p in ps) + tuple(params)
    return f"WITH {ctes} {history}", ordered


def _stream_text(run: ApplyContext, files: Sequence[MigrationFile]) -> tuple[str, list[_Part]]:
    """The stream's text and where each of its statements starts."""
    import psycopg

    cursor = psycopg.ClientCursor(run.conn)
    chunks: list[str] = []
    parts: list[_Part] = []
    offset = 0
    for number, file in enumerate(files):
        for index, sql in _file_text(run, file, cursor):
            parts.append(_Part(number, index, offset))
            # A newline before ';' ends a trailing line comment of the statement.
            chunks.append(sql + "\n;\n")
            offset += len(sql) + 3
    return "".join(chunks), parts


def stream_length(run: ApplyContext, files: Sequence[MigrationFile], start: int, limit: int = STREAM_FILES) -> int:
    """How many files from ``files[start]`` on go in one stream, at most ``limit`` (0: that
    file does not stream)."""
    total = 0
    end = start
    while end < len(files) and end - start < limit and streamable(run, files[end]):
        total += sum(len(s.sql) for s in files[end].statements)
        if end > start and total > STREAM_BYTES:
            break
        end += 1
    return end - start


class Prepared(Struct, frozen=True):
    """A stream's text, built before it is sent (``prepare``)."""

    text: str
    parts: list[_Part]


def prepare(run: ApplyContext, files: Sequence[MigrationFile]) -> Prepared:
    """The text of the stream of ``files``: pure string work on the client, no round trip, so
    it can be done while the server runs the stream before (``apply_stream``'s ``meanwhile``)."""
    return Prepared(*_stream_text(run, files))


def apply_stream(
    run: ApplyContext, files: Sequence[MigrationFile], results: Sequence[MigrationResult],
    prepared: Prepared | None = None, meanwhile: Callable[[], None] | None = None,
) -> bool | None:
    """Apply ``files`` in one message (see the module's docstring). True: all committed;
    False: one failed (``run.outcome`` says which; those after it did not run); None: the
    server refused the text as a whole and nothing ran (apply them one at a time).

    ``prepared``: the text, when it was built ahead. ``meanwhile`` runs on the client once
    the server has the whole stream and before its results are read (the caller builds the
    next stream's text then, so the client's work and the server's overlap); nothing it
    does can change what this stream does, an exception from it is dropped (the next
    stream's text is then built again in its turn, where the error shows), and a signal
    during it cancels the stream on the server as a signal during the wait would."""
    import psycopg
    from psycopg import generators

    conn = run.conn
    started = time.perf_counter()
    for result in results:
        result.path = "pipeline"
    run.progress(f"applying {results[0].file} .. {results[-1].file} in one stream ({len(files)} files)")
    try:
        # A signal while the text is built: nothing of this stream has run yet.
        if prepared is None:
            prepared = prepare(run, files)
        text, parts = prepared.text, prepared.parts
        conn.pgconn.send_query(text.encode(conn.info.encoding))
        conn.wait(generators.send(conn.pgconn))  # flushed: the server has the whole stream
        if meanwhile is not None:
            _meanwhile(meanwhile)
        found = conn.wait(generators.fetch_many(conn.pgconn))
    except KeyboardInterrupt as exc:
        _stop(conn)
        _interrupted(run, files, results, exc, started)
        return False
    except psycopg.Error as exc:  # the connection broke: any file may have committed
        _lost(run, results, exc, started)
        return False
    error = next((r for r in found if r.status == psycopg.pq.ExecStatus.FATAL_ERROR), None)
    if error is not None and (conn.broken or conn.closed):  # the error was the connection's end
        _lost(run, results, psycopg.errors.error_from_result(error, encoding=conn.info.encoding), started)
        return False
    elapsed = ms(started)
    if error is None:
        for file, result in zip(files, results, strict=True):
            _applied(run, file, result, elapsed / len(files))
        return True
    if len(found) == 1:
        return None  # refused before the first statement ran: parsed as a whole and rejected
    failure = psycopg.errors.error_from_result(error, encoding=conn.info.encoding)
    _failed(run, files, results, parts[len(found) - 1], failure, elapsed)
    return False


def _meanwhile(work: Callable[[], None]) -> None:
    """Run ``work`` while the server runs the stream just sent; a signal here goes on to
    apply_stream, which stops the stream on the server (``_stop``)."""
    try:
        work()
    except Exception:  # noqa: S110 - built again in its turn, where the error is reported
        pass


def _stop(conn: psycopg.Connection[Any]) -> None:
    """A signal came while the stream's answer was not read (during its sending, or while the
    next text was built): cancel what runs on the server and read its answer, as psycopg does
    for a signal during its own wait (Connection.wait), so the connection can ask the history
    what committed. A cancel that lands while the server still reads the message is lost:
    it is sent again after a second. A server that does not stop, or a second signal: the connection is
    given up (the caller settles from the history after reconnecting)."""
    import psycopg
    from psycopg import generators
    from psycopg.pq import TransactionStatus

    if conn.closed or conn.pgconn.transaction_status != TransactionStatus.ACTIVE:
        return  # nothing in flight: psycopg's own wait has read the answer
    try:
        # A message cut short would hold the server reading it: the rest is sent first.
        conn.wait(generators.send(conn.pgconn), timeout=5.0)
        for wait in (1.0, 4.0):
            conn.cancel_safe(timeout=5.0)
            try:
                conn.wait(generators.fetch_many(conn.pgconn), timeout=wait)
            except psycopg.OperationalError:  # not answered in time (or the connection broke)
                continue
            return
    except BaseException:  # noqa: S110 - a second signal: given up below, the first one goes on
        pass
    conn.pgconn.finish()


def _applied(run: ApplyContext, file: MigrationFile, result: MigrationResult, duration: float) -> None:
    result.status = "applied"
    # A stream's files share its time: each gets an equal share.
    result.duration_ms = round(duration, 1)
    run.outcome.committed.append(file.version)


def _committed(run: ApplyContext, files: Sequence[MigrationFile]) -> set[str] | None:
    """Versions of ``files`` the history holds; None when it cannot be read."""
    import psycopg

    if run.conn.broken or run.conn.closed:
        return None
    try:
        rows = run.conn.execute(SELECT_COMMITTED, ([f.version for f in files],)).fetchall()
    except psycopg.Error:
        return None
    return {r[0] for r in rows}


def _failed(
    run: ApplyContext, files: Sequence[MigrationFile], results: Sequence[MigrationResult], part: _Part,
    exc: Exception, elapsed: float,
) -> None:
    """A statement of the stream failed: the files before it committed, it did not."""
    rollback_quietly(run.conn)  # the failing file's transaction, aborted
    committed = _committed(run, files)
    stop = part.file
    if committed is not None:
        # The history, not the count of results, says what committed.
        stop = next((n for n, f in enumerate(files) if f.version not in committed), len(files))
    for number in range(min(stop, len(files))):
        _applied(run, files[number], results[number], elapsed / len(files))
    if stop >= len(files):
        return
    file, result = files[stop], results[stop]
    index = part.statement if stop == part.file else None
    statement = file.statements[index] if index is not None else None
    result.status = "failed"
    result.duration_ms = round(elapsed / len(files), 1)
    result.error = error_from(exc, result.file, statement, index, shift=part.offset if statement else 0)
    run.outcome.failed = result
    if statement is not None and result.error.sqlstate == LOCK_NOT_AVAILABLE:
        name_blockers(run.conn, result.error, statement.sql)


def _interrupted(
    run: ApplyContext, files: Sequence[MigrationFile], results: Sequence[MigrationResult],
    exc: KeyboardInterrupt, started: float,
) -> None:
    """A signal during the stream: psycopg has cancelled the running statement on the
    server; what committed before it is read from the history (when the connection is still
    there; otherwise the caller settles it after reconnecting)."""
    rollback_quietly(run.conn)
    committed = _committed(run, files) or set()
    elapsed = ms(started)
    stop = next((n for n, f in enumerate(files) if f.version not in committed), len(files) - 1)
    for number in range(stop):
        _applied(run, files[number], results[number], elapsed / len(files))
    interrupted(run.outcome, results[stop], exc)
    run.outcome.connection_lost = run.conn.broken or run.conn.closed


def _lost(run: ApplyContext, results: Sequence[MigrationResult], exc: Exception, started: float) -> None:
    """The connection broke during the stream: every file of it may have committed, or not.
    All are "unknown" until the history, read again after reconnecting, says
    (run/apply.py reconcile)."""
    from guard.migrations.apply_state import primary

    for result in results:
        result.status = "unknown"
        result.duration_ms = None
        result.error = MigrationError(
            message=f"the connection broke while a stream of {len(results)} files was running: {primary(exc)}",
            sqlstate=getattr(exc, "sqlstate", None), file=result.file, line=None,
        )
    run.outcome.failed = results[0]
    run.outcome.unknown = True
    run.outcome.connection_lost = True
    run.progress(f"connection lost after {ms(started) / 1000:.1f} s in a stream of {len(results)} files")
