"""Step 12: verify — the team's checks (`verify:`) and each file's ``-- guard:verify`` lines.

A file's checks run inside its transaction just before its COMMIT; with ``transaction: all``
the configured ``sql:`` checks also run inside the one transaction: a failing check rolls back
(the apply step reports it as the file's failure). Every other configured check runs after
the last COMMIT, read-only; a failure there is ``verify_failed`` (exit 4) with the restore
plan (guard.restore_verify), whose first step is `guard undo` when undo's own dry run would
accept the run, else why not (undo_offered, guard.restore_undo). Before any change
(preflight), every check must be usable: its command found, its SQL one read-only query.
Each check is reported with its name (``verify.<name>`` or ``file:line``), result, duration
and, when it fails, the first rows of its query as PostgreSQL's text output.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg

from guard.config import Config, VerifyCheck
from guard.run.state import RunState

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile
    from guard.restore import RestoreContext

FIRST_ROWS = 5
SHOWN_COLUMNS = 20  # of a failing check's rows, in the report
FILE_CHECK_TIMEOUT = 60.0  # seconds, for a file's own -- guard:verify lines
SET_TIMEOUT = "SET LOCAL statement_timeout = {ms}"


class Rows(NamedTuple):
    """A check's first rows: column names, values as text (None: NULL), how many in all."""

    columns: list[str]
    values: list[list[str | None]]
    total: int


class VerifyFailed(psycopg.Error):
    """A check failed inside a migration transaction: a psycopg.Error, so the apply step rolls
    the file back and reports it as the file's failure."""


# Statement kinds that write: a check holding one (a data-modifying CTE) is refused.
_WRITES = ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt")


def one_query(sql: str) -> str:
    """``sql`` when it is exactly one query (SELECT, VALUES, TABLE) that writes nothing: no
    second statement (a ``; commit; delete ...`` would run unseen), no data-modifying WITH,
    no SELECT INTO. Raises VerifyFailed naming what is wrong. Functions it calls are held
    read-only by the caller (_sql)."""
    import pglast
    from pglast import ast

    try:
        statements = pglast.parse_sql(sql)
    except pglast.parser.ParseError as exc:
        raise VerifyFailed(f"not a valid query: {exc}") from None
    if len(statements) != 1 or not isinstance(statements[0].stmt, ast.SelectStmt):
        raise VerifyFailed("a check must be exactly one query (SELECT, VALUES or TABLE), nothing else")
    stmt = statements[0].stmt
    found = [type(node).__name__ for node in _nodes(stmt) if type(node).__name__ in _WRITES]
    if found or getattr(stmt, "intoClause", None) is not None:
        raise VerifyFailed("a check must not write (it holds a data-modifying statement or SELECT INTO)")
    return sql


def _nodes(node: Any) -> Any:
    from pglast import ast

    if isinstance(node, ast.Node):
        yield node
        for name in node:
            yield from _nodes(getattr(node, name))
    elif isinstance(node, (tuple, list)):
        for item in node:
            yield from _nodes(item)


def _sql(conn: psycopg.Connection[Any], sql: str, expect_empty: bool, timeout: float) -> tuple[bool, Rows]:
    """Run the one query ``sql`` (one_query) inside the current transaction, in a read-only
    savepoint rolled back afterwards: whatever a function it calls tries to write fails, and
    nothing of the check stays. (passed, first rows as PostgreSQL's text output)."""
    query = one_query(sql)
    # The server reads the check as pglast did: with standard_conforming_strings off (a legacy
    # database's setting) 'x\'' ends where pglast sees it go on, and a "; COMMIT; ..." hidden
    # in what pglast took for a string would run.
    conn.execute(("SAVEPOINT guard_verify; SET LOCAL transaction_read_only = on; "
                  "SET LOCAL standard_conforming_strings = on; "
                  + SET_TIMEOUT.format(ms=max(1, int(timeout * 1000)))).encode())
    cursor = conn.execute(query.encode())
    first = cursor.fetchmany(2) if cursor.description is not None else []
    shown = as_text(cursor, conn.info.encoding)
    conn.execute(b"ROLLBACK TO SAVEPOINT guard_verify; RELEASE SAVEPOINT guard_verify")
    passed = not first if expect_empty else (len(first) == 1 and first[0][0] is True)
    return passed, shown


