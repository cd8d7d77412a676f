"""guard's own record of each run, in the target database (schema ``guard``).

A run is journalled as ``running`` before its first migration statement, each file's
version is recorded in ``guard.run_commits`` in that file's own transaction (so the journal
cannot claim a file that did not commit, nor miss one that did), and the run is closed with
its outcome and report, the committed versions folded into ``guard.runs.committed``. (One
row per file rather than an array grown in place: rewriting a growing array in every file's
transaction made a release of a thousand files cost quadratic time.) A row still ``running`` with no process holding guard's lock is a run
that died (CI job killed, runner lost): the next run refuses until an operator acknowledges it.
The schema is versioned and closed to PUBLIC and to Supabase's API roles (guard.guard_schema).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.errors import Blocked

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.history import Landed

JOURNAL_SCHEMA = "guard"
# The journal's tables are created and upgraded with the rest of guard's schema (guard.guard_schema).
SUPABASE_API_ROLES = "SELECT rolname FROM pg_roles WHERE rolname IN ('anon', 'authenticated')"
JOURNAL_EXISTS = "SELECT to_regclass('guard.runs') IS NOT NULL"
JOURNAL_COMPLETE = "SELECT to_regclass('guard.runs') IS NOT NULL AND to_regclass('guard.run_commits') IS NOT NULL"
# Both journal tables there, and guard's schema version: one query where guard.schema_version
# exists (guard_schema.version reads the same max).
JOURNAL_STATE = ("SELECT to_regclass('guard.runs') IS NOT NULL AND to_regclass('guard.run_commits') IS NOT NULL, "
                 "(SELECT max(version) FROM guard.schema_version)")
START_RUN = """
INSERT INTO guard.runs (run_id, command, status, pending, restore_target, actor, reason)
VALUES (%s, %s, 'running', %s, %s, %s, %s)
ON CONFLICT (run_id) DO NOTHING
RETURNING run_id
"""
# No ON CONFLICT: a run records a version once, and PostgreSQL refuses ON CONFLICT on a table
# with rules, where a plain INSERT lets the check after it (COMMITTED_LANDED) judge the rule.
RUN_JOURNALLED = "SELECT 1 FROM guard.runs WHERE run_id OPERATOR(pg_catalog.=) %s"
MARK_COMMITTED = "INSERT INTO guard.run_commits (run_id, version) VALUES (%s, %s)"
# Read after MARK_COMMITTED in the file's transaction: true once the row is there (a rule or a
# trigger may have discarded it without an error; see history.check_landed).
COMMITTED_LANDED = (
    "EXISTS (SELECT FROM guard.run_commits WHERE run_id OPERATOR(pg_catalog.=) %s "
    "AND version OPERATOR(pg_catalog.=) %s)"
)
# The versions a run committed: those folded into guard.runs.committed when it ended, then
# those recorded per file since (all of them while it runs, or when it died).
COMMITTED = """(r.committed || ARRAY(
    SELECT c.version FROM guard.run_commits c
     WHERE c.run_id = r.run_id AND NOT (c.version = ANY(r.committed)) ORDER BY c.seq))"""
FINISH_RUN = f"""
UPDATE guard.runs r
   SET finished_at = clock_timestamp(), status = %s, exit_code = %s, report = %s, committed = {COMMITTED}
 WHERE run_id = %s
"""
MARK_INTERRUPTED = f"""
UPDATE guard.runs r SET status = 'interrupted', committed = {COMMITTED}
 WHERE run_id = %s AND finished_at IS NULL
"""
UNFINISHED = f"""
SELECT run_id, command, started_at, pending, {COMMITTED}, restore_target, actor, reason, report
  FROM guard.runs r
 WHERE finished_at IS NULL AND acknowledged_at IS NULL
 ORDER BY started_at
"""
# guard.runs without guard.run_commits (dropped by hand): what the runs' own column says.
UNFINISHED_RUNS_ONLY = UNFINISHED.replace(COMMITTED, "r.committed")
ACKNOWLEDGE = """
UPDATE guard.runs
   SET acknowledged_at = clock_timestamp(), acknowledged_by = %s, acknowledgement = %s,
       status = CASE WHEN finished_at IS NULL THEN 'abandoned' ELSE status END
 WHERE run_id = %s AND acknowledged_at IS NULL
RETURNING run_id
"""
RUN_BY_ID = f"""
SELECT run_id, command, started_at, finished_at, status, exit_code, pending, {COMMITTED},
       restore_target, actor, reason, report
  FROM guard.runs r WHERE run_id = %s
