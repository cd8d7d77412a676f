"""The undo command's flow: choose the run, plan its inverse, carry it out or say why not."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.errors import EXIT_CHANGED, EXIT_FAILED_ROLLED_BACK, Blocked
from guard.undo.catalog import BrokenRecord
from guard.undo.plan import InversePlan
from guard.undo.result import UndoOptions, UndoResult

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config
    from guard.journal import JournalRun

Progress = Callable[[str], None]
ROW_HASHES_GONE = "SELECT NOT EXISTS (SELECT 1 FROM guard.run_rows WHERE run_id = %s)"


def local_plan(conn: psycopg.Connection[Any], run: JournalRun, force: bool) -> tuple[InversePlan, dict[str, str]] | None:
    """The local inverse of ``run`` and its fingerprint before; None when the run recorded no
    catalogs (a run of an older guard, or a wrapped tool)."""
    from guard.undo import catalog, copies, plan

    before = catalog.load(conn, run.run_id, "before")
    after = catalog.load(conn, run.run_id, "after")
    if before is None or after is None:
        return None
    now = catalog.read(conn)
    catalog.align(now, after[1])
    checksums = {oid: catalog.checksum(conn, now.tables[oid]) for oid in after[1].checksums if oid in now.tables}
    pruned = any(after[1].parts.values()) and conn.execute(ROW_HASHES_GONE, (run.run_id,)).fetchone() == (True,)
    inputs = plan.Inputs(before[1], after[1], now, copies.run_copies(conn, run.run_id), force, checksums,
                         conn=conn, run_id=run.run_id, fingerprints=(before[0], after[0]), rows_pruned=pruned)
    inverse = plan.build(inputs)
    wrapped = (run.report or {}).get("wrapped")
    if wrapped:
        inverse.not_invertible.append(
            f"the rows {wrapped.get('argv', ['the wrapped command'])[0]} wrote, updated or deleted: guard ran it as "
            "another tool and saw only the catalog before and after, so its data changes are not undone")
    return inverse, before[0]


def undo(conn: psycopg.Connection[Any], config: Config, options: UndoOptions, result: UndoResult,
         progress: Progress) -> UndoResult:
    """Fill ``result``: the chosen run, the path and what it did or would do."""
    from guard.undo import target

    run = target.choose(conn, options.run_id)
    result.run_id = run.run_id
    result.versions = list(run.pending if run.command == "undo" else run.committed)
    import psycopg

    try:
        local = None if options.whole_database else local_plan(conn, run, options.force)
    except (psycopg.Error, BrokenRecord) as exc:  # e.g. guard's own records tampered with
        result.exit_code = EXIT_FAILED_ROLLED_BACK
        reason = str(exc) if isinstance(exc, BrokenRecord) else failure(exc)
        result.message = f"could not plan the undo, nothing changed: {reason}"
        return result
    if local is None or not (local[0].actions or local[0].kept):
        from guard.undo import supabase

        if local is not None:
            result.not_invertible = local[0].not_invertible  # said, whichever path follows
        else:
            result.not_invertible = [f"{change}: by the wrapped command; guard recorded no catalog to invert it"
                                     for change in target.wrapped_changes(run)]

        return supabase.whole_database(conn, config, run, options, result, progress)
    inverse, before = local
    from guard.undo.plan import describe
    from guard.undo.supabase import manual_plan

    if inverse.tampered or inverse.blocked:
        result.refuse(inverse.refusal, manual_plan(run))
        result.not_invertible = inverse.tampered + inverse.blocked
        return result

    result.path = "local"
    result.actions = describe(inverse)
    result.kept = inverse.kept
    result.not_invertible = inverse.not_invertible
    if not options.yes:
        result.message = (f"would undo {len(result.versions)} version(s) locally in one transaction "
                          f"({len(inverse.actions)} statement(s)); nothing changed, add --yes")
        return result
    return _carry_out(conn, config, run, options.force, before, result, progress)


def _carry_out(conn: psycopg.Connection[Any], config: Config, run: JournalRun, force: bool,
               before: dict[str, str], result: UndoResult, progress: Progress) -> UndoResult:
    import psycopg

    from guard.undo import local, record
    from guard.undo.plan import describe
    from guard.undo.supabase import manual_plan

    def build() -> InversePlan:
        found = local_plan(conn, run, force)
        return found[0] if found else InversePlan()

    record.start(conn, result, run)
    try:
        undoing = str((run.report or {}).get("run_id")) if run.command == "undo" else None
        inverse, result.copies, result.remaining = local.execute(
            conn, build, run_id=run.run_id, undo_id=result.undo_id, versions=result.versions,
            before=before, force=force, progress=progress, undoing=undoing)
    except local.Tampered as exc:
        result.refuse(str(exc.args[1]), manual_plan(run))
        result.not_invertible = str(exc.args[0]).split("; ")
        record.finish(conn, config, result)
        return result
    except psycopg.Error as exc:
        result.exit_code = EXIT_FAILED_ROLLED_BACK
        result.message = f"the undo failed and was rolled back, nothing changed: {failure(exc)}"
        record.finish(conn, config, result)
        return result
    result.done = True
    result.actions, result.kept, result.not_invertible = describe(inverse), inverse.kept, inverse.not_invertible
    if (inverse.partial or result.remaining) and inverse.nothing_done:
        result.exit_code, result.done = EXIT_CHANGED, False  # nothing changed: no undo to undo later
        result.message = (f"nothing undone: see what was kept and why; the run stays as it was, the history keeps "
                          f"{', '.join(result.versions)} (guard undo {run.run_id} --yes --force overwrites what was kept)")
    elif inverse.partial or result.remaining:
        result.exit_code = EXIT_CHANGED
        result.message = ("partly undone: see what was kept and why; the history keeps "
                          f"{', '.join(result.versions)}")
    elif run.command == "undo":
        result.message = (f"undone: the database is as before undo {run.run_id}; the history lists "
                          f"{', '.join(result.versions)} again")
    else:
        result.message = (f"undone: {len(result.versions)} version(s) removed from the history "
                          f"({', '.join(result.versions)}); the database is as before run {run.run_id}")
    record.finish(conn, config, result)
    return result


def failure(exc: Any) -> str:
    """One line from a PostgreSQL error: its message and the table, column and constraint."""
    diag = exc.diag
    where = [f"table {diag.schema_name}.{diag.table_name}" if diag.table_name else "",
             f"column {diag.column_name}" if diag.column_name else "",
             f"constraint {diag.constraint_name}" if diag.constraint_name else ""]
    named = ", ".join(w for w in where if w)
    text = (diag.message_primary or str(exc)).splitlines()[0]
    return text + (f" ({named})" if named else "") + (f" [{exc.sqlstate}]" if exc.sqlstate else "")


__all__ = ["Blocked", "failure", "undo"]
