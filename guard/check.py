"""`guard check`: what `guard run` would do, for a pull request, without writing to the target.

The target session is read-only (``default_transaction_read_only``); everything guard learns
(pending files, backup verdicts, an unfinished run, a dry run on a shadow database) goes in
the same RunReport as `guard run`. Exit 0: run would proceed. 3: run would be blocked.
1: a pending file does not apply (it does not parse, or the shadow dry run failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guard.config import Config, require_database_url
from guard.db import (
    LOCK_HOLDER,
    LOCK_KEY,
    connect,
    describe_url,
    refuse_transaction_pooler,
    server_facts,
)
from guard.errors import Blocked, MigrationFileError
from guard.report.model import DatabaseInfo, MigrationError, MigrationResult, RunReport

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile

Progress = Callable[[str], None]
READ_ONLY = "SET default_transaction_read_only = on"


@dataclass(frozen=True)
class CheckOptions:
    shadow: str | None = None  # "embedded" or a scratch database URL
    shadow_from_target: bool = False
    include_all: bool = False


def guarded_check(
    config: Config,
    options: CheckOptions,
    report: RunReport,
    *,
    environ: Mapping[str, str],
    progress: Progress,
) -> RunReport:
    """Fill ``report`` with the check's findings and its outcome."""
    from guard.run import (
        RunOptions,
        _backups_report,
        _check_backups,
        _check_unfinished,
        _display,
        lint_gate,
        lint_pending,
        load_migrations,
        plan_pending,
    )

    if not config.database_url and options.shadow:  # a fork's pull request: no target
        from guard.shadow_check import check_without_target
        return check_without_target(config, options, report, progress=progress)
    url = require_database_url(config)
    report.migrations_dir = _display(config.migrations.dir, config)
    try:
        files = load_migrations(config, progress)
    except MigrationFileError as exc:
        _not_applicable(report, exc)
        return report
    by_version = {f.version: f for f in files}
    blocked: list[str] = []

    refuse_transaction_pooler(url)
    conn = connect(url, application_name=f"guard check {report.run_id}")
    try:
        conn.execute(READ_ONLY)
        facts = server_facts(conn)
        report.database = DatabaseInfo(describe_url(url), facts.version, facts.role, facts.superuser)
        if facts.in_recovery:
            blocked.append(f"{describe_url(url)} is a standby: guard run must target the primary")
        holder = conn.execute(LOCK_HOLDER, (LOCK_KEY, LOCK_KEY)).fetchone()
        if holder is not None:
            report.warnings.append(f"a guard is running on this database now (pid {holder[0]}, {holder[1]})")
        run_options = RunOptions(include_all=options.include_all or config.migrations.include_all)
        try:
            _check_unfinished(conn, config, run_options, report)
            pending = plan_pending(conn, config, run_options, files, by_version, report)
        except Blocked as exc:
            report.set_outcome("blocked", f"guard run would be blocked: {exc}", changed=False)
            return report
        if pending:
            findings = lint_pending(conn, config, pending, facts.major)
            report.findings = [f.as_dict() for f in findings]
            verdict = _check_backups(conn, config, progress)
            report.backups = _backups_report(verdict)
            if not verdict.ok:
                blocked.append(f"no recent automated backup confirmed: {verdict.reason()}")
            for gate_verdict in (None, verdict):
                try:
                    lint_gate(findings, config, gate_verdict)
                except Blocked as exc:
                    blocked.append(str(exc))
                    break
    finally:
        conn.close()

    if options.shadow and (pending or not options.shadow_from_target):
        failed = _shadow(config, options, report, files, pending, url, progress)
        if failed:
            return report
    if blocked:
        report.set_outcome("blocked", "guard run would be blocked: " + "; ".join(blocked), changed=False)
    elif pending:
        report.set_outcome("ready", f"guard run would apply {len(pending)} migration(s).", changed=False)
    else:
        report.set_outcome("nothing_pending", "Nothing pending: the database is up to date.", changed=False)
    return report


def _not_applicable(report: RunReport, exc: MigrationFileError) -> None:
    """A file that does not even parse cannot apply: the dry-run verdict, exit 1."""
    name = exc.file.rsplit("/", 1)[-1]
    version = name.split("_", 1)[0]
    report.migrations = [
        MigrationResult(version, name.removesuffix(".sql").split("_", 1)[-1], exc.file, "failed", 0,
                        error=MigrationError(exc.message.split(": ", 1)[-1], None, exc.file, exc.line))
    ]
    report.set_outcome("dry_run_failed", f"{exc}", changed=False)


def _shadow(
    config: Config,
    options: CheckOptions,
    report: RunReport,
    files: list[MigrationFile],
    pending: list[MigrationFile],
    url: str,
    progress: Progress,
) -> bool:
    """Run the dry run; True when it failed (the report then says where)."""
    from guard.shadow_check import run_shadow

    return run_shadow(config, options, report, files, pending, url, progress)
