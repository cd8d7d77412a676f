"""The facts of the Backups page: backup log entries, gaps, guarded runs and drills.

`gather` reads them from the target database (and the drills.json beside the snapshots) in
one place; the HTML page (guard.report.html) and the Mermaid timeline (guard.report.mermaid)
only render what is here. Nothing here decides whether backups are fresh: that is the
providers' verdict (guard.backups.check_backups), passed in.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field
from psycopg import sql

if TYPE_CHECKING:
    import psycopg

    from guard.backups import BackupVerdict
    from guard.config import Config
    from guard.report.model import ProviderReport, RestorePlan

WINDOW_DAYS = 30
RECENT_RUNS = 20
RECENT_DRILLS = 30

# {table} is the backup log (backup_log.schema/table), composed with psycopg.sql. At most the
# newest 5,000 entries of the window: a page, not an export.
ENTRIES_SINCE = """
SELECT * FROM (
  SELECT id, kind, reason, created_by, created_at, metadata FROM {table}
   WHERE created_at >= %s AND created_at <= %s
   ORDER BY created_at DESC, id DESC LIMIT 5000) newest
 ORDER BY created_at, id
"""
# The newest completed automated backup before the window: where the first gap may start.
COMPLETED_AUTOMATED_BEFORE = """
SELECT created_at FROM {table}
 WHERE kind = 'automated' AND COALESCE(metadata ->> 'status', 'completed') = 'completed'
   AND created_at < %s
 ORDER BY created_at DESC LIMIT 1
"""
# The newest completed automated backup dated after the window's end (the server's "now"): a
# wrong clock or time zone. Not on the timeline, but the page's "last completed" names it.
COMPLETED_AUTOMATED_AHEAD = """
SELECT created_at FROM {table}
 WHERE kind = 'automated' AND COALESCE(metadata ->> 'status', 'completed') = 'completed'
   AND created_at > %s AND created_at < '9999-12-30 00:00:00+00'
 ORDER BY created_at DESC LIMIT 1
"""
JOURNAL_EXISTS = "SELECT to_regclass('guard.runs') IS NOT NULL"
# guard.runs in the window, and the 20 most recent whenever they were.
RUNS = """
SELECT run_id, command, started_at, finished_at, status, exit_code, pending, {committed},
       restore_target, actor, reason, report
  FROM guard.runs r
 WHERE r.started_at >= %s
    OR r.run_id IN (SELECT run_id FROM guard.runs ORDER BY started_at DESC LIMIT %s)
 ORDER BY r.started_at DESC LIMIT %s
"""
# At most this many runs on the timeline (the newest): a page, not an export.
MAX_RUNS = 2000
DRILLS_EXIST = "SELECT to_regclass('guard.drills') IS NOT NULL"
DRILLS = "SELECT result FROM guard.drills ORDER BY finished_at DESC LIMIT %s"


class LogEntry(Struct, frozen=True):
    """One row of the backup log. ``status`` is metadata.status ("completed" when absent)."""

    id: int
    kind: str  # automated | manual
    status: str
    created_at: dt.datetime
    reason: str
    created_by: str
    method: str | None = None  # metadata.method, e.g. "snapshot"
    file: str | None = None  # metadata.file, for snapshots

    @property
    def mark(self) -> str:
        """What the timeline draws: automated, manual or failed."""
        return "failed" if self.status != "completed" else self.kind


class Gap(Struct, frozen=True):
    """A stretch longer than max_age without a completed automated backup."""

    start: dt.datetime
    end: dt.datetime
    ongoing: bool  # it reaches the page's "now"

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


class RunFact(Struct, frozen=True):
    """One guarded run from guard's journal (guard.runs), with its restore plan if any."""

    run_id: str
    command: str
    started_at: dt.datetime
    finished_at: dt.datetime | None
    status: str
    exit_code: int | None
    pending: list[str]
    committed: list[str]
    restore_target: Mapping[str, Any] | None
    actor: str | None
    reason: str | None
    plan: RestorePlan | None
    message: str = ""

    @property
    def outcome(self) -> str:
        """ok, failed (nothing changed), changed (restore may be needed), blocked, running."""
        if self.finished_at is None:
            return "running" if self.status == "running" else "changed"
        if self.exit_code == 0:
            return "ok"
        if self.exit_code == 1:
            return "failed"
        if self.exit_code == 4:
            return "changed"
        return "blocked"


class DrillFact(Struct, frozen=True):
    drill_id: str
    finished_at: dt.datetime | None
    snapshot: str
    ok: bool
    restore_seconds: float | None
    reason: str | None


