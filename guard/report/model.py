"""The facts of one guard command: plain models (msgspec.Struct) that every renderer reads.

Nothing here decides anything; ``guard.run`` fills a RunReport, renderers turn it into text,
Markdown and JSON. The JSON form is documented in docs/report.md; keep the two in step.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from msgspec import Struct, field

from guard.report.mask import mask_key, mask_values

REPORT_SCHEMA_VERSION = 1

# status -> exit code, as DESIGN.md's outcome table.
STATUS_EXIT = {
    "applied": 0,
    "nothing_pending": 0,
    "ready": 0,  # guard check: guard run would proceed
    "dry_run_failed": 1,  # guard check: a pending file does not apply
    "failed_rolled_back": 1,
    "usage_error": 2,
    "blocked": 3,
    "failed_partially_applied": 4,
    "outcome_unknown": 4,
    "verify_failed": 4,  # applied, then a verify: check failed (issue #19)
}


class MigrationError(Struct):
    """Why a file failed: PostgreSQL's message and fields, where in the file, and what blocked it."""

    message: str
    sqlstate: str | None
    file: str
    line: int | None
    statement_index: int | None = None  # 0-based, as the Supabase CLI's "At statement"
    statement: str | None = None  # the failing statement, shortened
    detail: str | None = None
    hint: str | None = None
    context: str | None = None
    blockers: list[dict[str, Any]] | None = None  # sessions holding the locks it waited for


class MigrationResult(Struct):
    """One migration file's outcome in a run."""

    version: str
    name: str
    file: str
    status: str  # applied | failed | pending | skipped | rolled_back | unknown
    statements: int
    duration_ms: float | None = None
    error: MigrationError | None = None
    # How it was sent: "pipeline" (in one message with other files, migrations/pipeline.py)
    # or "single" (on its own); None when it was never tried.
    path: str | None = None


class RestoreTarget(Struct):
    """The point to restore to: the server's clock and WAL position before the first statement."""

    timestamp: str  # UTC ISO 8601, the server's clock before the first statement
    unix: int
    lsn: str | None
    restore_point: str | None  # name given to pg_create_restore_point, when created
    restore_point_note: str | None = None  # why none was created
    archive_mode: str | None = None  # the server's archive_mode then: off means no PITR to it


class ProviderReport(Struct):
    """One backup provider's answer before the run."""

    provider: str
    status: str  # ok | stale | failed | missing | error
    message: str
    newest_backup: str | None
    age_seconds: float | None
    max_age_seconds: float
    pitr: dict[str, str | None] | None = None
    details: dict[str, Any] = field(default_factory=dict)


class BackupsReport(Struct):
    """The backup check before the run: each provider, the verdict, an override if given."""

    ok: bool
    require: str
    providers: list[ProviderReport]
    override: dict[str, Any] | None = None


class SinkReport(Struct):
    """One backup-log sink's record of the run's manual backup."""

    sink: str
    status: str  # recorded | failed
    required: bool
    id: str | None = None
    error: str | None = None


class RestoreStep(Struct):
    """One step of a restore plan: a title, what to do, the commands."""

    title: str
    text: str
    commands: list[str] = field(default_factory=list)


class RestorePlan(Struct):
    """How to put the database back after a failed run, when anything committed."""

    needed: bool | None  # None: unknown whether anything committed
    summary: str
    committed_versions: list[str]
    steps: list[RestoreStep]
    support: dict[str, Any] | None = None


def plan_from_dict(data: dict[str, Any]) -> RestorePlan:
    """A RestorePlan back from its JSON form (as stored in the journal's report)."""
    return RestorePlan(
        needed=data.get("needed"),
        summary=data.get("summary", ""),
        committed_versions=list(data.get("committed_versions") or []),
        steps=[
            RestoreStep(s.get("title", ""), s.get("text", ""), list(s.get("commands") or []))
            for s in data.get("steps") or []
        ],
        support=data.get("support"),
    )


class DatabaseInfo(Struct):
    """The database a run targeted (no password) and the server's facts."""

    target: str  # host:port/db, never the password
    server_version: str | None = None
    role: str | None = None
    superuser: bool | None = None


class RunReport(Struct):
    """The report of one command: written as JSON, rendered for the terminal and GitHub."""

    command: str
    run_id: str
    started_at: str
    status: str = "usage_error"
    exit_code: int = 2
    database_changed: bool | None = False
    message: str = ""
    finished_at: str | None = None
    duration_ms: float | None = None
    reason: str | None = None
    database: DatabaseInfo | None = None
    ci: dict[str, str] = field(default_factory=dict)
    migrations_dir: str | None = None
    restore_target: RestoreTarget | None = None
    backups: BackupsReport | None = None
    backup_log: list[SinkReport] = field(default_factory=list)
    migrations: list[MigrationResult] = field(default_factory=list)
    restore_plan: RestorePlan | None = None
    unfinished_run: dict[str, Any] | None = None
    interrupted: str | None = None  # the signal that stopped the run, if one did
    wrapped: dict[str, Any] | None = None  # `guard run -- CMD`: argv, exit_code, changes
    shadow: dict[str, Any] | None = None  # `guard check --shadow`: the dry run
    protective_copies: list[dict[str, Any]] = field(default_factory=list)
    findings: list[dict[str, Any]] = field(default_factory=list)  # lint findings of pending files
    snapshot: dict[str, Any] | None = None  # the snapshot taken in step 10, if any
    verify: list[dict[str, Any]] = field(default_factory=list)  # step 12: each check's result
    warnings: list[str] = field(default_factory=list)
    tool: dict[str, str] = field(default_factory=dict)
    schema_version: int = REPORT_SCHEMA_VERSION

    def set_outcome(self, status: str, message: str, *, changed: bool | None) -> None:
        self.status = status
        self.exit_code = STATUS_EXIT[status]
        self.message = message
        self.database_changed = changed

    def to_dict(self, mask: Callable[[str], str] | None = None) -> dict[str, Any]:
        """The report as JSON holds it; with ``mask``, every string in it masked as
        report.mask.mask_values masks them (keys too), in the same walk."""
        result: dict[str, Any] = _plain(self, mask)
        return result


def _plain(value: Any, mask: Callable[[str], str] | None = None) -> Any:
    """JSON-ready copy: models to dicts (as dataclasses.asdict did, without its deep copy of
    every leaf, which took a tenth of a thousand-file run), tuples to lists, datetimes to ISO
    text; with ``mask``, each key and leaf as mask_values gives it (one walk, not two: a
    thousand-file report is ~18,000 values)."""
    if isinstance(value, Struct):
        names = value.__struct_fields__
        return {(name if mask is None else mask(name)): _plain(getattr(value, name), mask) for name in names}
    if isinstance(value, dict):
        if mask is None:
            return {k: _plain(v) for k, v in value.items()}
        return {mask_key(k, mask): _plain(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, mask) for v in value]
    if isinstance(value, dt.datetime):
        value = iso(value)
    return value if mask is None else mask_values(value, mask)


def iso(value: dt.datetime) -> str:
    """UTC ISO 8601 with a Z, to the microsecond the server gave."""
    return value.astimezone(dt.timezone.utc).isoformat().replace("+00:00", "Z")
