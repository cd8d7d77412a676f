"""Terminal and Markdown renderings of a RunReport. They read facts; they decide nothing."""

from __future__ import annotations

from guard.backups import format_age
from guard.report.model import MigrationResult, ProviderReport, RestorePlan, RunReport
from guard.report.sanitize import markdown_cell as _cell
from guard.report.sanitize import markdown_text as _text
from guard.report.verify import markdown_lines as verify_markdown
from guard.report.verify import text_lines as verify_text

HEADLINES = {
    "applied": "APPLIED",
    "nothing_pending": "NOTHING PENDING",
    "ready": "READY - guard run would apply the pending migrations",
    "dry_run_failed": "DRY RUN FAILED - a pending migration does not apply",
    "failed_rolled_back": "FAILED - rolled back, database unchanged",
    "usage_error": "USAGE ERROR - no migration applied",
    "blocked": "BLOCKED - no migration applied",
    "failed_partially_applied": "FAILED AFTER PART COMMITTED - database changed",
    "outcome_unknown": "OUTCOME UNKNOWN - database may have changed",
    "verify_failed": "VERIFY FAILED - applied, but a check failed: database changed, not as intended",
}


def headline(report: RunReport) -> str:
    """The outcome's headline. ``dry_run_failed`` without a shadow (``report.shadow`` None) is
    a file that could not be read or parsed: no dry run took place, so none is named."""
    if report.status == "dry_run_failed" and report.shadow is None:
        return "FAILED - a pending migration cannot be read or parsed (no dry run took place)"
    if report.status == "verify_failed" and report.interrupted:
        return (f"VERIFY INTERRUPTED - applied, but the checks did not finish ({report.interrupted}): "
                "database changed, not verified")
    return HEADLINES.get(report.status, report.status)


# Status words as shown beside a provider: "missing" read as if the table itself were missing.
_PROVIDER_STATUS_SHOWN = {"missing": "none"}


def provider_line(p: ProviderReport) -> str:
    """One provider's verdict, indented, its status word first (``none`` for no completed backup)."""
    return f"  {_PROVIDER_STATUS_SHOWN.get(p.status, p.status):<7} {p.provider}: {p.message}"


def plural(n: int, one: str, many: str | None = None) -> str:
    """``1 entry``, ``2 entries``: the count and the noun in the right number."""
    return f"{n} {one if n == 1 else (many or one + 's')}"


def aligned_time(value: str) -> str:
    """An ISO 8601 time as UTC with all six fraction digits (``2026-01-02T03:04:05.100000Z``):
    PostgreSQL's JSON drops trailing zeros, which misaligned a column of times. Text that is not
    a time is returned as is."""
    import datetime as dt
    import re

    text = re.sub(r"\.(\d{1,6})\d*", lambda m: "." + m.group(1).ljust(6, "0"), value.strip().replace("Z", "+00:00"))
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.timezone.utc)
    return parsed.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


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
        lines += [provider_line(p) for p in report.backups.providers]
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
    if report.shadow and report.shadow.get("trace"):
        from guard.shadow_trace import render_text as trace_text

        lines.extend(trace_text(report.shadow["trace"]))
    lines += verify_text(report.verify)
    if report.protective_copies:
        lines.append("Protective copies:")
        for c in report.protective_copies:
            lines.append(f"  {c['source']} -> {c['copy']} ({c['kind']}, {c['rows']} rows) before {c['statement']}")
    for w in report.warnings:
        lines.append(f"Warning: {w}")
    lines.append(f"Outcome: {headline(report)} (exit {report.exit_code})")
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
        lines.extend(f"    {line}" for line in step.text.splitlines())
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
        f"## {icon} migration-guard `{report.command}`: {headline(report)}",
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
            age = format_age(p.age_seconds) if p.age_seconds is not None else "-"
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
    if report.shadow and report.shadow.get("trace"):
        from guard.shadow_trace import render_markdown as trace_markdown

        lines += trace_markdown(report.shadow["trace"], _cell)
    lines += verify_markdown(report.verify)
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
