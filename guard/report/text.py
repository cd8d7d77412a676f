"""Terminal and Markdown renderings of a RunReport. They read facts; they decide nothing."""

from __future__ import annotations

from guard.config import format_duration
from guard.report.model import MigrationResult, RestorePlan, RunReport
from guard.report.sanitize import markdown_cell as _cell
from guard.report.sanitize import markdown_text as _text

HEADLINES = {
    "applied": "APPLIED",
    "nothing_pending": "NOTHING PENDING",
    "ready": "READY - guard run would apply the pending migrations",
    "dry_run_failed": "DRY RUN FAILED - a pending migration does not apply",
    "failed_rolled_back": "FAILED - rolled back, database unchanged",
    "usage_error": "USAGE ERROR - nothing touched",
    "blocked": "BLOCKED - nothing changed",
    "failed_partially_applied": "FAILED AFTER PART COMMITTED - database changed",
    "outcome_unknown": "OUTCOME UNKNOWN - database may have changed",
}


def _where(m: MigrationResult) -> str:
    if m.error and m.error.line:
        return f"{m.file}:{m.error.line}"
    return m.file


def render_text(report: RunReport) -> str:
    lines: list[str] = []
    db = report.database
    head = f"guard {report.command} {report.run_id}"
    if db:
        extra = ", ".join(
            x for x in (f"PostgreSQL {db.server_version}" if db.server_version else "",
                        f"role {db.role}" if db.role else "") if x
        )
        head += f" -> {db.target}" + (f" ({extra})" if extra else "")
    lines.append(head)
    if report.backups:
        state = "ok" if report.backups.ok else ("OVERRIDDEN" if report.backups.override else "NOT CONFIRMED")
        lines.append(f"Backups: {state} (require {report.backups.require})")
        for p in report.backups.providers:
            lines.append(f"  {p.status:<7} {p.provider}: {p.message}")
    if report.restore_target:
        t = report.restore_target
        lines.append(
            f"Restore target: {t.timestamp} (unix {t.unix}"
            + (f", LSN {t.lsn}" if t.lsn else "")
            + (f", restore point {t.restore_point}" if t.restore_point else "")
            + ")"
        )
    for s in report.backup_log:
        if s.status == "recorded":
            lines.append(f"Manual backup logged: {s.sink} (id {s.id})")
        else:
            lines.append(f"Manual backup NOT logged: {s.sink}: {s.error}")
    if report.migrations:
        lines.append("Migrations:")
        for m in report.migrations:
            plural = "" if m.statements == 1 else "s"
            timing = (
                f" ({m.statements} statement{plural}, {m.duration_ms:.0f} ms)"
                if m.duration_ms is not None
                else ""
            )
            lines.append(f"  {m.status:<11} {_where(m)}{timing}")
            if m.error:
                state = f" (SQLSTATE {m.error.sqlstate})" if m.error.sqlstate else ""
                lines.append(f"              ERROR: {m.error.message}{state}")
                if m.error.detail:
                    lines.append(f"              DETAIL: {m.error.detail}")
                if m.error.hint:
                    lines.append(f"              HINT: {m.error.hint}")
                if m.error.statement_index is not None and m.error.statement:
                    first = m.error.statement.strip().splitlines()[0][:120]
                    lines.append(f"              at statement {m.error.statement_index}: {first}")
    if report.findings:
        lines.append("Risk findings:")
        for f in report.findings:
            accepted = f" [accepted: {f['accepted']}]" if f.get("accepted") else ""
            lines.append(f"  {f['file']}:{f['line']}:{f['column']}: {f['severity']} {f['rule']}: "
                         f"{f['message']}{accepted}")
    if report.protective_copies:
        lines.append("Protective copies:")
        for c in report.protective_copies:
            lines.append(f"  {c['source']} -> {c['copy']} ({c['kind']}, {c['rows']} rows) before {c['statement']}")
    for w in report.warnings:
        lines.append(f"Warning: {w}")
    lines.append(f"Outcome: {HEADLINES.get(report.status, report.status)} (exit {report.exit_code})")
    if report.message:
        lines.append(f"  {report.message}")
    if report.restore_plan:
        lines.extend(_plan_text(report.restore_plan))
    return "\n".join(lines) + "\n"


