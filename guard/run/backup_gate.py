"""Step 7: confirm a recent automated backup with the configured providers (fail closed)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from guard.backups import BackupVerdict, ProviderContext, check_backups, make_providers
from guard.config import Config
from guard.errors import Blocked
from guard.report.model import BackupsReport, ProviderReport, iso
from guard.run.state import Progress, RunState

if TYPE_CHECKING:
    import psycopg


def check_providers(conn: psycopg.Connection[Any], config: Config, progress: Progress,
                    now: dt.datetime) -> BackupVerdict:
    """Every configured provider's verdict, judged against ``now``, the server's clock
    (ServerFacts.server_now: not asked again). The providers get the whole configuration:
    each reads its own section (backups, backup_log)."""
    ctx = ProviderContext(conn=conn, config=config, now=now, progress=progress)
    return check_backups(make_providers(config), config.backups.providers, ctx)


def backups_report(verdict: BackupVerdict) -> BackupsReport:
    """The verdict as report facts (times ISO 8601 UTC, ages in seconds)."""
    return BackupsReport(
        ok=verdict.ok,
        require=verdict.require,
        providers=[
            ProviderReport(
                provider=v.provider,
                status=v.status,
                message=v.message,
                newest_backup=iso(v.newest_backup) if v.newest_backup else None,
                age_seconds=round(v.age_seconds, 1) if v.age_seconds is not None else None,
                max_age_seconds=v.max_age_seconds,
                pitr=(
                    {
                        "earliest": iso(v.pitr.earliest) if v.pitr.earliest else None,
                        "latest": iso(v.pitr.latest) if v.pitr.latest else None,
                    }
                    if v.pitr
                    else None
                ),
                details=dict(v.details),
            )
            for v in verdict.providers
        ],
    )


def confirm_backup(state: RunState, config: Config) -> None:
    """Fill ``state.verdict`` and the report's backups. No confirmed backup: Blocked (exit 3),
    unless --allow-stale-backup (with its reason, logged as an override); read only, noted."""
    assert state.facts is not None  # record_server ran at connect
    verdict = state.verdict = check_providers(state.db, config, state.progress, state.facts.server_now())
    report, options = state.report, state.options
    report.backups = backups_report(verdict)
    if verdict.ok:
        if not state.read_only:
            state.progress(f"backups: {verdict.providers[0].provider}: {verdict.providers[0].message}")
        return
    if state.read_only:
        state.blocked.append(f"no recent automated backup confirmed: {verdict.reason()}")
        return
    if not options.allow_stale_backup:
        raise Blocked(
            f"no recent automated backup confirmed: {verdict.reason()}",
            hint="nothing was changed; fix the backups, or pass --allow-stale-backup --reason '...'",
        )
    report.backups.override = {"reason": options.reason, "verdict": verdict.reason()}
    report.warnings.append(f"backup check overridden: {verdict.reason()} (reason: {options.reason})")
    state.progress("backup check overridden by --allow-stale-backup")
