"""`guard init`, `guard backup log|status|prune`, `guard restore-plan`: the backup log and the journal."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec.structs

from guard.config import Config, format_duration
from guard.errors import EXIT_BLOCKED, GuardError, UsageError

if TYPE_CHECKING:
    from guard.context import Context
    from guard.report.model import RestorePlan
from guard.commands.common import open_connection, privileged


def init_command(ctx: Context, config: Config) -> int:
    """`guard init`: install the backup log table and get_backup_stats(), guard's journal
    (schema guard, with the tables undo reads) and the migration history table, so that runs
    find everything in place."""
    import psycopg

    from guard import journal
    from guard.backups.table import install
    from guard.guard_schema import schema_line
    from guard.migrations import history
    from guard.undo import catalog

    conn = open_connection(config, "init")
    try:
        done = privileged(lambda: install(conn, config.backup_log), "install the backup log")
        existed = journal.complete(conn)
        found = privileged(lambda: journal.ensure(conn, complete=existed), "create guard's journal (schema guard)")
        # The tables a run records its catalogs and row hashes in (for guard undo), made here
        # once rather than by the first run. Not a reason to fail init: a run that cannot make
        # them warns and undo has no local inverse for it, as before init made them.
        try:
            catalog.ensure(conn)
        except psycopg.Error as exc:
            done.append(f"undo's tables guard.run_catalogs, guard.run_rows not created: "
                        f"{exc.diag.message_primary or exc}")
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
        from guard.backups import FUTURE_SLACK
        from guard.db import server_now
        from guard.db_encoding import refuse_unheld

        if created_at is not None and (created_at - server_now(conn)).total_seconds() > FUTURE_SLACK:
            raise UsageError(f"--at: {at!r} is in the future, ahead of the database server's clock: a backup is logged when it "
                             "happened (give a zone, e.g. 2026-11-25T03:00:00Z or +02:00)")

        refuse_unheld(conn, {"--reason": reason, **{f"--meta {item}": item for item in meta},
                             **{f"the CI fact {key}": value for key, value in ci_context(ctx.environ).items()},
                             "the actor": actor(ci_context(ctx.environ))})
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
    from guard.backups import (
        ProviderContext,
        ProviderError,
        check_backups,
        format_age,
        make_providers,
    )
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
            # age: as the text and the page show it ("2h 05min in the future" for one dated ahead)
            "providers": [{**msgspec.structs.asdict(p), "age": None if p.age_seconds is None else format_age(p.age_seconds)}
                          for p in verdicts.providers],
            "last_drill": drill,
        }
        ctx.out(json.dumps(payload, indent=2, default=str) + "\n")
        return exit_code
    from guard.report.text import provider_line

    lines = [f"Backups: {'ok' if verdict.ok else 'NOT CONFIRMED'} (require {verdict.require})"]
    lines += [provider_line(p) for p in verdicts.providers]
    if table_stats is not None:
        lines += _log_lines(qualified(config.backup_log), table_stats)
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


def _log_lines(table: str, table_stats: dict[str, Any]) -> list[str]:
    """The backup log's counts, its last completed backup (a failed attempt is not a backup)
    and its recent entries, timestamps all the same width."""
    from guard.report.text import aligned_time, plural

    last = table_stats.get("last_backup_at")
    lines = [
        f"Backup log {table}: {plural(int(table_stats['total_backups']), 'entry', 'entries')} "
        f"({table_stats['automated_backups']} automated, {table_stats['manual_backups']} manual); "
        f"last completed backup {aligned_time(last) if last else 'never'}"
    ]
    recent = table_stats.get("recent") or []
    if recent:
        lines.append("Recent entries:")
        for entry in recent:
            meta = entry.get("metadata")
            status = meta.get("status", "completed") if isinstance(meta, dict) else "damaged metadata"
            mark = "" if status == "completed" else f" [{status}]"
            lines.append(
                f"  {aligned_time(str(entry['created_at']))}  {entry['kind']:<9} {entry.get('reason') or ''}"
                f"{mark}  ({entry.get('created_by') or '?'})"
            )
    return lines


def restore_plan_command(ctx: Context, config: Config, *, run_id: str | None, fmt: str) -> int:
    """`guard restore-plan`: the plan of a past run, from the journal; with no id, the latest run
    that still needs attention (guard.journal.LATEST_FAILED). Steps whose protective copies
    were pruned are left out; `guard undo` is offered only when undo would accept the run now,
    and a run that was undone says so (guard.restore_undo). A run that needs no plan, and no
    run needing attention (exit 0), say so in the format asked for; with ``--format json``
    every outcome, an error too, is one JSON object on stdout."""
    from guard.run.report import checked_run_id, shown_run_id

    try:
        return _restore_plan(ctx, config, run_id=checked_run_id(run_id), fmt=fmt)
    except GuardError as exc:
        if fmt == "json":
            shown = None if run_id is None else shown_run_id(run_id)
            ctx.out(json.dumps({"run_id": shown, "found": False, "error": str(exc),
                                "exit_code": exc.exit_code}, indent=2) + "\n")
        raise


def _restore_plan(ctx: Context, config: Config, *, run_id: str | None, fmt: str) -> int:
    from guard import journal

    conn = open_connection(config, "restore-plan")
    try:
        run = journal.find(conn, run_id)
        if run is None:
            if run_id:
                raise GuardError(f"no run {run_id} in the journal of this database (guard.runs)")
            ctx.out(_nothing_needs_attention(fmt))
            return 0
        copies = list((run.report or {}).get("protective_copies") or [])
        present = _copies_present(conn, copies)
        plan, was_undone = _undo_now(conn, config, run, _plan_of(run, config, copies, present))
    finally:
        conn.close()
    shown = [] if was_undone else [c for c in copies if c.get("copy") in present]  # undo used them
    ctx.out(_render_plan(run, plan, shown, fmt))
    return 0


NOTHING = ("No run in the journal of this database (guard.runs) needs attention: none failed or was left "
           "unfinished since the last run that ended 0. guard restore-plan RUN_ID shows the plan of any run.")


def _nothing_needs_attention(fmt: str) -> str:
    if fmt == "json":
        return json.dumps({"run_id": None, "found": False, "needs_attention": False, "restore_plan": None,
                           "message": NOTHING}, indent=2) + "\n"
    return ("## migration-guard: nothing to restore\n\n" if fmt == "markdown" else "") + NOTHING + "\n"


def _undo_now(conn: Any, config: Config, run: Any, plan: Any) -> tuple[Any, bool]:
    """(plan, undone): the plan with `guard undo` as undo would answer now. A run undone since
    says so and offers neither undo nor its copies again; a changed run's plan asks undo's dry
    run."""
    from guard.report.model import RestorePlan
    from guard.restore_undo import after_undo, ask, of_an_undo, offer, undone

    if run.command == "undo" and plan is None:
        return of_an_undo(run.run_id, run.report or {}), False
    if run.command != "run":
        return plan, False
    row = undone(conn, run.run_id)
    if row is not None:
        undo_run = _find(conn, row["undo_id"])
        report = (undo_run.report if undo_run is not None else None) or {}
        left = [*report.get("kept", []), *report.get("not_invertible", [])]
        return after_undo(plan or RestorePlan(False, "", [], []), run.run_id, row, left), True
    if plan is not None and run.exit_code == 4 and run.finished_at is not None:
        offer(plan, ask(conn, config, run.run_id), run.run_id)
    return plan, False


def _find(conn: Any, run_id: str) -> Any:
    from guard import journal

    return journal.find(conn, run_id)


def _copies_present(conn: Any, copies: list[dict[str, Any]]) -> set[str]:
    """The names of the copies that still exist (to_regclass; a malformed name counts as gone)."""
    import psycopg

    present = set()
    for copy in copies:
        name = str(copy.get("copy") or "")
        try:
            row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
        except psycopg.Error:
            continue
        if row and row[0]:
            present.add(name)
    return present


def without_missing_copies(plan: RestorePlan, copies: list[dict[str, Any]], present: set[str]) -> RestorePlan:
    """``plan`` with no step that reads a protective copy which no longer exists (``guard backup
    prune`` dropped it): those copies are named as gone instead. ``copies`` as the report's
    ``protective_copies``; ``present``: the copy names that exist now."""
    from guard.report.model import RestorePlan, RestoreStep
    from guard.restore import lettered

    gone = [c for c in copies if c.get("copy") not in present]
    if not gone:
        return plan
    gone_sql = [str(c.get("restore_sql")) for c in gone]
    steps: list[RestoreStep] = []
    for step in plan.steps:
        if "(protective copies)" in step.title:
            kept = [cmd for cmd in step.commands if not any(q in cmd for q in gone_sql)]
            if kept:
                steps.append(RestoreStep(step.title, step.text, kept))
            continue
        steps.append(step)
    names = ", ".join(str(c.get("copy")) for c in gone)
    steps.append(RestoreStep(
        "What is gone: pruned protective copies",
        f"{names} no longer exist (guard backup prune drops old copies); their rows can come back "
        "only from a whole-database restore.",
    ))
    return RestorePlan(plan.needed, plan.summary, plan.committed_versions, lettered(steps), plan.support)


def _plan_of(run: Any, config: Config, copies: list[dict[str, Any]], present: set[str]) -> Any:
    from guard.report.model import plan_from_dict
    from guard.restore import plan_for_unfinished
    from guard.run.outcome import restore_context

    if run.finished_at is None:
        # Only what this run recorded in guard.run_commits: a later run may have applied the
        # rest of its files, and the history would credit them to this one.
        return plan_for_unfinished(run, list(run.committed), restore_context(config))
    if run.report and run.report.get("restore_plan"):
        plan = without_missing_copies(plan_from_dict(run.report["restore_plan"]), copies, present)
        return without_missing_snapshot(plan, run.report.get("snapshot"))
    return None


def without_missing_snapshot(plan: RestorePlan, snapshot: dict[str, Any] | None) -> RestorePlan:
    """``plan`` without the snapshot step when its file is not found from the working directory
    (another machine, a CI runner's artifact): a note says where it was written instead."""
    from guard.report.model import RestorePlan, RestoreStep
    from guard.restore import lettered

    if not snapshot or Path(str(snapshot.get("file") or "")).is_file():
        return plan
    steps = [s for s in plan.steps if "The snapshot guard took" not in s.title]
    steps.append(RestoreStep(
        "What is not here: the snapshot",
        f"The run wrote snapshot {snapshot.get('file')} (sha256 {str(snapshot.get('sha256'))[:12]}...), which "
        "is not found from this directory: on a CI runner, download the job's artifact, then "
        "`guard drill PATH` proves it restores and prints its restore command.",
    ))
    return RestorePlan(plan.needed, plan.summary, plan.committed_versions, lettered(steps), plan.support)


def _render_plan(run: Any, plan: Any, copies: list[dict[str, Any]], fmt: str) -> str:
    from guard.report.text import render_plan_markdown, render_plan_text
    from guard.structs import asdict

    if fmt == "json":
        return json.dumps({"run_id": run.run_id, "status": run.status, "exit_code": run.exit_code,
                           "restore_target": run.restore_target,
                           "restore_plan": asdict(plan) if plan is not None else None,
                           "protective_copies": copies}, indent=2, default=str) + "\n"
    if plan is None:
        lines = [f"Run {run.run_id} finished with status {run.status} (exit {run.exit_code}): "
                 "it needs no restore plan."]
        if copies:
            from guard.protect.order import restore_order

            lines.append("To undo its destructive statements, its protective copies can be put back "
                         "(in this order, the last destruction first):")
            lines += [f"-- {c['source']} ({c['kind']}, {c['rows']} rows) at {c['statement']}"
                      + (f"; copy kept until {c['expires_at']}" if c.get("expires_at") else "")
                      + f"\n{c['restore_sql']}"
                      for c in restore_order(copies)]
        text = "\n".join(lines) + "\n"
        return f"## migration-guard run `{run.run_id}`: {run.status}\n\n{text}" if fmt == "markdown" else text
    if fmt == "markdown":
        return f"## migration-guard run `{run.run_id}`: {run.status}\n\n" + render_plan_markdown(plan)
    return f"Run {run.run_id} ({run.status}, started {run.started_at.isoformat()})\n" + render_plan_text(plan)


def prune_command(ctx: Context, config: Config, *, older_than: str | None) -> int:
    """`guard backup prune`: drop expired protective copies, or those older than a duration."""
    from guard.config.values import duration
    from guard.protect import prune

    try:
        # Bounded where PostgreSQL's interval arithmetic is not ("interval out of range", exit 3).
        seconds = duration(0.0, 36600 * 86400.0)(older_than) if older_than is not None else None
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


def remove_command(ctx: Context, config: Config, *, entry_id: int) -> int:
    """`guard backup remove ID`: delete one entry of the backup log, the way out of a damaged
    one (guard.backups.table.damaged names it); says what it removed."""
    from guard.backups.table import qualified, remove_entry, table_exists

    conn = open_connection(config, "backup remove")
    try:
        if not table_exists(conn, config.backup_log):
            raise UsageError(f"backup log table {qualified(config.backup_log)} does not exist (run `guard init`)")
        row = privileged(lambda: remove_entry(conn, config.backup_log, entry_id),
                         f"remove an entry of {qualified(config.backup_log)}")
    finally:
        conn.close()
    if row is None:
        raise UsageError(f"no entry {entry_id} in {qualified(config.backup_log)} (guard backup status lists the recent ones)")
    kind, created_at, reason, metadata = row
    ctx.out(f"removed {kind} entry {entry_id} of {qualified(config.backup_log)} "
            f"(created_at {created_at}, reason {reason!r}, metadata {metadata[:200]})\n")
    return 0
