"""The Backups timeline as a Mermaid gantt chart, for GitHub step summaries (GitHub renders
Mermaid in Markdown: docs.github.com "Creating diagrams").

Only guard's own words and times go into the chart: no reason, file name or message (they
are untrusted and Mermaid has its own syntax), so nothing needs escaping but the labels,
which are checked against a plain alphabet anyway.
"""

from __future__ import annotations

import datetime as dt
import re

from guard.config import format_duration
from guard.report.backup_facts import BackupFacts

SECTIONS = (("automated", "Automated backups"), ("manual", "Manual backups"), ("failed", "Failed backups"))
RUN_LABELS = {"ok": "applied", "failed": "failed - rolled back", "changed": "failed - changed",
              "blocked": "blocked", "running": "never finished"}


def _label(text: str) -> str:
    """Mermaid task names end at ':' and lines at '#' or ';': keep a plain alphabet."""
    return re.sub(r"[^A-Za-z0-9 .()/+-]", " ", text).strip() or "-"


def _at(moment: dt.datetime) -> str:
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M")


def timeline(facts: BackupFacts) -> str:
    """A fenced ```mermaid block: backups, gaps over max_age and guarded runs, one row each
    kind (compact display), over the facts' window."""
    days = (facts.now - facts.window_start).days
    lines = ["```mermaid", "---", "displayMode: compact", "---", "gantt",
             f"    title Backups and guarded runs, last {days} days (UTC)",
             f"    accTitle: Backups and guarded runs, last {days} days",
             f"    accDescr: {len(facts.entries)} backups logged, {len(facts.gaps)} gaps longer than max_age, "
             f"{sum(r.started_at >= facts.window_start for r in facts.runs)} guarded runs",
             "    dateFormat YYYY-MM-DD HH:mm", "    axisFormat %m-%d"]
    for mark, title in SECTIONS:
        entries = [e for e in facts.entries if e.mark == mark]
        if entries:
            lines.append(f"    section {title}")
            lines.extend(f"    {_label(mark)} :{'crit, ' if mark == 'failed' else ''}milestone, {_at(e.created_at)}, 0d"
                         for e in entries)
    if facts.gaps:
        lines.append("    section Gaps over max_age")
        for gap in facts.gaps:
            lines.append(f"    gap {_label(format_duration(gap.seconds))} :crit, {_at(gap.start)}, {_at(gap.end)}")
    runs = [r for r in facts.runs if r.started_at >= facts.window_start]
    if runs:
        lines.append("    section Guarded runs")
        for run in reversed(runs):
            crit = "crit, " if run.outcome in ("failed", "changed", "running") else ""
            lines.append(f"    {_label(RUN_LABELS[run.outcome])} :{crit}milestone, {_at(run.started_at)}, 0d")
    lines.append("```")
    return "\n".join(lines)
