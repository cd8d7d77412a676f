"""Whole-database undo on Supabase: the restore point the run created (``v1-undo``), else
point-in-time recovery to the run's restore target (``v1-restore-pitr-backup`` with
``recovery_time_target_unix``), then ``v1-get-project`` until the project is healthy again.
Both need ``--confirm <project-ref>`` and say how much time of writes is lost. Contracts:
shared/reference/supabase-management-api.openapi.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.errors import EXIT_BLOCKED, EXIT_CHANGED
from guard.undo.result import UndoOptions, UndoResult

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.journal import JournalRun

HEALTHY = "ACTIVE_HEALTHY"
FAILED = frozenset({"RESTORE_FAILED", "INIT_FAILED", "REMOVED"})
SERVER_NOW = "SELECT extract(epoch FROM clock_timestamp())"


def _supabase(config: Config) -> dict[str, Any] | None:
    """project_ref, access_token and api_url from the first Supabase plug-in."""
    from guard.backups.supabase import same_project

    for plugin in (*config.backups.providers, *config.log.sinks):
        if plugin.type in ("supabase", "supabase-restore-point") and plugin.options.get("access_token"):
            same_project(plugin, config.database_url)  # never restore another project than the database's
            opts = plugin.options
            return {"ref": opts["project_ref"], "token": opts["access_token"],
                    "api": str(opts.get("api_url") or "https://api.supabase.com").rstrip("/")}
    return None


def _restore_point(run: JournalRun) -> str | None:
    for sink in (run.report or {}).get("backup_log") or ():
        if str(sink.get("sink", sink.get("label", ""))).startswith("supabase-restore-point") and sink.get("status") == "recorded":
            return str(sink.get("id"))
    return None


def _has_pitr(run: JournalRun) -> bool:
    providers = ((run.report or {}).get("backups") or {}).get("providers") or ()
    return any(p.get("pitr") for p in providers)


def manual_plan(run: JournalRun) -> list[str]:
    """What an operator can still do by hand: the snapshot, the daily backup."""
    steps = []
    snapshot = (run.report or {}).get("snapshot")
    if snapshot and snapshot.get("restore_command"):
        steps.append("restore the snapshot taken before the run into a new, empty scratch database (createdb one; "
                     "TARGET_DATABASE_URL names it, never the live database, and no pg_restore --clean onto it): "
                     f"{snapshot['restore_command']}; check it, then copy back what you need or switch over")
    steps.append("restore the newest daily backup from before the run (Supabase dashboard: Database > Backups); "
                 "it replaces the whole database: every write since that backup is lost")
    return steps


def whole_database(conn: psycopg.Connection[Any], config: Config, run: JournalRun, options: UndoOptions,
                   result: UndoResult, progress: Callable[[str], None]) -> UndoResult:
    """Path 2 or 3, or a refusal (exit 3) with the manual plan."""
    api = _supabase(config)
    target = run.restore_target or {}
    point = _restore_point(run)
    if api is None or target.get("unix") is None or not (point or _has_pitr(run)):
        why = ("nothing of this run can be inverted locally" if not options.whole_database else "--whole-database")
        return result.refuse(f"{why}, and no Supabase restore point or PITR is available for run {run.run_id}",
                      manual_plan(run))
    unix = int(target["unix"])  # whole seconds, rounded down: recovery_time_target_unix is an integer
    row = conn.execute(SERVER_NOW).fetchone()
    lost = max(0, int(float(row[0]) if row else time.time()) - unix)
    ref = api["ref"]
    if point:
        result.path = "restore-point"
        call = f"POST /v1/projects/{ref}/database/backups/undo {{\"name\": \"{point}\"}}"
        body: dict[str, Any] = {"name": point}
        path = "undo"
    else:
        result.path = "pitr"
        call = f"POST /v1/projects/{ref}/database/backups/restore-pitr {{\"recovery_time_target_unix\": {unix}}}"
        body = {"recovery_time_target_unix": unix}
        path = "restore-pitr"
    result.api_calls = [call]
    warning = (f"the whole database goes back to {target.get('timestamp')} ({unix}): every write of the last "
               f"{_duration(lost)} is lost")
    if options.confirm != ref:
        result.message = warning + f"; needs --confirm {ref}"
        if options.yes:
            result.exit_code = EXIT_BLOCKED
            result.path = "refused"
        return result
    if not options.yes:
        result.message = warning + "; nothing changed, add --yes"
        return result
    _call({**api, "poll": options.poll, "wait": options.wait}, path, body, result, warning, progress)
    if result.done:
        _record(config, run, result)
    return result


def _record(config: Config, run: JournalRun, result: UndoResult) -> None:
    """Undo's journal row and backup log entry, on a new connection: the restore replaced the
    database (and the old session) with its state at the restore target."""
    import psycopg

    from guard.config import require_database_url
    from guard.db import connect
    from guard.errors import GuardError
    from guard.undo import local, record

    try:
        conn = connect(require_database_url(config), application_name=f"guard undo {result.undo_id}")
    except GuardError as exc:
        result.message += f" (could not record the undo in the journal: {exc})"
        return
    try:
        record.start(conn, result, run)
        local.ensure_undone(conn)
        conn.execute(local.MARK_UNDONE_ONCE, (run.run_id, result.undo_id, result.path, False))
        record.finish(conn, config, result)
    except psycopg.Error as exc:
        result.message += f" (could not record the undo in the journal: {exc.diag.message_primary or exc})"
    finally:
        conn.close()


def _call(api: dict[str, Any], path: str, body: dict[str, Any], result: UndoResult, warning: str,
          progress: Callable[[str], None]) -> UndoResult:
    from guard.backups.http_client import HttpError, request

    base = f"{api['api']}/v1/projects/{api['ref']}"
    try:
        request("POST", f"{base}/database/backups/{path}", service="Supabase API", token=api["token"], json_body=body)
    except HttpError as exc:
        result.exit_code = EXIT_BLOCKED
        result.path = "refused"
        result.message = f"Supabase refused the {path} request: {exc}"
        return result
    result.done = True
    deadline = time.monotonic() + api["wait"]
    status = "RESTORING"
    while time.monotonic() < deadline:
        time.sleep(api["poll"])
        try:
            answer = request("GET", base, service="Supabase API", token=api["token"])
        except HttpError as exc:
            progress(f"project status unknown: {exc}")
            continue
        status = str((answer or {}).get("status")) if isinstance(answer, dict) else "UNKNOWN"
        progress(f"Supabase project {api['ref']}: {status}")
        if status == HEALTHY or status in FAILED:
            break
    if status == HEALTHY:
        result.message = f"undone by Supabase ({result.path}): {warning}"
        return result
    result.exit_code = EXIT_CHANGED
    result.message = (f"Supabase accepted the {path} request; the project is {status}. Follow it in the dashboard "
                      f"or with GET /v1/projects/{api['ref']} until ACTIVE_HEALTHY ({warning})")
    return result


def _duration(seconds: int) -> str:
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return (f"{hours}h " if hours else "") + (f"{minutes}min " if minutes or hours else "") + f"{secs}s"
