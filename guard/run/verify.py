"""Step 12: verify — the team's checks (`verify:`) and each file's ``-- guard:verify`` lines.

A file's checks run inside its transaction just before its COMMIT; with ``transaction: all``
the configured ``sql:`` checks also run inside the one transaction: a failing check rolls back
(the apply step reports it as the file's failure). Every other configured check runs after
the last COMMIT, read-only; a failure there is ``verify_failed`` (exit 4) with the restore
plan, whose first step is `guard undo`. Each check is reported with its name (``verify.<name>``
or ``file:line``), result, duration and, when it fails, the first rows of its query.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from guard.config import VerifyCheck
from guard.run.state import RunState

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile
    from guard.restore import RestoreContext

FIRST_ROWS = 5
SET_TIMEOUT = "SET LOCAL statement_timeout = {ms}"


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


def _sql(conn: psycopg.Connection[Any], sql: str, expect_empty: bool, timeout: float) -> tuple[bool, list[list[str]]]:
    """Run the one query ``sql`` (one_query) inside the current transaction, in a read-only
    savepoint rolled back afterwards: whatever a function it calls tries to write fails, and
    nothing of the check stays. (passed, first rows as text)."""
    query = one_query(sql)
    conn.execute(("SAVEPOINT guard_verify; SET LOCAL transaction_read_only = on; "
                  + SET_TIMEOUT.format(ms=max(1, int(timeout * 1000)))).encode())
    cursor = conn.execute(query.encode())
    rows = cursor.fetchmany(FIRST_ROWS + 1) if cursor.description is not None else []
    conn.execute(b"ROLLBACK TO SAVEPOINT guard_verify; RELEASE SAVEPOINT guard_verify")
    shown = [[str(v) for v in row] for row in rows[:FIRST_ROWS]]
    passed = not rows if expect_empty else (len(rows) == 1 and rows[0][0] is True)
    return passed, shown


def _result(name: str, kind: str, passed: bool, started: float, where: str, rows: list[list[str]],
            error: str | None = None) -> dict[str, Any]:
    return {"name": name, "kind": kind, "result": "passed" if passed else "failed", "where": where,
            "duration_ms": round((time.perf_counter() - started) * 1000, 1), "rows": [] if passed else rows,
            "error": error}


def _note(state: RunState, result: dict[str, Any]) -> None:
    state.report.verify.append(result)
    more = f": {result['error']}" if result["error"] else (f": first rows {result['rows']}" if result["rows"] else "")
    state.progress(f"verify {result['name']}: {result['result']} ({result['duration_ms']:g} ms){more}")


def in_transaction(state: RunState, checks: Sequence[VerifyCheck], transaction: str
                   ) -> Callable[[psycopg.Connection[Any], MigrationFile | None], None]:
    """The apply step's before-COMMIT hook: a file's own checks (``file`` given), and with
    ``transaction: all`` the configured sql checks (``file`` None, once, before the COMMIT).
    A failure raises VerifyFailed naming the check."""
    from guard.migrations.verify_lines import file_checks

    def before_commit(conn: psycopg.Connection[Any], file: MigrationFile | None) -> None:
        if file is None:
            todo = [(f"verify.{c.name}", c.sql, c.expect_empty, c.timeout) for c in checks
                    if c.sql and transaction == "all"]
        else:
            try:
                found = file_checks(file)
            except ValueError as exc:
                raise VerifyFailed(f"{state.display(file)}: {exc}") from None
            todo = [(f"{state.display(file)}:{c.line}", c.sql, False, 60.0) for c in found]
        for name, sql, empty, timeout in todo:
            assert sql is not None
            started = time.perf_counter()
            passed, rows = _sql(conn, sql, empty, timeout)
            _note(state, _result(name, "file" if file else "sql", passed, started, "before COMMIT", rows))
            if not passed:
                raise VerifyFailed(f"{name}: guard:verify check failed: {sql}"
                                   + (f" (first rows: {rows})" if rows else " (no rows)"))

    return before_commit


def _run(check: VerifyCheck, base_dir: Path, url: str, environ: Mapping[str, str]) -> tuple[bool, list[list[str]], str | None]:
    """A ``run:`` check: argv without a shell, from the config's folder, DATABASE_URL set."""
    try:
        proc = subprocess.run(list(check.run), cwd=base_dir, env={**environ, "DATABASE_URL": url},
                              capture_output=True, text=True, timeout=check.timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return False, [], f"timed out after {check.timeout:g}s"
    except OSError as exc:
        return False, [], f"cannot run {check.run[0]}: {exc.strerror or exc}"
    lines = [[line] for line in (proc.stdout + proc.stderr).splitlines()[:FIRST_ROWS]]
    return proc.returncode == 0, lines, None if proc.returncode == 0 else f"exit {proc.returncode}"


def run_checks(conn: psycopg.Connection[Any], checks: Sequence[VerifyCheck], *, url: str, base_dir: Path,
               environ: Mapping[str, str], where: str) -> list[dict[str, Any]]:
    """Each check outside any migration transaction (sql: read-only, rolled back); results."""
    results = []
    for check in checks:
        started = time.perf_counter()
        error = None
        if check.sql:
            try:
                with conn.transaction(force_rollback=True):
                    conn.execute("SET TRANSACTION READ ONLY")
                    passed, rows = _sql(conn, check.sql, check.expect_empty, check.timeout)
            except psycopg.Error as exc:
                passed, rows, error = False, [], exc.diag.message_primary or str(exc)
        else:
            passed, rows, error = _run(check, base_dir, url, environ)
        results.append(_result(f"verify.{check.name}", "sql" if check.sql else "run", passed, started, where, rows, error))
    return results


def after_commit(state: RunState, checks: Sequence[VerifyCheck], transaction: str, base_dir: Path,
                 restore: RestoreContext) -> None:
    """After an applied release: the configured checks not run before COMMIT; a failure makes
    the outcome ``verify_failed`` (exit 4). Any exit-4 plan gets `guard undo` as first step."""
    from guard.undo.steps import put_undo_first

    if state.report.status == "applied":
        todo = [c for c in checks if not (c.sql and transaction == "all")]
        conn = state.reconnected if state.reconnected is not None else state.db
        results = run_checks(conn, todo, url=state.url, base_dir=base_dir, environ=state.environ, where="after COMMIT")
        for result in results:
            _note(state, result)
        failed = [r["name"] for r in results if r["result"] == "failed"]
        if failed:
            _verify_failed(state, failed, restore)
    if state.report.exit_code == 4:
        put_undo_first(state.report.restore_plan, state.report.run_id)


def _verify_failed(state: RunState, failed: list[str], restore: RestoreContext) -> None:
    """The release committed but is not as intended: exit 4 with the changed-database plan."""
    from guard.restore import build_plan

    message = f"Applied, but verification failed: {', '.join(failed)}. The database changed and is not as intended."
    state.report.set_outcome("failed_partially_applied", message, changed=True)
    plan = build_plan(state.report, restore)  # the plan of a committed, unwanted change
    state.report.set_outcome("verify_failed", message, changed=True)
    state.report.restore_plan = plan


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
