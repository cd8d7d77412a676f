"""`guard backup status` in GitHub Actions: step outputs, the step summary (the providers'
table and the 30-day timeline as a Mermaid chart) and an annotation when backups are not
confirmed; and the facts the summary and the Backups page share."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.backups import format_age

if TYPE_CHECKING:
    from guard.config import Config
    from guard.context import Context
    from guard.report.backup_facts import BackupFacts


def status_facts(environ: Mapping[str, str], conn: Any, config: Config, html: Path | None,
                 *facts: Any) -> BackupFacts | None:
    """The Backups page's facts (verdict, stats, stats error, now), when the page or a GitHub
    step summary will show them; None otherwise (nothing more is read)."""
    from guard.report import github
    from guard.report.backup_facts import gather

    if html is None and not github.active(environ):
        return None
    verdict, table_stats, stats_error, now = facts
    return gather(conn, config, verdict=verdict, stats=table_stats, stats_error=stats_error, now=now)


def publish_backup_status(ctx: Context, verdicts: Any, exit_code: int, facts: BackupFacts | None = None) -> None:
    """In GitHub Actions: outputs (status ok/stale, exit-code), a step summary table and the
    timeline (when ``facts`` are given)."""
    from guard.report import github
    from guard.report.sanitize import markdown_cell as cell

    if not github.active(ctx.environ):
        return
    status = "ok" if exit_code == 0 else "stale"
    lines = [
        f"## {'✅' if exit_code == 0 else '⛔'} migration-guard backup status: {status}",
        "",
        "| provider | status | newest backup | age | detail |",
        "| --- | --- | --- | --- | --- |",
    ]
    for p in verdicts.providers:
        age = format_age(p.age_seconds) if p.age_seconds is not None else "-"
        lines.append(f"| {cell(p.provider)} | {cell(p.status)} | {cell(p.newest_backup or '-')} | {age} | "
                     f"{cell(p.message)} |")
    if facts is not None:
        from guard.report.mermaid import timeline

        lines.extend(["", timeline(facts)])
    try:
        github.append_summary(ctx.environ, ctx.mask("\n".join(lines)))
        if ctx.environ.get("GITHUB_OUTPUT"):
            github.write_outputs({"status": status, "exit-code": str(exit_code)},
                                 Path(ctx.environ["GITHUB_OUTPUT"]))
    except OSError as exc:
        ctx.progress(f"cannot write GitHub step files: {exc.strerror}")
    if exit_code:
        failing = "; ".join(f"{p.provider}: {p.message}" for p in verdicts.providers if p.status != "ok")
        ctx.workflow(github.annotation("error", failing or "no backup provider confirmed a recent backup",
                                       title="migration-guard: backups not confirmed") + "\n")
