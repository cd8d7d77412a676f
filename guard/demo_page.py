"""The last act of `guard demo`: a month of sample backup history, then the Backups page.

The demo's database is minutes old, so a month of history is written for it (every entry's
reason says "(demo)"): nightly automated backups with a three-night gap and one failed
attempt, manual backups before deploys, and two restore drills. Then the page is written
exactly as `guard backup status --html` writes it.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.config import require_database_url

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.context import Context

GAP_NIGHTS = (9, 10, 11)
FAILED_NIGHT = 17
DEPLOY_DAYS = (3, 13, 24)
DRILLS = ((26, 41.8, True), (12, 47.3, True), (5, 52.6, False))  # days ago, restore seconds, passed


def _seed(conn: psycopg.Connection[Any], config: Config, now: dt.datetime) -> None:
    from guard.backups.table import write_entry

    def log(kind: str, at: dt.datetime, reason: str, status: str = "completed") -> None:
        write_entry(conn, config.backup_log, kind=kind, reason=reason, created_by="demo",
                    metadata={"status": status, "source": "demo"}, created_at=at)

    for days in range(30, 0, -1):
        night = now - dt.timedelta(days=days, hours=2)
        if days in GAP_NIGHTS:
            continue
        if days == FAILED_NIGHT:
            log("automated", night, "Nightly automated backup (demo): disk full", "failed")
            log("automated", night + dt.timedelta(hours=1), "Nightly automated backup, retried (demo)")
            continue
        log("automated", night, "Nightly automated backup (demo)")
    for days in DEPLOY_DAYS:
        log("manual", now - dt.timedelta(days=days, hours=-3), "Before deploy (demo)")


def _seed_drills(url: str, now: dt.datetime) -> None:
    from guard.drill import DrillResult, record_drill

    for days, seconds, ok in DRILLS:
        at = (now - dt.timedelta(days=days)).isoformat()
        result = DrillResult(snapshot=f"demo-{(now - dt.timedelta(days=days)):%Y%m%d}-full.dump.enc",
                             manifest="(demo)", started_at=at, finished_at=at, ok=ok, restore_seconds=seconds,
                             reason=None if ok else "row count of public.orders differs (demo)")
        with tempfile.TemporaryDirectory() as scratch:  # drills.json: not needed beside the page
            record_drill(result, snapshot_dir=Path(scratch), production_url=url, progress=lambda _line: None)


def write_demo_page(ctx: Context, config: Config, directory: Path | None = None) -> Path:
    """Seed the sample history, write the page into ``directory`` (default: a new private
    temporary directory, which outlives the demo) and return its path."""
    from guard.backups import ProviderContext, check_backups, make_providers
    from guard.backups.table import stats
    from guard.db import connect, server_now
    from guard.report.backup_facts import gather
    from guard.report.html import write_or_fail

    url = require_database_url(config)
    target = directory or Path(tempfile.mkdtemp(prefix="guard-demo-page-"))
    conn = connect(url, application_name="guard demo (page)")
    try:
        now = server_now(conn)
        _seed(conn, config, now)
        _seed_drills(url, now)
        pctx = ProviderContext(conn=conn, config=config, now=now)
        verdict = check_backups(make_providers(config), config.backups.providers, pctx)
        facts = gather(conn, config, verdict=verdict, stats=stats(conn, config.backup_log), stats_error=None, now=now)
    finally:
        conn.close()
    return write_or_fail(facts, target / "backups.html", ctx.mask)
