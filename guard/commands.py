"""One plain function per CLI command: assemble what it needs, hand over, render the result.

The CLI maps what these return (an exit code) or raise (a GuardError) to the process exit.
"""

from __future__ import annotations

import datetime as dt
import json
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.config import Config, format_duration, require_database_url
from guard.errors import EXIT_BLOCKED, GuardError, UsageError

if TYPE_CHECKING:
    from guard.cli import Context
    from guard.report.model import RunReport


def run_command(
    ctx: Context,
    config: Config,
    *,
    reason: str | None,
    allow_stale_backup: bool,
    summary_path: Path | None,
    as_json: bool,
    acknowledge: str | None = None,
    command: tuple[str, ...] = (),
) -> int:
    """`guard run`: the guarded run; always writes the report, whatever the outcome."""
    from guard.run import RunOptions, guarded_run, new_report

    report = new_report("run", config, ctx.environ)
    options = RunOptions(reason=reason, allow_stale_backup=allow_stale_backup, acknowledge=acknowledge,
                         command=tuple(command))
    try:
        guarded_run(config, options, report, environ=ctx.environ, progress=ctx.progress, mask=ctx.mask)
    except GuardError as exc:
        status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
        report.set_outcome(status, str(exc), changed=False)
        ctx.error(str(exc))
    except KeyboardInterrupt:
        _unexpected(report, "interrupted")
    except Exception as exc:  # noqa: BLE001 - report what is known, never lose the report
        if ctx.verbose:
            ctx.progress(traceback.format_exc())
        _unexpected(report, f"internal error: {exc.__class__.__name__}: {exc}")
    finish(ctx, config, report, summary_path=summary_path, as_json=as_json)
    return report.exit_code


def check_command(
    ctx: Context,
    config: Config,
    *,
    shadow: str | None,
    shadow_from_target: bool,
    include_all: bool,
    summary_path: Path | None,
    as_json: bool,
) -> int:
    """`guard check`: read-only verdict on what `guard run` would do, plus an optional dry run."""
    from guard.check import CheckOptions, guarded_check
    from guard.run import new_report

    report = new_report("check", config, ctx.environ)
    options = CheckOptions(shadow=shadow, shadow_from_target=shadow_from_target, include_all=include_all)
    if shadow_from_target and not shadow:
        ctx.fail(UsageError("--shadow-from-target needs --shadow embedded|URL"))
    try:
        guarded_check(config, options, report, environ=ctx.environ, progress=ctx.progress)
    except GuardError as exc:
        status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
        report.set_outcome(status, str(exc), changed=False)
        ctx.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a check never changes the target: report and stop
        if ctx.verbose:
            ctx.progress(traceback.format_exc())
        report.set_outcome("blocked", f"internal error: {exc.__class__.__name__}: {exc}", changed=False)
    finish(ctx, config, report, summary_path=summary_path, as_json=as_json)
    return report.exit_code


def _unexpected(report: RunReport, message: str) -> None:
    from guard.restore import RestoreContext, build_plan

    if report.restore_target is None:
        # Nothing had been changed yet: the run stopped while it was only reading.
        report.set_outcome("blocked", message, changed=False)
    else:
        report.set_outcome("outcome_unknown", message, changed=None)
        report.restore_plan = build_plan(report, RestoreContext())


def finish(
    ctx: Context, config: Config, report: RunReport, *, summary_path: Path | None, as_json: bool
) -> None:
    """Stamp the end, write the JSON report (and Markdown summary), print the result."""
    from guard.report import github
    from guard.report import json as json_report
    from guard.report.text import render_markdown, render_text

    now = dt.datetime.now(dt.timezone.utc)
    report.finished_at = now.isoformat().replace("+00:00", "Z")
    started = dt.datetime.fromisoformat(report.started_at.replace("Z", "+00:00"))
    report.duration_ms = round((now - started).total_seconds() * 1000, 1)
    try:
        json_report.write(report, config.report, ctx.mask)
    except OSError as exc:
        ctx.progress(f"cannot write report {config.report}: {exc.strerror}")
    markdown = render_markdown(report)
    if summary_path is not None:
        try:
            summary_path.write_text(ctx.mask(markdown), encoding="utf-8")
        except OSError as exc:
            ctx.progress(f"cannot write summary {summary_path}: {exc.strerror}")
    if as_json:
        ctx.out(json_report.render(report, ctx.mask))
    else:
        ctx.out(render_text(report))
    if github.active(ctx.environ):
        try:
            github.publish(report, environ=ctx.environ, report_path=config.report,
                           markdown=ctx.mask(markdown), echo=ctx.out)
        except OSError as exc:
            ctx.progress(f"cannot write GitHub step files: {exc.strerror}")