def render_plan_text(plan: RestorePlan) -> str:
    return "\n".join(_plan_text(plan)).lstrip("\n") + "\n"


def render_plan_markdown(plan: RestorePlan) -> str:
    return "\n".join(_plan_markdown(plan)) + "\n"


def _plan_text(plan: RestorePlan) -> list[str]:
    lines = ["", "RESTORE PLAN", f"  {plan.summary}"]
    for step in plan.steps:
        lines.append("")
        lines.append(f"  {step.title}")
        lines.append(f"    {step.text}")
        for command in step.commands:
            lines.append(f"      {command}")
    if plan.support:
        lines.append("")
        lines.append("  For support (copy as is):")
        for key, value in plan.support.items():
            if value not in (None, [], ""):
                shown = ", ".join(value) if isinstance(value, list) else value
                lines.append(f"    {key}: {shown}")
    return lines


def render_markdown(report: RunReport) -> str:
    icon = {0: "✅", 1: "❌", 2: "⚠️", 3: "⛔", 4: "🚨"}.get(report.exit_code, "")
    lines = [
        f"## {icon} migration-guard `{report.command}`: {HEADLINES.get(report.status, report.status)}",
        "",
        _text(report.message),
        "",
        f"Run `{report.run_id}`" + (f" on `{report.database.target}`" if report.database else "")
        + f", exit code **{report.exit_code}**.",
        "",
    ]
    if report.backups:
        lines += ["### Backups", "", "| provider | status | newest backup | age | detail |", "| --- | --- | --- | --- | --- |"]
        for p in report.backups.providers:
            age = format_duration(p.age_seconds) if p.age_seconds is not None else "-"
            lines.append(f"| {p.provider} | {p.status} | {p.newest_backup or '-'} | {age} | {_cell(p.message)} |")
        if report.backups.override:
            lines.append("")
            lines.append(f"**Backup check overridden**: {_cell(str(report.backups.override.get('reason')))}")
        lines.append("")
    if report.restore_target:
        t = report.restore_target
        lines += [
            "### Restore target",
            "",
            f"`{t.timestamp}` (unix `{t.unix}`" + (f", LSN `{t.lsn}`" if t.lsn else "")
            + (f", restore point `{t.restore_point}`" if t.restore_point else "") + ")",
            "",
        ]
    if report.migrations:
        lines += ["### Migrations", "", "| version | file | status | detail |", "| --- | --- | --- | --- |"]
        for m in report.migrations:
            detail = ""
            if m.error:
                detail = m.error.message + (f" (SQLSTATE {m.error.sqlstate})" if m.error.sqlstate else "")
            lines.append(f"| {m.version} | `{_where(m)}` | {m.status} | {_cell(detail)} |")
        lines.append("")
    if report.findings:
        lines += ["### Risk findings", "", "| where | severity | rule | finding | safer |", "| --- | --- | --- | --- | --- |"]
        for f in report.findings:
            sev = f["severity"] + (" (accepted)" if f.get("accepted") else "")
            lines.append(f"| `{f['file']}:{f['line']}` | {sev} | {f['rule']} | {_cell(f['message'])} | "
                         f"{_cell(f.get('alternative') or '')} |")
        lines.append("")
    if report.warnings:
        lines += ["### Warnings", ""] + [f"- {_cell(w)}" for w in report.warnings] + [""]
    if report.restore_plan:
        lines += _plan_markdown(report.restore_plan)
    return "\n".join(lines)


def _fence(commands: list[str]) -> str:
    """A code fence longer than any run of backticks in ``commands``, which cannot close it."""
    import re

    longest = max((len(m) for c in commands for m in re.findall(r"`+", c)), default=0)
    return "`" * max(3, longest + 1)


def _plan_markdown(plan: RestorePlan) -> list[str]:
    lines = ["### Restore plan", "", _text(plan.summary), ""]
    for step in plan.steps:
        lines += [f"**{_text(step.title)}**", "", _text(step.text), ""]
        if step.commands:
            fence = _fence(step.commands)
            lines += [fence, *step.commands, fence, ""]
    if plan.support:
        lines += ["<details><summary>For support</summary>", "", "```"]
        for key, value in plan.support.items():
            if value not in (None, [], ""):
                lines.append(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
        lines += ["```", "", "</details>", ""]
    return lines
