"""`guard init`, `guard backup log|status|prune`, `guard restore-plan`: the backup log and the journal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.config import Config, format_duration
from guard.errors import EXIT_BLOCKED, GuardError, UsageError

if TYPE_CHECKING:
    from guard.context import Context
from guard.commands.common import open_connection, privileged


def init_command(ctx: Context, config: Config) -> int:
    """`guard init`: install the backup log table and get_backup_stats(), guard's journal
    (schema guard) and the migration history table, so that runs find everything in place."""
    from guard import journal
    from guard.backups.table import install
    from guard.guard_schema import schema_line
    from guard.migrations import history

    conn = open_connection(config, "init")
    try:
        done = privileged(lambda: install(conn, config.backup_log), "install the backup log")
        existed = journal.complete(conn)
        found = privileged(lambda: journal.ensure(conn), "create guard's journal (schema guard)")
        done.append(f"journal guard.runs, guard.run_commits {'already present' if existed else 'created'}")
        done.append(schema_line(found))
        # The migration history exactly as the Supabase CLI creates it on its first push.
        existed = history.is_complete(conn)
        privileged(lambda: history.ensure_history(conn), f"create the migration history ({history.QUALIFIED})")
        done.append(f"history {history.QUALIFIED} {'already present' if existed else 'created'}")
    finally:
        conn.close()
    for line in done:
        ctx.out(f"{line}\n")
    return 0


def backup_log_command(
    ctx: Context,
    config: Config,
    *,
    reason: str,
    kind: str,
    status: str,
    at: str | None,
    meta: tuple[str, ...],
) -> int:
    """`guard backup log`: one entry in the backup log."""
    from guard.backups import SinkError
    from guard.backups.table import qualified, write_entry
    from guard.run import actor, ci_context

    created_at = None
    if at:
        try:
            created_at = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
        except ValueError:
            raise UsageError(f"--at: expected an ISO 8601 timestamp, got {at!r}") from None
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=dt.timezone.utc)
    metadata: dict[str, Any] = {"status": status, **ci_context(ctx.environ)}
    for item in meta:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--meta: expected KEY=VALUE, got {item!r}")
        metadata[key] = value
    conn = open_connection(config, "backup log")
    try:
        try:
            entry_id = privileged(
                lambda: write_entry(
                    conn, config.backup_log, kind=kind, reason=reason,
                    created_by=actor(ci_context(ctx.environ)), metadata=metadata,
                    created_at=created_at,
                ),
                f"write to {qualified(config.backup_log)}",
            )
        except SinkError as exc:
            raise GuardError(str(exc)) from None
    finally:
        conn.close()
    ctx.out(f"logged {kind} backup {entry_id} in {qualified(config.backup_log)}: {reason}\n")
    return 0


def backup_status_command(ctx: Context, config: Config, *, as_json: bool, html: Path | None = None) -> int:
    """`guard backup status`: stats, recent entries, provider verdicts; 3 when not fresh.
    With ``html``, also the Backups page (guard.report.html) at that path."""
    from guard.backups import ProviderContext, ProviderError, check_backups, make_providers
    from guard.backups.table import qualified, stats
    from guard.db import server_now
    from guard.drill import last_drill
    from guard.report.backup_status import publish_backup_status, status_facts
    from guard.report.html import write_or_fail
    from guard.run.backup_gate import backups_report

    conn = open_connection(config, "backup status")
    try:
        table_stats: dict[str, Any] | None
        stats_error = None
        try:
            table_stats = stats(conn, config.backup_log)
        except ProviderError as exc:
            table_stats, stats_error = None, str(exc)
        pctx = ProviderContext(conn=conn, config=config, now=server_now(conn))
        verdict = check_backups(make_providers(config), config.backups.providers, pctx)
        drill = last_drill(conn, config.snapshot.dir)
        facts = status_facts(ctx.environ, conn, config, html, verdict, table_stats, stats_error, pctx.now)
    finally:
        conn.close()
    verdicts = backups_report(verdict)
    exit_code = 0 if verdict.ok else EXIT_BLOCKED
    publish_backup_status(ctx, verdicts, exit_code, facts)
    if html is not None and facts is not None:
        ctx.progress(f"Backups page written to {write_or_fail(facts, html, ctx.mask)}")
    if as_json:
        payload = {
            "ok": verdict.ok,
            "exit_code": exit_code,
            "table": qualified(config.backup_log),
            "stats": table_stats,
            "stats_error": stats_error,
            "providers": [p.__dict__ for p in verdicts.providers],
            "last_drill": drill,
        }
        ctx.out(json.dumps(payload, indent=2, default=str) + "\n")
        return exit_code
    lines = [f"Backups: {'ok' if verdict.ok else 'NOT CONFIRMED'} (require {verdict.require})"]
    for p in verdicts.providers:
        lines.append(f"  {p.status:<7} {p.provider}: {p.message}")
    if table_stats is not None:
        lines.append(
            f"Backup log {qualified(config.backup_log)}: {table_stats['total_backups']} entries "
            f"({table_stats['automated_backups']} automated, {table_stats['manual_backups']} manual); "
            f"last backup {table_stats['last_backup_at'] or 'never'}"
        )
        recent = table_stats.get("recent") or []
        if recent:
            lines.append("Recent entries:")
            for entry in recent:
                status = (entry.get("metadata") or {}).get("status", "completed")
                mark = "" if status == "completed" else f" [{status}]"
                lines.append(
                    f"  {entry['created_at']}  {entry['kind']:<9} {entry.get('reason') or ''}"
                    f"{mark}  ({entry.get('created_by') or '?'})"
                )
    else:
        lines.append(f"Backup log: {stats_error}")
    if drill is not None:
        outcome = "passed" if drill.get("ok") else f"FAILED ({drill.get('reason')})"
        seconds = drill.get("restore_seconds")
        lines.append(f"Last restore drill: {drill.get('finished_at')} {outcome}"
                     + (f", restore took {seconds}s" if seconds is not None else "") + f" ({drill.get('snapshot')})")
    if not verdict.ok:
        lines.append(f"No recent automated backup confirmed within {format_duration(config.backups.max_age)}.")
    ctx.out("\n".join(lines) + "\n")
    return exit_code


def restore_plan_command(ctx: Context, config: Config, *, run_id: str | None, fmt: str) -> int:
    """`guard restore-plan`: the plan of a past run, from the journal (latest failed by default)."""
    from dataclasses import asdict

    from guard import journal
    from guard.migrations import history
    from guard.report.model import plan_from_dict
    from guard.report.text import render_plan_markdown, render_plan_text
    from guard.restore import plan_for_unfinished
    from guard.run.outcome import restore_context

    conn = open_connection(config, "restore-plan")
    try:
        run = journal.find(conn, run_id)
        if run is None:
            which = f"run {run_id}" if run_id else "failed or unfinished run"
            raise GuardError(f"no {which} in the journal of this database (guard.runs)")
        if run.finished_at is None:
            applied = {a.version for a in history.read_history(conn)}
            plan = plan_for_unfinished(
                run, [v for v in run.pending if v in applied], restore_context(config)
            )
        elif run.report and run.report.get("restore_plan"):
            plan = plan_from_dict(run.report["restore_plan"])
        else:
            copies = (run.report or {}).get("protective_copies") or []
            ctx.out(f"Run {run.run_id} finished with status {run.status} (exit {run.exit_code}): "
                    "it needs no restore plan.\n")
            if copies:
                ctx.out("To undo its destructive statements, its protective copies can be put back:\n")
                for c in copies:
                    kept = f"; copy kept until {c['expires_at']}" if c.get("expires_at") else ""
                    ctx.out(f"-- {c['source']} ({c['kind']}, {c['rows']} rows) at {c['statement']}{kept}\n"
                            f"{c['restore_sql']}\n")
            return 0
    finally:
        conn.close()
    if fmt == "json":
        ctx.out(json.dumps({"run_id": run.run_id, "status": run.status, "exit_code": run.exit_code,
                            "restore_target": run.restore_target, "restore_plan": asdict(plan)},
                           indent=2, default=str) + "\n")
    elif fmt == "markdown":
        ctx.out(f"## migration-guard run `{run.run_id}`: {run.status}\n\n" + render_plan_markdown(plan))
    else:
        ctx.out(f"Run {run.run_id} ({run.status}, started {run.started_at.isoformat()})\n"
                + render_plan_text(plan))
    return 0


def prune_command(ctx: Context, config: Config, *, older_than: str | None) -> int:
    """`guard backup prune`: drop expired protective copies, or those older than a duration."""
    from guard.config import parse_duration
    from guard.protect import prune

    try:
        seconds = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    conn = open_connection(config, "backup prune")
    try:
        dropped = privileged(lambda: prune(conn, seconds, config.protect.schema,
                                           retention=config.protect.retention), "drop protective copies")
    finally:
        conn.close()
    for name in dropped:
        ctx.out(f"dropped {name}\n")
    which = f"older than {older_than}" if older_than is not None else "expired"
    ctx.out(f"{len(dropped)} protective cop{'y' if len(dropped) == 1 else 'ies'} {which} dropped\n")
    return 0