def _connect(config: Config, purpose: str) -> Any:
    from guard.db import connect

    return connect(require_database_url(config), application_name=f"guard {purpose}")


def init_command(ctx: Context, config: Config) -> int:
    """`guard init`: install the backup log table and get_backup_stats(), guard's journal
    (schema guard) and the migration history table, so that runs find everything in place."""
    from guard import journal
    from guard.backups.table import install
    from guard.migrations import history

    conn = _connect(config, "init")
    try:
        done = _privileged(lambda: install(conn, config.backup_log), "install the backup log")
        existed = journal.complete(conn)
        _privileged(lambda: journal.ensure(conn), "create guard's journal (schema guard)")
        done.append(f"journal guard.runs, guard.run_commits {'already present' if existed else 'created'}")
        # The migration history exactly as the Supabase CLI creates it on its first push.
        existed = history.is_complete(conn)
        _privileged(lambda: history.ensure_history(conn), f"create the migration history ({history.QUALIFIED})")
        done.append(f"history {history.QUALIFIED} {'already present' if existed else 'created'}")
    finally:
        conn.close()
    for line in done:
        ctx.out(f"{line}\n")
    return 0


def _privileged(action: Any, what: str) -> Any:
    import psycopg

    from guard.errors import Blocked

    try:
        return action()
    except psycopg.errors.InsufficientPrivilege as exc:
        raise Blocked(f"the role may not {what}: {exc.diag.message_primary}") from None
    except psycopg.Error as exc:
        raise Blocked(f"cannot {what}: {exc.diag.message_primary or exc}") from None


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
    conn = _connect(config, "backup log")
    try:
        try:
            entry_id = _privileged(
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


def backup_status_command(ctx: Context, config: Config, *, as_json: bool) -> int:
    """`guard backup status`: stats, recent entries, provider verdicts; 3 when not fresh."""
    from guard.backups import ProviderContext, ProviderError, check_backups, make_providers
    from guard.backups.table import qualified, stats
    from guard.db import server_now
    from guard.drill import last_drill
    from guard.run import _backups_report

    conn = _connect(config, "backup status")
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
    finally:
        conn.close()
    verdicts = _backups_report(verdict)
    exit_code = 0 if verdict.ok else EXIT_BLOCKED
    _publish_backup_status(ctx, verdicts, exit_code)
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
    from guard.run import restore_context

    conn = _connect(config, "restore-plan")
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
                    kept = f"; copy kept until {c['expires_at']}" if c.get("expires_at") else ""  # safety net
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


def _publish_backup_status(ctx: Context, verdicts: Any, exit_code: int) -> None:
    """In GitHub Actions: outputs (status ok/stale, exit-code) and a step summary table."""
    from guard.report import github

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
        age = format_duration(p.age_seconds) if p.age_seconds is not None else "-"
        lines.append(f"| {p.provider} | {p.status} | {p.newest_backup or '-'} | {age} | {p.message} |")
    try:
        if ctx.environ.get("GITHUB_STEP_SUMMARY"):
            with Path(ctx.environ["GITHUB_STEP_SUMMARY"]).open("a", encoding="utf-8") as handle:
                handle.write(ctx.mask("\n".join(lines)) + "\n")
        if ctx.environ.get("GITHUB_OUTPUT"):
            github.write_outputs({"status": status, "exit-code": str(exit_code)},
                                 Path(ctx.environ["GITHUB_OUTPUT"]))
    except OSError as exc:
        ctx.progress(f"cannot write GitHub step files: {exc.strerror}")
    if exit_code:
        failing = "; ".join(f"{p.provider}: {p.message}" for p in verdicts.providers if p.status != "ok")
        ctx.out(github.annotation("error", failing or "no backup provider confirmed a recent backup",
                                  title="migration-guard: backups not confirmed") + "\n")


def prune_command(ctx: Context, config: Config, *, older_than: str | None) -> int:
    """`guard backup prune`: drop expired protective copies, or those older than a duration."""
    from guard.config import parse_duration
    from guard.protect import prune

    try:
        seconds = parse_duration(older_than) if older_than is not None else None
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    conn = _connect(config, "backup prune")
    try:
        dropped = _privileged(lambda: prune(conn, seconds, config.protect.schema,
                                            retention=config.protect.retention), "drop protective copies")
    finally:
        conn.close()
    for name in dropped:
        ctx.out(f"dropped {name}\n")
    which = f"older than {older_than}" if older_than is not None else "expired"
    ctx.out(f"{len(dropped)} protective cop{'y' if len(dropped) == 1 else 'ies'} {which} dropped\n")
    return 0


def lint_command(ctx: Context, config: Config, *, paths: tuple[str, ...], fmt: str) -> int:
    """`guard lint`: findings for the given files, else the pending files (with a database),
    else every file of the migrations folder. Exit 0 without blocking errors, 3 with."""
    from guard.lint import LintConfig, blocking, lint_paths
    from guard.lint import render as lint_render
    from guard.migrations.files import discover

    settings = LintConfig(disabled=config.lint.disable, severity=config.lint.severity)
    server_major: int | None = None
    existing = None
    conn = None
    if paths:
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(path.glob("*.sql")))
            elif path.is_file():
                files.append(path)
            else:
                raise UsageError(f"{raw}: no such file or directory")
    elif config.database_url:
        from guard.run import RunOptions, load_migrations, new_report, plan_pending

        conn = _connect(config, "lint")
        conn.execute("SET default_transaction_read_only = on")
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        server_major = int(row[0]) if row else None
        loaded = load_migrations(config, ctx.progress)
        pending = plan_pending(conn, config, RunOptions(), loaded, {f.version: f for f in loaded},
                               new_report("lint", config, ctx.environ))
        files = [f.path for f in pending]

        def existing(name: str) -> bool:
            assert conn is not None
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            return bool(found and found[0])
    else:
        files = [ref.path for ref in discover(config.migrations.dir)]
    try:
        findings = lint_paths(files, display_root=config.base_dir, server_major=server_major,
                              config=settings, existing_tables=existing)
    finally:
        if conn is not None:
            conn.close()
    renderer = {"text": lint_render.text, "json": lint_render.as_json, "github": lint_render.github}[fmt]
    ctx.out(renderer(findings))
    return EXIT_BLOCKED if blocking(findings) else 0