class BackupFacts(Struct):
    """Everything the page shows; times are the database server's clock, UTC."""

    now: dt.datetime
    window_start: dt.datetime
    max_age_seconds: float
    table: str
    stats: Mapping[str, Any] | None
    stats_error: str | None
    ok: bool
    require: str
    providers: list[ProviderReport]
    entries: list[LogEntry] = field(default_factory=list)
    last_automated: dt.datetime | None = None  # newest completed automated backup
    ahead_automated: dt.datetime | None = None  # the newest dated after ``now``, if any
    gaps: list[Gap] = field(default_factory=list)
    runs: list[RunFact] = field(default_factory=list)
    drills: list[DrillFact] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what could not be read, and why


def gather(
    conn: psycopg.Connection[Any],
    config: Config,
    *,
    verdict: BackupVerdict,
    stats: Mapping[str, Any] | None,
    stats_error: str | None,
    now: dt.datetime,
    days: int = WINDOW_DAYS,
) -> BackupFacts:
    """Read the page's facts for the ``days`` before ``now`` (the server's clock).

    Never raises for a missing table or a role that may not read one: what cannot be read
    is listed in ``notes`` and the rest is shown.
    """
    from guard.backups.table import qualified
    from guard.run.backup_gate import backups_report as _backups_report

    start = now - dt.timedelta(days=days)
    facts = BackupFacts(
        now=now, window_start=start, max_age_seconds=config.backups.max_age,
        table=qualified(config.backup_log), stats=stats, stats_error=stats_error,
        ok=verdict.ok, require=verdict.require, providers=_backups_report(verdict).providers,
    )
    before = _read_entries(conn, config, facts)
    facts.gaps = find_gaps(facts.entries, before, start, now, facts.max_age_seconds)
    completed = [e.created_at for e in facts.entries if e.kind == "automated" and e.status == "completed"]
    facts.last_automated = facts.ahead_automated or (max(completed) if completed else before)
    facts.runs = _read_runs(conn, config, start, facts.notes)
    facts.drills = read_drills(conn, config.snapshot.dir)
    return facts


def _read_entries(conn: psycopg.Connection[Any], config: Config, facts: BackupFacts) -> dt.datetime | None:
    import psycopg

    table = sql.Identifier(config.backup_log.schema, config.backup_log.table)
    try:
        with conn.transaction():
            rows = conn.execute(sql.SQL(ENTRIES_SINCE).format(table=table),
                                (facts.window_start, facts.now)).fetchall()
            before = conn.execute(sql.SQL(COMPLETED_AUTOMATED_BEFORE).format(table=table),
                                  (facts.window_start,)).fetchone()
            ahead = conn.execute(sql.SQL(COMPLETED_AUTOMATED_AHEAD).format(table=table), (facts.now,)).fetchone()
            facts.ahead_automated = ahead[0] if ahead else None
    except psycopg.Error as exc:
        facts.notes.append(f"backup log {facts.table} not read: {exc.diag.message_primary or exc.__class__.__name__}")
        return None
    for row_id, kind, reason, created_by, created_at, metadata in rows:
        meta = metadata if isinstance(metadata, dict) else {}
        facts.entries.append(LogEntry(
            id=int(row_id), kind=str(kind), status=str(meta.get("status") or "completed"),
            created_at=created_at, reason=str(reason or ""), created_by=str(created_by or ""),
            method=_text(meta.get("method")), file=_text(meta.get("file")),
        ))
    return before[0] if before else None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def find_gaps(
    entries: Sequence[LogEntry], before: dt.datetime | None, start: dt.datetime, end: dt.datetime,
    max_age_seconds: float,
) -> list[Gap]:
    """Stretches longer than ``max_age_seconds`` without a completed automated backup,
    between ``start`` and ``end``; one that reaches ``end`` is ``ongoing``. A gap that began
    before ``start`` (``before`` is the last completed automated backup then) is cut at it."""
    times = sorted(e.created_at for e in entries if e.kind == "automated" and e.status == "completed")
    gaps = []
    previous = before
    for moment in [*times, end]:
        since = previous if previous is not None else start
        if (moment - since).total_seconds() > max_age_seconds:
            gaps.append(Gap(max(since, start), moment, ongoing=moment is end))
        previous = moment
    return gaps