def as_text(cursor: psycopg.Cursor[Any], encoding: str) -> Rows:
    """The first FIRST_ROWS rows of ``cursor``'s result as PostgreSQL wrote them in its text
    output (what psql shows: ``1``, ``t``, ``2026-11-30 08:00:00+00``), None for NULL; the
    column names first. Read from the result itself (libpq's PQgetvalue), not from Python
    values, so that no Python spelling (``Decimal('1')``, ``True``) reaches a report. At most
    SHOWN_COLUMNS columns, each value cut at guard.report.verify.SHOWN_CHARS."""
    from guard.report.verify import SHOWN_CHARS, cut

    result = cursor.pgresult
    if cursor.description is None or result is None:
        return Rows([], [], 0)
    names = [d.name for d in cursor.description][:SHOWN_COLUMNS]
    rows = []
    for i in range(min(result.ntuples, FIRST_ROWS)):
        values = (result.get_value(i, j) for j in range(min(result.nfields, SHOWN_COLUMNS)))
        # Only the shown part is decoded: a value may be a megabyte of text.
        rows.append([None if v is None else cut(bytes(v)[:SHOWN_CHARS * 4].decode(encoding, "replace"))
                     for v in values])
    return Rows(names, rows, result.ntuples)


def _result(name: str, kind: str, passed: bool, started: float, where: str, rows: Rows | None = None,
            error: str | None = None, output: list[str] | None = None) -> dict[str, Any]:
    """One check as the report lists it (docs/report.md): ``rows`` as text, None for NULL."""
    result: dict[str, Any] = {
        "name": name, "kind": kind, "result": "passed" if passed else "failed", "where": where,
        "duration_ms": round((time.perf_counter() - started) * 1000, 1), "error": error}
    if kind == "run":
        result["output"] = [] if passed else (output or [])
    else:
        shown = rows if rows is not None and not passed else Rows([], [], 0)
        result.update(columns=shown.columns, rows=shown.values, row_count=shown.total)
    return result


def _note(state: RunState, result: dict[str, Any]) -> None:
    from guard.report.verify import check_line

    state.report.verify.append(result)
    state.progress(f"verify {check_line(result)}")


def in_transaction(state: RunState, checks: Sequence[VerifyCheck], transaction: str
                   ) -> Callable[[psycopg.Connection[Any], MigrationFile | None], None]:
    """The apply step's before-COMMIT hook: a file's own checks (``file`` given), and with
    ``transaction: all`` the configured sql checks (``file`` None, once, before the COMMIT).
    A failure raises VerifyFailed naming the check."""
    from guard.report.verify import rows_summary

    def before_commit(conn: psycopg.Connection[Any], file: MigrationFile | None) -> None:
        todo = _todo(state, checks, transaction, file)
        where = "before COMMIT" if file is None or not _statementwise(state, file) else "after its last statement"
        for name, sql, empty, timeout in todo:
            started = time.perf_counter()
            kind = "file" if file else "sql"
            try:
                passed, rows = _sql(conn, sql, empty, timeout)
            except psycopg.Error as exc:
                _note(state, _result(name, kind, False, started, where, error=_message(exc)))
                raise
            result = _result(name, kind, passed, started, where, rows)
            _note(state, result)
            if not passed:
                what = f"guard:verify check at line {name.rsplit(':', 1)[1]}" if file else f"check {name}"
                raise VerifyFailed(f"{what} failed: {sql} ({rows_summary(result)})")

    return before_commit