def snapshot_command(ctx: Context, config: Config, *, mode: str) -> int:
    """`guard snapshot`: take it, print where it is and how to restore it."""
    from guard.snapshot import take_snapshot

    manifest = take_snapshot(require_database_url(config), mode=mode, out_dir=config.snapshot.dir,
                             encrypt=config.snapshot.encrypt, key=config.snapshot.key, progress=ctx.progress)
    if manifest.mode == "full":
        rows = sum(n or 0 for n in manifest.tables.values())
        content = f"{_plural(len(manifest.tables), 'table')}, {_plural(rows, 'row')}"
    else:
        content = f"{_plural(len(manifest.tables), 'table')}, schema only"
    state = f"encrypted ({manifest.encryption['algorithm']})" if manifest.encryption else "NOT encrypted"
    ctx.out(
        f"snapshot {manifest.path}\n"
        f"  database  {manifest.database} (PostgreSQL {manifest.server_version}), {content}\n"
        f"  file      {manifest.bytes} bytes, {state}, sha256 {manifest.sha256}\n"
        f"  manifest  {manifest.manifest_path}\n"
        f"  restore   {manifest.restore_command}\n"
    )
    return 0


def drill_command(ctx: Context, config: Config, *, snapshot: Path | None, target: str | None, as_json: bool) -> int:
    """`guard drill`: run it, print the verdict with the restore duration; 0 pass, 1 fail."""
    from guard.drill import run_drill

    result = run_drill(snapshot, snapshot_dir=config.snapshot.dir, key=config.snapshot.key, target_url=target,
                       checks=config.drill.checks, progress=ctx.progress, production_url=config.database_url)
    if as_json:
        ctx.out(json.dumps(result.to_dict(), indent=2) + "\n")
        return 0 if result.ok else 1
    took = f"restore took {result.restore_seconds:.2f}s" if result.restore_seconds is not None else "no restore"
    if result.ok:
        tables = _plural(result.tables or 0, "table")
        what = (f"{tables}, {_plural(result.rows or 0, 'row')} match the manifest" if result.mode == "full"
                else f"{tables}, schema only")
        checks = f", {result.checks_run} check(s) passed" if result.checks_run else ""
        ctx.out(f"drill passed: {result.snapshot} into {result.target}: {took} "
                f"({result.bytes} bytes; {what}{checks})\n")
    else:
        ctx.out(f"drill FAILED: {result.snapshot}: {result.reason} ({took})\n")
    for place in result.recorded:
        ctx.progress(f"drill recorded in {place}")
    return 0 if result.ok else 1


def decrypt_command(ctx: Context, config: Config, *, source: Path, target: Path) -> int:
    """`guard decrypt`: an encrypted snapshot back to a pg_restore-able dump."""
    from guard.snapshot import decrypt_file

    if not config.snapshot.key:
        raise UsageError("no snapshot key is set", hint="set GUARD_SNAPSHOT_KEY (or snapshot.key) to the key it was taken with")
    decrypt_file(source, target, config.snapshot.key)
    ctx.out(f"decrypted {source.name} -> {target}\n")
    return 0


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")