"""
# The run that still needs attention (``guard restore-plan`` with no id): the newest that never
# finished and was not acknowledged, or ended 1 (failed, rolled back) or 4 (changed, then
# failed), unless a later run ended 0: that run carried the migrations forward, so the
# earlier failure was fixed (an id still shows any run's plan).
LATEST_FAILED = f"""
SELECT run_id, command, started_at, finished_at, status, exit_code, pending, {COMMITTED},
       restore_target, actor, reason, report
  FROM guard.runs r
 WHERE ((finished_at IS NULL AND acknowledged_at IS NULL) OR exit_code IN (1, 4))
   AND NOT EXISTS (SELECT 1 FROM guard.runs later WHERE later.started_at > r.started_at AND later.exit_code = 0)
 ORDER BY started_at DESC
 LIMIT 1
"""


class JournalRun(Struct, frozen=True):
    """One row of ``guard.runs``: a guarded run or undo as journalled."""

    run_id: str
    command: str
    started_at: dt.datetime
    pending: list[str]
    committed: list[str]
    restore_target: dict[str, Any] | None
    actor: str | None
    reason: str | None
    report: dict[str, Any] | None
    finished_at: dt.datetime | None = None
    status: str = "running"
    exit_code: int | None = None


def exists(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute(JOURNAL_EXISTS).fetchone()
    return bool(row and row[0])


def complete(conn: psycopg.Connection[Any]) -> bool:
    """Both journal tables exist."""
    row = conn.execute(JOURNAL_COMPLETE).fetchone()
    return bool(row and row[0])


def journal_state(conn: psycopg.Connection[Any]) -> tuple[bool, int | None]:
    """(both journal tables exist, guard's schema version as guard_schema.version gives it, or
    None where guard.schema_version is missing: then ask that). One query where the schema
    is versioned, on an idle autocommit session (guard.db.if_present)."""
    from guard.db import if_present
    from guard.guard_schema import VERSIONED

    present, row = if_present(conn, lambda: conn.execute(JOURNAL_STATE).fetchone(),
                              lambda: conn.execute(VERSIONED).fetchone() == (True,))
    if present and row is not None:
        return bool(row[0]), int(row[1]) if row[1] is not None else 1
    return complete(conn), None


def ensure(conn: psycopg.Connection[Any], found: int | None = None, *, complete: bool = True) -> int:
    """Create or upgrade guard's schema, journal included, closed to PUBLIC and Supabase's API
    roles (guard.guard_schema.ensure_schema: one query when it is current, none given the
    version ``found`` just now; ``complete`` False: a journal table is missing, made again).
    Returns the schema version found before (0: none). Raises
    Blocked for a schema newer than this guard."""
    from guard.guard_schema import ensure_schema

    return ensure_schema(conn, found, complete=complete)


def start(
    conn: psycopg.Connection[Any],
    *,
    run_id: str,
    command: str,
    pending: Sequence[str],
    restore_target: dict[str, Any] | None,
    actor: str,
    reason: str | None,
    schema_version: int | None = None,
    complete: bool = True,
) -> bool:
    """Journal the run as running; committed before the first migration statement.
    ``schema_version``: guard's schema version just read (journal_state), not asked again;
    ``complete``: whether both journal tables were there (journal_state).

    Returns False, writing nothing, when a run with this id is already journalled: that run's
    record is never taken for this one's. Raises Blocked (nothing written) when a rule or a
    trigger on guard.runs discarded the row without an error."""
    import psycopg
    from psycopg.types.json import Jsonb

    from guard.db import pipelined_transaction
    from guard.errors import Blocked

    ensure(conn, schema_version, complete=complete)
    lost = f"guard's journal row for run {run_id} did not land: a rule or trigger on guard.runs discarded it"
    hint = "nothing was changed; drop that rule or trigger (psql: \\d+ guard.runs lists them), then run again"
    try:
        # BEGIN rides the INSERT and COMMIT goes alone: two waits, where three were.
        with pipelined_transaction(conn):
            row = conn.execute(
                START_RUN,
                (run_id, command, list(pending), Jsonb(restore_target) if restore_target else None, actor, reason),
            ).fetchone()
            if row is None and conn.execute(RUN_JOURNALLED, (run_id,)).fetchone() is None:
                raise Blocked(lost, hint=hint)
    except psycopg.errors.FeatureNotSupported as exc:  # a rule PostgreSQL refuses RETURNING or ON CONFLICT with
        raise Blocked(f"{lost} ({exc.diag.message_primary})", hint=hint) from exc
    return row is not None


def committed_row(run_id: str, version: str) -> tuple[str, tuple[Any, ...]]:
    """The statement and parameters that record ``version`` as committed by ``run_id``; run in
    the file's own transaction, the file is committed exactly when this is."""
    return MARK_COMMITTED, (run_id, version)


def committed_landed(query: str, params: tuple[Any, ...]) -> Landed | None:
    """The history.Landed of a journal record made by ``committed_row`` (query, params);
    None for any other statement."""
    from guard.migrations.history import Landed, not_landed_message

    if query != MARK_COMMITTED:
        return None
    run_id, version = params
    return Landed(COMMITTED_LANDED, (run_id, version), not_landed_message("journal", "guard.run_commits", version))


