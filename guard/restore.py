"""Restore instructions fitted to what happened and to what exists.

Exit 1: nothing this run applied was committed, so no restore; say what to fix.
Exit 4: name the committed versions, the exact restore target, and the concrete steps of
every path this run has: fix forward, PITR (Supabase or plain PostgreSQL), the newest
automated backup, a dump; plus what to send to support.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from msgspec import Struct

from guard.protect.order import restore_order
from guard.report.model import MigrationResult, RestorePlan, RestoreStep, RestoreTarget, RunReport

if TYPE_CHECKING:
    from guard.journal import JournalRun

SUPABASE_API = "https://api.supabase.com"
_SUPABASE_HOST = re.compile(r"(?:^|\.)(?:db\.)?([a-z0-9]{20})\.supabase\.(?:co|com)$")
_SUPABASE_POOLER_USER = re.compile(r"^[^.]+\.([a-z0-9]{20})$")


class RestoreContext(Struct, frozen=True):
    """What the plan may mention besides the report: Supabase project, pgBackRest stanza."""

    project_ref: str | None = None
    pgbackrest_stanza: str | None = None
    history_table: str = "supabase_migrations.schema_migrations"


def supabase_project_ref(url: str | None) -> str | None:
    """The project ref in a Supabase database URL (db.<ref>.supabase.co or pooler user postgres.<ref>)."""
    if not url or "://" not in url:
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    host = parts.hostname or ""
    match = _SUPABASE_HOST.search(host)
    if match:
        return match.group(1)
    if host.endswith("pooler.supabase.com") and parts.username:
        user_match = _SUPABASE_POOLER_USER.match(parts.username)
        if user_match:
            return user_match.group(1)
    return None


def build_plan(report: RunReport, ctx: RestoreContext) -> RestorePlan | None:
    """The plan for a failed run (exit 1 or 4), None otherwise. A wrapped run's plan speaks of
    its command and of the catalog changes it made (guard.run.wrap fills ``report.wrapped``);
    a verify_failed one of its checks (guard.restore_verify)."""
    if report.wrapped is not None and report.status in ("failed_rolled_back", "failed_partially_applied"):
        return _wrapped(report, ctx)
    if report.status == "verify_failed":
        from guard.restore_verify import verify_failed_plan

        plan = verify_failed_plan(report, ctx, _restore_paths(report, ctx), _newest_backup(report))
        return RestorePlan(plan.needed, plan.summary, plan.committed_versions, lettered(plan.steps), plan.support)
    if report.status == "failed_rolled_back":
        return _nothing_committed(report)
    if report.status in ("failed_partially_applied", "outcome_unknown"):
        return _changed(report, ctx)
    return None


def plan_for_unfinished(run: JournalRun, committed: list[str], ctx: RestoreContext) -> RestorePlan:
    """The plan for a run that started and never finished (its process died).

    ``committed`` is what the run recorded in guard.run_commits, each row in its file's own
    transaction: exactly the files it committed, never those a later run applied.
    """
    started = run.started_at.isoformat()
    if not committed:
        return RestorePlan(
            needed=False,
            summary=f"Run {run.run_id} (started {started}) never finished, but none of its files "
            f"committed (its journal records none of {', '.join(run.pending)}): no restore needed.",
            committed_versions=[],
            steps=[
                RestoreStep(
                    "Acknowledge the run and carry on",
                    "Once you have checked why the run stopped (job cancelled, runner lost):",
                    [f"guard run --acknowledge {run.run_id} --reason '<what you checked>'"],
                )
            ],
        )
    report = RunReport(command=run.command, run_id=run.run_id, started_at=started)
    report.set_outcome(
        "failed_partially_applied",
        f"run {run.run_id} stopped after committing {', '.join(committed)}",
        changed=True,
    )
    report.migrations = [
        MigrationResult(v, "", v, "applied" if v in committed else "skipped", 0) for v in run.pending
    ]
    if run.restore_target:
        fields = {k: run.restore_target.get(k) for k in RestoreTarget.__struct_fields__}
        report.restore_target = RestoreTarget(**fields)  # type: ignore[arg-type]
    plan = _changed(report, ctx)
    plan.summary = (
        f"Run {run.run_id} (started {started}) never finished; its journal shows "
        f"{', '.join(committed)} committed. " + plan.summary.split(". ", 1)[-1]
    )
    plan.steps.append(
        RestoreStep(
            "Then acknowledge the run",
            "After restoring, or deciding to keep its committed files:",
            [f"guard run --acknowledge {run.run_id} --reason '<what you did>'"],
        )
    )
    return plan


def _failure_line(report: RunReport) -> str:
    failed = next((m for m in report.migrations if m.status in ("failed", "unknown")), None)
    if failed is None or failed.error is None:
        return report.message
    err = failed.error
    where = f"{err.file}:{err.line}" if err.line else err.file
    state = f" (SQLSTATE {err.sqlstate})" if err.sqlstate else ""
    return f"{where}: {err.message}{state}"


def _nothing_committed(report: RunReport) -> RestorePlan:
    rolled_back = [m.version for m in report.migrations if m.status in ("failed", "rolled_back")]
    if report.interrupted:
        # The file was stopped, not at fault: nothing in it needs correcting.
        steps = [
            RestoreStep(
                "Run guard again when ready",
                f"The run was interrupted by {report.interrupted} while applying "
                f"{', '.join(rolled_back)}; that file was rolled back and the files after it were "
                "not started. Nothing needs correcting: re-run the same command.",
            )
        ]
    else:
        steps = [
            RestoreStep(
                "Fix the failing migration and run guard again",
                f"{_failure_line(report)}. The failing file was rolled back; files after it were "
                "not started. Correct it, then re-run the same command.",
            )
        ]
    return RestorePlan(
        needed=False,
        summary="No restore needed: nothing this run applied was committed "
        f"(rolled back: {', '.join(rolled_back)})." if rolled_back else
        "No restore needed: nothing this run applied was committed.",
        committed_versions=[],
        steps=steps,
        support=None,
    )


def _changed(report: RunReport, ctx: RestoreContext) -> RestorePlan:
    committed = [m.version for m in report.migrations if m.status == "applied"]
    unknown = [m.version for m in report.migrations if m.status == "unknown"]
    failed = next((m for m in report.migrations if m.status == "failed"), None)
    target = report.restore_target
    steps = _check_and_fix_forward(report, ctx, committed, unknown)
    steps.extend(_restore_paths(report, ctx))
    newest = _newest_backup(report)
    from guard.restore_verify import support_facts

    support = support_facts(report, ctx, _failure_line(report), committed, newest)
    if unknown:
        summary = (
            f"Outcome unknown: the connection was lost while committing {', '.join(unknown)}. "
            f"Committed before it: {', '.join(committed) or 'none'}."
        )
        needed: bool | None = None
    elif failed is None and committed and all(m.status == "applied" for m in report.migrations):
        # Every file committed, yet the run failed (a row gone after COMMIT): its message says why.
        summary = f"The database was changed: {', '.join(committed)} committed; {report.message.rstrip('.')}."
        needed = True
    else:
        summary = (
            f"The database was changed: {', '.join(committed)} committed before "
            f"{failed.version if failed else 'the failure'} failed." if committed
            else f"The database was changed: {report.message}"
        )
        needed = True
    if target is not None:
        summary += f" Restore target: {target.timestamp} (unix {target.unix}" + (
            f", LSN {target.lsn})." if target.lsn else ")."
        )
    return RestorePlan(
        needed=needed, summary=summary, committed_versions=committed, steps=lettered(steps), support=support
    )


def lettered(steps: list[RestoreStep]) -> list[RestoreStep]:
    """The alternatives lettered A, B, ... in the order offered; a check ("Find out ...") or a
    fact ("What ...") is not an option. Letters given before are replaced."""
    letters = iter("ABCDEFGHIJKLMNOP")
    out = []
    for step in steps:
        title = re.sub(r"^Option [A-P] - ", "", step.title)
        if not title.startswith(("Find out", "What ")):
            title = f"Option {next(letters)} - {title}"
        out.append(RestoreStep(title, step.text, step.commands))
    return out


def _restore_paths(report: RunReport, ctx: RestoreContext) -> list[RestoreStep]:
    """Point-in-time recovery (only where WAL is archived), copies, snapshot, backups, lettered."""
    steps: list[RestoreStep] = []
    if report.restore_target is not None:
        steps.extend(_point_in_time_steps(report, ctx, report.restore_target))
    if report.restore_target is not None and not pitr_possible(report):
        steps.append(RestoreStep(
            "What is not possible: point-in-time recovery",
            f"The server's archive_mode was {report.restore_target.archive_mode} at the restore target "
            "and no backup provider reported a PITR window, so no WAL reaches that moment.",
        ))
    steps.extend(_copy_and_snapshot_steps(report))
    steps.extend(_backup_steps(_newest_backup(report)))
    return steps


def pitr_possible(report: RunReport) -> bool:
    """Point-in-time recovery can reach the restore target: the server archives WAL
    (``archive_mode`` on or always, read at the restore point; unknown for older journal rows
    counts as possible) or a backup provider reported a PITR window (pgBackRest, WAL-G, Barman,
    Supabase's PITR add-on). PostgreSQL docs, "Continuous Archiving and Point-in-Time Recovery"."""
    if report.backups is not None and any(p.pitr for p in report.backups.providers):
        return True
    mode = report.restore_target.archive_mode if report.restore_target is not None else None
    return mode is None or mode in ("on", "always")


def _wrapped(report: RunReport, ctx: RestoreContext) -> RestorePlan:
    """A wrapped command's plan: what it ran, what the catalog shows it changed (all of it,
    in dependency order), and the ways back when it changed something."""
    import shlex

    assert report.wrapped is not None
    shown = " ".join(shlex.quote(str(a)) for a in report.wrapped.get("argv") or [])
    code = report.wrapped.get("exit_code")
    changes = report.wrapped.get("changes") or []
    committed = [m.version for m in report.migrations if m.status == "applied"]
    unseen = ("guard compares the catalog (schemas, tables, columns, indexes, constraints, functions, "
              "types, policies, triggers, extensions) and the migration history tables before and "
              "after; row changes (INSERT, UPDATE, DELETE) are not in the catalog")
    if not changes:
        return RestorePlan(
            needed=False,
            summary=f"No restore needed: `{shown}` exited {code} and the database catalog and "
            "migration history are as they were before it ran.",
            committed_versions=[],
            steps=[RestoreStep(
                "Fix the command and run guard again",
                f"`{shown}` exited {code}; its output above says why. {unseen}: if the command "
                "writes rows, check them yourself.",
            )],
        )
    listed = "\n".join(f"- {c['kind']} {c['name']} {c['action']}" for c in changes)
    steps = [
        RestoreStep(
            "What the command changed",
            f"`{shown}` exited {code} after making these {len(changes)} catalog change(s), "
            f"listed so that each object comes after what it depends on ({unseen}):\n{listed}",
        ),
        RestoreStep(
            "Fix forward (no restore)",
            f"If the changes above are wanted, fix what made `{shown}` fail and run it again under "
            "guard; otherwise undo them by hand, in the reverse order of the list, or restore:",
        ),
    ]
    steps = lettered(steps + _restore_paths(report, ctx))
    target = report.restore_target
    summary = f"The database was changed: `{shown}` exited {code} after {len(changes)} catalog change(s)"
    summary += f" (history rows added: {', '.join(committed)})." if committed else "."
    if target is not None:
        summary += f" Restore target: {target.timestamp} (unix {target.unix})."
    support = {"run_id": report.run_id, "project_ref": ctx.project_ref, "command": shown, "exit_code": code,
               "restore_target": target.timestamp if target else None, "committed_versions": committed}
    return RestorePlan(needed=True, summary=summary, committed_versions=committed, steps=steps, support=support)


def _check_and_fix_forward(
    report: RunReport, ctx: RestoreContext, committed: list[str], unknown: list[str]
) -> list[RestoreStep]:
    steps: list[RestoreStep] = []
    if unknown:
        steps.append(
            RestoreStep(
                "Find out whether the last file committed",
                "The connection was lost while committing, so guard cannot tell whether "
                f"{', '.join(unknown)} committed. The history table is written in the same "
                "transaction as the file, so it tells the truth:",
                [_history_query(ctx.history_table, unknown)],
            )
        )
    failed = next((m for m in report.migrations if m.status == "failed"), None)
    if failed is not None and not committed:
        # Nothing committed, yet changed: a statement outside a transaction took effect.
        steps.append(RestoreStep(
            "Fix forward (no restore)",
            f"No file committed, but {failed.version} ran statements outside a transaction that "
            f"took effect before it failed ({_failure_line(report)}). Make the file safe to run "
            "again (IF NOT EXISTS, ...), then run guard again.",
        ))
    elif failed is not None:
        steps.append(
            RestoreStep(
                "Fix forward (no restore)",
                f"Every file runs in its own transaction: the database is consistent at version "
                f"{committed[-1] if committed else '(none)'}, with {', '.join(committed)} committed "
                f"and {failed.version} rolled back. If the committed versions are wanted, fix "
                f"{_failure_line(report)} and run guard again: only the remaining files will apply.",
            )
        )
    return steps


def _point_in_time_steps(report: RunReport, ctx: RestoreContext, target: RestoreTarget) -> list[RestoreStep]:
    steps: list[RestoreStep] = []
    where = f"restore target {target.timestamp} (unix {target.unix}"
    where += f", LSN {target.lsn}" if target.lsn else ""
    where += f", restore point '{target.restore_point}'" if target.restore_point else ""
    where += ")"
    if ctx.project_ref:
        steps.extend(_supabase_steps(report, ctx, where))
    if not pitr_possible(report):
        return steps
    recovery = [
        f"recovery_target_time = '{target.timestamp}'",
        "recovery_target_inclusive = false",
        "recovery_target_action = 'promote'",
    ]
    if target.restore_point:
        recovery.insert(0, f"# or: recovery_target_name = '{target.restore_point}'")
    if target.lsn:
        recovery.insert(0, f"# or: recovery_target_lsn = '{target.lsn}'")
    commands = []
    if ctx.pgbackrest_stanza:
        commands.append(
            f"pgbackrest --stanza={ctx.pgbackrest_stanza} --delta --type=time "
            f'--target="{target.timestamp}" --target-action=promote restore'
        )
    commands.extend(recovery)
    steps.append(
        RestoreStep(
            "PostgreSQL point-in-time recovery (self-hosted, WAL archived)",
            f"Restore the base backup taken before the run into a new data directory, then "
            f"recover to {where} with these settings in postgresql.conf and an empty recovery.signal:",
            commands,
        )
    )
    return steps


def _copy_and_snapshot_steps(report: RunReport) -> list[RestoreStep]:
    steps: list[RestoreStep] = []
    if report.protective_copies:
        steps.append(
            RestoreStep(
                "Put back only what the migration destroyed (protective copies)",
                "guard copied the data the destructive statements removed, in the same transaction, "
                "into a locked-down schema. Without a whole-database restore, run (after reverting "
                "the schema change where needed), in this order (the last destruction first):",
                [
                    f"-- {c['source']} ({c['kind']}, {c['rows']} rows) destroyed at {c['statement']}"
                    + (f"; copy kept until {c['expires_at']} (protect.retention)" if c.get("expires_at") else "")
                    + "\n"
                    + c["restore_sql"]
                    for c in restore_order(report.protective_copies)
                ],
            )
        )
    if report.snapshot:
        snap = report.snapshot
        steps.append(
            RestoreStep(
                "The snapshot guard took just before the run",
                f"{snap['mode']} snapshot {snap['file']} ({snap['bytes']} bytes, sha256 {snap['sha256'][:12]}...). "
                "Restore it into a new database, check it, then switch over:",
                [snap["restore_command"]],
            )
        )
    return steps


def _backup_steps(newest: tuple[str, str] | None) -> list[RestoreStep]:
    steps: list[RestoreStep] = []
    if newest is not None:
        steps.append(RestoreStep(
            "The newest automated backup",
            f"{newest[0]} reports a completed backup at {newest[1]}. Restoring it loses every "
            "write between then and now; prefer point-in-time recovery when it is available.",
        ))
    steps.append(RestoreStep(
        "A logical dump, if you keep one",
        "Restore into a new database first, check it, then switch over:",
        [
            "createdb restored_copy",
            "pg_restore --no-owner --dbname=restored_copy <dump-file>   # custom-format dump",
            "psql --dbname=restored_copy -f <dump.sql>                  # plain SQL dump",
        ],
    ))
    return steps


def _curl(ref: str, path: str, body: str) -> str:
    return (
        f"curl -sS -X POST {SUPABASE_API}/v1/projects/{ref}/database/backups/{path} "
        '-H "Authorization: Bearer $SUPABASE_ACCESS_TOKEN" -H "Content-Type: application/json" '
        f"-d '{body}'"
    )


def _supabase_steps(report: RunReport, ctx: RestoreContext, where: str) -> list[RestoreStep]:
    """Supabase's own paths, most precise first: undo to the run's restore point, PITR to the
    restore target, then the newest daily backup before the run. Never run automatically."""
    target = report.restore_target
    assert target is not None and ctx.project_ref is not None
    ref = ctx.project_ref
    steps: list[RestoreStep] = []
    point = next(
        (s.id for s in report.backup_log if s.status == "recorded" and "restore" in s.sink and s.id),
        None,
    )
    if point:
        steps.append(RestoreStep(
            "Supabase: undo to the restore point guard created before the run",
            f"Restore point '{point}' was created (and confirmed AVAILABLE) just before the first "
            "statement. Undo returns the project to it; writes after it are lost. Management API "
            "(v1-undo, token with database:write):",
            [_curl(ref, "undo", f'{{"name": "{point}"}}')],
        ))
    if _supabase_pitr(report):
        steps.append(RestoreStep(
            "Supabase point-in-time recovery to just before the run",
            f"Restores the whole project to {where}: every write after {target.timestamp}, other "
            "traffic's too, is lost. Dashboard: Project > Database > Backups > Point in Time > "
            f"Start a restore > {target.timestamp} (UTC). Or with the Management API "
            "(v1-restore-pitr, token with database:write; needs the PITR add-on):",
            [_curl(ref, "restore-pitr", f'{{"recovery_time_target_unix": {target.unix}}}')],
        ))
    daily = _newest_daily_backup(report)
    if daily is not None:
        backup_id, taken = daily
        command = [_curl(ref, "restore", f'{{"id": {backup_id}}}')] if backup_id is not None else []
        steps.append(RestoreStep(
            "Supabase: the newest daily backup before the run",
            f"Taken at {taken}: restoring it loses every write between then and now (the run's "
            f"restore target is {target.timestamp}). Dashboard: Project > Database > Backups > "
            "Scheduled backups > Restore." + (" Management API (v1-restore-physical-backup):" if command else ""),
            command,
        ))
    return steps


def _supabase_pitr(report: RunReport) -> bool:
    """Supabase PITR (an add-on) reaches the target: a Supabase provider reported its PITR
    window; with no Supabase provider to ask, as for any server (pitr_possible)."""
    supabase = [p for p in (report.backups.providers if report.backups else []) if p.provider.startswith("supabase")]
    if supabase:
        return any(p.pitr for p in supabase)
    return pitr_possible(report)


def _newest_daily_backup(report: RunReport) -> tuple[int | None, str] | None:
    """(backup id, time) of a Supabase provider's newest completed backup, if one reported it."""
    if report.backups is None:
        return None
    for provider in report.backups.providers:
        if provider.provider.startswith("supabase") and provider.newest_backup:
            backup_id = provider.details.get("backup_id", provider.details.get("id"))
            return (int(backup_id) if isinstance(backup_id, int) else None), provider.newest_backup
    return None


def _history_query(table: str, versions: list[str]) -> str:
    """A query for the operator to paste: the versions are digits from file names."""
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in versions)
    return "SELECT version FROM " + table + " WHERE version IN (" + listed + ");"  # noqa: S608 - printed for the operator, never executed


def _newest_backup(report: RunReport) -> tuple[str, str] | None:
    if report.backups is None:
        return None
    found = [
        (p.provider, p.newest_backup) for p in report.backups.providers if p.newest_backup is not None
    ]
    if not found:
        return None
    newest = max(found, key=lambda item: item[1] or "")
    return newest[0], newest[1] or ""