def _statementwise(state: RunState, file: MigrationFile) -> bool:
    """``file`` runs statement by statement (it holds a statement that cannot run in a
    transaction, or transactions of its own), as guard.migrations.apply._apply_file decides:
    its checks run after its last statement, not before a COMMIT of guard's."""
    from guard.migrations.own_transactions import TRANSACTION_STMT, transaction_shape
    from guard.run.lint_gate import outside_transaction

    if any(s.kind == TRANSACTION_STMT for s in file.statements):
        if transaction_shape(file.statements).kind == "several":
            return True
    return file.version in outside_transaction(state.findings, [file], state.display)


def _todo(state: RunState, checks: Sequence[VerifyCheck], transaction: str,
          file: MigrationFile | None) -> list[tuple[str, str, bool, float]]:
    """(name, sql, expect empty, timeout) of the checks due before this COMMIT."""
    from guard.migrations.verify_lines import file_checks

    if file is None:
        return [(f"verify.{c.name}", c.sql, c.expect_empty, c.timeout) for c in checks
                if c.sql and transaction == "all"]
    try:
        found = file_checks(file)
    except ValueError as exc:
        raise VerifyFailed(f"{state.display(file)}: {exc}") from None
    return [(f"{state.display(file)}:{c.line}", c.sql, False, FILE_CHECK_TIMEOUT) for c in found]


def _message(exc: psycopg.Error) -> str:
    return exc.diag.message_primary or str(exc)


def run_checks(conn: psycopg.Connection[Any], checks: Sequence[VerifyCheck], *, url: str, base_dir: Path,
               environ: Mapping[str, str], where: str) -> list[dict[str, Any]]:
    """Each check outside any migration transaction (sql: read-only, rolled back); results."""
    from guard.run.verify_run import run_command

    results = []
    for check in checks:
        started = time.perf_counter()
        if check.sql:
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute("SET TRANSACTION READ ONLY")
                    passed, rows = _sql(conn, check.sql, check.expect_empty, check.timeout)
                results.append(_result(f"verify.{check.name}", "sql", passed, started, where, rows))
            except psycopg.Error as exc:
                results.append(_result(f"verify.{check.name}", "sql", False, started, where, error=_message(exc)))
        else:
            passed, output, error = run_command(check.run, check.timeout, base_dir, {**environ, "DATABASE_URL": url})
            results.append(_result(f"verify.{check.name}", "run", passed, started, where, error=error, output=output))
    return results


def preflight(state: RunState, checks: Sequence[VerifyCheck], base_dir: Path) -> None:
    """Before any change: every ``run:`` check's command exists and may be executed, every
    configured ``sql:`` check and every pending file's ``-- guard:verify`` line is one query
    that writes nothing. ConfigError (exit 2) naming ``verify.<name>``, or MigrationFileError
    (exit 3) naming file:line."""
    from guard.errors import ConfigError, MigrationFileError
    from guard.migrations.verify_lines import CheckLineError, file_checks
    from guard.run.verify_run import check_command

    for check in checks:
        if check.run:
            check_command(check.name, check.run, base_dir, state.environ)
        elif check.sql:
            try:
                one_query(check.sql)
            except VerifyFailed as exc:
                raise ConfigError(str(exc), key=f"verify.{check.name}.sql") from None
    for file in state.pending:
        where = state.display(file)
        try:
            found = file_checks(file)
        except CheckLineError as exc:
            raise MigrationFileError(exc.reason, file=where, line=exc.line) from None
        for line in found:
            try:
                one_query(line.sql)
            except VerifyFailed as exc:
                raise MigrationFileError(f"-- guard:verify: {exc}", file=where, line=line.line) from None


