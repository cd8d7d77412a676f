"""The undo command's flow: choose the run, plan its inverse, carry it out or say why not."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.errors import EXIT_CHANGED, EXIT_FAILED_ROLLED_BACK, Blocked
from guard.undo import UndoOptions, UndoResult
from guard.undo.plan import InversePlan

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.journal import JournalRun

Progress = Callable[[str], None]


def local_plan(conn: psycopg.Connection[Any], run: JournalRun, force: bool) -> tuple[InversePlan, dict[str, str]] | None:
    """The local inverse of ``run`` and its fingerprint before; None when the run recorded no
    catalogs (a run of an older guard, or a wrapped tool)."""
    from guard.undo import catalog, copies, plan

    before = catalog.load(conn, run.run_id, "before")
    after = catalog.load(conn, run.run_id, "after")
    if before is None or after is None:
        return None
    now = catalog.read(conn)
    checksums = {oid: catalog.checksum(conn, now.tables[oid]) for oid in after[1].checksums if oid in now.tables}
    inputs = plan.Inputs(before[1], after[1], now, copies.run_copies(conn, run.run_id), force, checksums)
    return plan.build(inputs), before[0]


def undo(conn: psycopg.Connection[Any], config: Config, options: UndoOptions, result: UndoResult,
         progress: Progress) -> UndoResult:
    """Fill ``result``: the chosen run, the path and what it did or would do."""
    from guard.undo import target

    run = target.choose(conn, options.run_id)
    result.run_id = run.run_id
    result.versions = list(run.committed)
    local = None if options.whole_database else local_plan(conn, run, options.force)
    if local is None or not (local[0].actions or local[0].kept):
        from guard.undo import supabase

        if local is not None:
            result.not_invertible = local[0].not_invertible  # said, whichever path follows

        return supabase.whole_database(conn, config, run, options, result, progress)
    inverse, before = local
    from guard.undo.plan import describe

    result.path = "local"
    result.actions = describe(inverse)
    result.kept = inverse.kept
    result.not_invertible = inverse.not_invertible
    if not options.yes:
        result.message = (f"would undo {len(result.versions)} version(s) locally in one transaction "
                          f"({len(inverse.actions)} statement(s)); nothing changed, add --yes")
        return result
    return _carry_out(conn, config, run, inverse, before, result, progress)


def _carry_out(conn: psycopg.Connection[Any], config: Config, run: JournalRun, inverse: InversePlan,
               before: dict[str, str], result: UndoResult, progress: Progress) -> UndoResult:
    import psycopg

    from guard.undo import local, record

    record.start(conn, result, run)
    try:
        result.copies, result.remaining = local.execute(
            conn, inverse, run_id=run.run_id, undo_id=result.undo_id, versions=result.versions,
            before=before, progress=progress)
    except psycopg.Error as exc:
        result.exit_code = EXIT_FAILED_ROLLED_BACK
        result.message = f"the undo failed and was rolled back: {exc.diag.message_primary or exc}"
        record.finish(conn, config, result)
        return result
    result.done = True
    if inverse.partial or result.remaining:
        result.exit_code = EXIT_CHANGED
        result.message = ("partly undone: see what was kept and why; the history keeps "
                          f"{', '.join(result.versions)}")
    else:
        result.message = (f"undone: {len(result.versions)} version(s) removed from the history "
                          f"({', '.join(result.versions)}); the database is as before run {run.run_id}")
    record.finish(conn, config, result)
    return result


__all__ = ["Blocked", "undo"]