def mark_committed(conn: psycopg.Connection[Any], run_id: str, version: str) -> None:
    """Inside a file's transaction: that file is committed exactly when this is."""
    conn.execute(*committed_row(run_id, version))


def finish(
    conn: psycopg.Connection[Any], run_id: str, *, status: str, exit_code: int, report_json: str
) -> None:
    """Close the run with its outcome and report. A report holding a character the database's
    encoding cannot hold (a tool's or a check's output, a path: SQLSTATE 22P05) is recorded
    with every non-ASCII character escaped (``\\u2026``) rather than leaving the run open,
    which would block every later run."""
    import psycopg
    from psycopg.types.json import Jsonb

    from guard.db import committed

    report = json.loads(report_json)
    try:
        committed(conn, FINISH_RUN, (status, exit_code, Jsonb(report), run_id))
    except (psycopg.errors.UntranslatableCharacter, psycopg.errors.CharacterNotInRepertoire):
        committed(conn, FINISH_RUN, (status, exit_code, Jsonb(_ascii(report)), run_id))


def _ascii(value: Any) -> Any:
    """``value`` with each string's non-ASCII characters as Python escapes (``caf\\xe9``)."""
    if isinstance(value, str):
        return value.encode("ascii", "backslashreplace").decode("ascii")
    if isinstance(value, dict):
        return {_ascii(k): _ascii(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ascii(v) for v in value]
    return value


def unfinished(conn: psycopg.Connection[Any]) -> list[JournalRun]:
    """Runs that started and never finished, nor were acknowledged. One round trip where the
    journal exists, on an autocommit connection (a missing table's error rolls back nothing).
    With guard.run_commits gone (the run makes it again, journal_state), the versions
    guard.runs itself holds."""
    from guard.db import if_present

    present, found = if_present(conn, lambda: conn.execute(UNFINISHED).fetchall(), lambda: complete(conn))
    if not present and exists(conn):
        found = conn.execute(UNFINISHED_RUNS_ONLY).fetchall()
    return [
        JournalRun(
            run_id=r[0], command=r[1], started_at=r[2], pending=list(r[3]), committed=list(r[4]),
            restore_target=r[5], actor=r[6], reason=r[7], report=r[8],
        )
        for r in found or []
    ]


def acknowledge(conn: psycopg.Connection[Any], run_id: str, *, by: str, reason: str) -> bool:
    if not exists(conn):
        return False
    with conn.transaction():
        row = conn.execute(ACKNOWLEDGE, (by, reason, run_id)).fetchone()
    return row is not None


# The report's parts its readers (restore-plan, undo, the Backups page) take for these types.
REPORT_SHAPE: dict[str, type] = {"wrapped": dict, "protective_copies": list, "restore_plan": dict, "backup_log": list,
                                 "snapshot": dict, "backups": dict, "kept": list, "not_invertible": list}


def _check_shape(run_id: str, what: str, value: Any, kind: type) -> None:
    """Blocked (exit 3) when ``value`` is neither None nor a ``kind``: a journal row changed by
    hand is named, never a traceback in the command reading it."""
    if value is not None and not isinstance(value, kind):
        raise Blocked(f"guard.runs holds run {run_id} with a {what} that is not a JSON "
                      f"{'object' if kind is dict else 'array'} ({type(value).__name__}): the record was changed "
                      "since; nothing done", hint="put it back from a backup, or look at the row by hand")


def find(conn: psycopg.Connection[Any], run_id: str | None) -> JournalRun | None:
    """One run by id, or the latest that still needs attention (LATEST_FAILED's rule: failed
    with exit 1/4 or never finished and not acknowledged, and no later run ended 0)."""
    if not exists(conn):
        return None
    row = conn.execute(RUN_BY_ID, (run_id,)).fetchone() if run_id else conn.execute(LATEST_FAILED).fetchone()
    if row is None:
        return None
    _check_shape(row[0], "restore_target", row[8], dict)
    _check_shape(row[0], "report", row[11], dict)
    report = row[11] or {}
    for key, kind in REPORT_SHAPE.items():
        _check_shape(row[0], f"report's {key}", report.get(key), kind)
    for key in ("argv", "changes"):
        _check_shape(row[0], f"report's wrapped.{key}", (report.get("wrapped") or {}).get(key), list)
    for key in ("protective_copies", "backup_log"):
        for item in report.get(key) or ():
            _check_shape(row[0], f"report's {key} item", item, dict)
    return JournalRun(
        run_id=row[0], command=row[1], started_at=row[2], finished_at=row[3], status=row[4],
        exit_code=row[5], pending=list(row[6]), committed=list(row[7]), restore_target=row[8],
        actor=row[9], reason=row[10], report=row[11],
    )