def after_commit(state: RunState, checks: Sequence[VerifyCheck], transaction: str, base_dir: Path,
                 restore: RestoreContext) -> None:
    """After an applied release: the configured checks not run before COMMIT; a failure makes
    the outcome ``verify_failed`` (exit 4) with its plan (guard.restore_verify)."""
    from guard.restore import build_plan

    if state.report.status != "applied":
        return
    todo = [c for c in checks if not (c.sql and transaction == "all")]
    conn = state.reconnected if state.reconnected is not None else state.db
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        for check in todo:
            started = time.perf_counter()
            results += run_checks(conn, [check], url=state.url, base_dir=base_dir, environ=state.environ,
                                  where="after COMMIT")
    except KeyboardInterrupt as exc:  # SIGINT/SIGTERM: the release stays applied; say what was not checked
        from guard.report.verify import NOT_FINISHED

        state.report.interrupted = getattr(exc, "signal_name", "SIGINT")
        done = {r["name"] for r in results}
        # The running check's duration is how long it ran; those never started ran 0 ms.
        results += [_result(f"verify.{c.name}", "sql" if c.sql else "run", False,
                            started if i == len(done) else time.perf_counter(), "after COMMIT",
                            error=f"{NOT_FINISHED}: interrupted by {state.report.interrupted}")
                    for i, c in enumerate(todo) if f"verify.{c.name}" not in done]
    for result in results:
        _note(state, result)
    failed = [r["name"] for r in results if r["result"] == "failed"]
    if failed:
        message = (f"Applied, but verification failed: {', '.join(failed)}. "
                   "The database changed and is not as intended.")
        if state.report.interrupted:
            message = (f"Applied, but verification was interrupted by {state.report.interrupted}: "
                       f"{', '.join(failed)} did not pass. The database changed and is not known to be "
                       "as intended.")
        state.report.set_outcome("verify_failed", message, changed=True)
        state.report.restore_plan = build_plan(state.report, restore)


@contextmanager
def undo_offered(state: RunState, config: Config) -> Iterator[None]:
    """Around the journal entry (outcome.journal_closed), so that it runs once the entry is
    closed (undo only takes finished runs), still under guard's lock: an exit-4 plan's first
    step is `guard undo` when undo's own dry run would accept the run, else why not
    (guard.restore_undo); the journal keeps the plan as shown. Not after an exception."""
    yield
    _offer_undo(state, config)


def _offer_undo(state: RunState, config: Config) -> None:
    report = state.report
    if report.exit_code != 4 or report.restore_plan is None:
        return
    from guard.restore_undo import Answer, ask, offer
    from guard.run.outcome import finish_journal

    conn = state.reconnected if state.reconnected is not None else state.db
    live = conn is not None and not (conn.broken or conn.closed)
    try:
        answer = ask(conn if live else None, config, report.run_id)
    except KeyboardInterrupt as exc:  # the outcome is settled and journaled: it stands, only the offer stops
        answer = Answer(None, why=f"interrupted by {getattr(exc, 'signal_name', 'SIGINT')}")
    offer(report.restore_plan, answer, report.run_id)
    live = conn is not None and not (conn.broken or conn.closed)
    if live and state.journal_started:
        finish_journal(conn, report, state.mask)


def on_shadow(checks: Sequence[VerifyCheck], shadow_url: str, base_dir: Path, report: Any,
              progress: Callable[[str], None]) -> list[str]:
    """`guard check --shadow`: the checks marked ``shadow: true``, on the shadow after its dry
    run; their results go in ``report.verify``; returns the names that failed."""
    import os

    from guard.db import connect

    todo = [c for c in checks if c.shadow]
    if not todo:
        return []
    conn = connect(shadow_url, application_name="guard check (verify)")
    try:
        results = run_checks(conn, todo, url=shadow_url, base_dir=base_dir, environ=os.environ, where="shadow")
    finally:
        conn.close()
    for result in results:
        report.verify.append(result)
        progress(f"verify {result['name']} on the shadow: {result['result']} ({result['duration_ms']:g} ms)")
    return [r["name"] for r in results if r["result"] == "failed"]