def _read_runs(conn: psycopg.Connection[Any], config: Config, start: dt.datetime, notes: list[str]) -> list[RunFact]:
    import psycopg

    from guard.journal import COMMITTED

    try:
        with conn.transaction():
            exists = conn.execute(JOURNAL_EXISTS).fetchone()
            if not exists or not exists[0]:
                return []
            rows = conn.execute(RUNS.format(committed=COMMITTED), (start, RECENT_RUNS, MAX_RUNS)).fetchall()
    except psycopg.Error as exc:
        notes.append(f"guard's journal (guard.runs) not read: {exc.diag.message_primary or exc.__class__.__name__}")
        return []
    facts = []
    if len(rows) == MAX_RUNS:
        notes.append(f"only the newest {MAX_RUNS} guarded runs are on the timeline")
    for row in rows:
        try:
            facts.append(_run_fact(row, config))
        except (AttributeError, KeyError, TypeError, ValueError) as exc:
            # A journal row this guard cannot read (written by another version, edited by hand).
            notes.append(f"run {row[0]} in guard.runs not shown: {exc.__class__.__name__}: {exc}")
    return facts


def _run_fact(row: tuple[Any, ...], config: Config) -> RunFact:
    from guard.journal import JournalRun
    from guard.report.model import plan_from_dict

    run = JournalRun(run_id=row[0], command=row[1], started_at=row[2], finished_at=row[3], status=row[4],
                     exit_code=row[5], pending=list(row[6] or []), committed=list(row[7] or []),
                     restore_target=row[8], actor=row[9], reason=row[10], report=row[11])
    report = run.report if isinstance(run.report, dict) else {}
    plan = None
    if run.finished_at is None:
        from guard.restore import plan_for_unfinished
        from guard.run.outcome import restore_context

        plan = plan_for_unfinished(run, run.committed, restore_context(config))
    elif isinstance(report.get("restore_plan"), dict):
        plan = plan_from_dict(report["restore_plan"])
    return RunFact(
        run_id=run.run_id, command=run.command, started_at=run.started_at, finished_at=run.finished_at,
        status=run.status, exit_code=run.exit_code, pending=run.pending, committed=run.committed,
        restore_target=run.restore_target, actor=run.actor, reason=run.reason, plan=plan,
        message=str(report.get("message") or ""),
    )


def read_drills(conn: psycopg.Connection[Any] | None, snapshot_dir: Path | None) -> list[DrillFact]:
    """Recorded drills, oldest first: guard.drills and ``<snapshot_dir>/drills.json``, each
    drill once (by drill_id), with ``conn`` only those of its database's snapshots. Unreadable
    sources are skipped, as `guard.drill.last_drill` does."""
    import psycopg

    from guard.drill import DRILL_LOG, _read_log, of_database

    found: dict[str, Mapping[str, Any]] = {}
    if snapshot_dir is not None:
        for item in _read_log(snapshot_dir / DRILL_LOG):
            found[str(item.get("drill_id"))] = item
    if conn is not None:
        try:
            with conn.transaction():
                exists = conn.execute(DRILLS_EXIST).fetchone()
                rows = conn.execute(DRILLS, (RECENT_DRILLS,)).fetchall() if exists and exists[0] else []
        except psycopg.Error:
            rows = []
        for (result,) in rows:
            if isinstance(result, dict):
                found[str(result.get("drill_id"))] = result
    if conn is not None:  # another database's drills say nothing of this one's backups
        found = {k: d for k, d in found.items() if of_database(dict(d), conn.info.dsn)}
    drills = [_drill_fact(d) for d in found.values()]
    drills.sort(key=lambda d: d.finished_at or dt.datetime.min.replace(tzinfo=dt.timezone.utc))
    return drills[-RECENT_DRILLS:]


def _seconds(value: Any) -> float | None:
    """A restore time in seconds, or None when it is no finite, non-negative number (a
    damaged drills.json: ``1e999``, an integer of 400 digits, ``true``, ``-1``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        seconds = float(value)
    except OverflowError:
        return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def _drill_fact(data: Mapping[str, Any]) -> DrillFact:
    finished: dt.datetime | None
    try:
        finished = dt.datetime.fromisoformat(str(data.get("finished_at")).replace("Z", "+00:00"))
        if finished.tzinfo is None:
            finished = finished.replace(tzinfo=dt.timezone.utc)
    except ValueError:
        finished = None
    return DrillFact(
        drill_id=str(data.get("drill_id") or ""), finished_at=finished, snapshot=str(data.get("snapshot") or ""),
        ok=data.get("ok") is True, restore_seconds=_seconds(data.get("restore_seconds")),
        reason=_text(data.get("reason")),
    )
