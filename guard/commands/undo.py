"""`guard undo`: the database back as it was before a guarded run (guard/undo/)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from guard.config import Config
from guard.errors import GuardError
from guard.structs import asdict

if TYPE_CHECKING:
    from guard.context import Context
    from guard.undo.result import UndoOptions


def undo_command(ctx: Context, config: Config, options: UndoOptions, *, as_json: bool) -> int:
    """Choose the run, print what undo does (or, without --yes, would do); the exit code as
    for `guard run`: 0 undone, 1 failed and rolled back, 3 refused, 4 partly undone or unknown."""
    from guard.commands.common import open_connection
    from guard.db import acquire_lock, release_lock
    from guard.run.report import checked_run_id, new_run_id, shown_run_id
    from guard.undo.result import UndoResult
    from guard.undo.run import undo

    shown = None if options.run_id is None else shown_run_id(options.run_id)
    result = UndoResult(run_id=shown, undo_id=new_run_id())
    try:
        checked_run_id(options.run_id)  # never a run id guard issued: one line, nothing opened
        conn = open_connection(config, "undo")
        try:
            acquire_lock(conn, conn.info.dbname)
            try:
                undo(conn, config, options, result, ctx.progress)
            finally:
                release_lock(conn)
        finally:
            conn.close()
    except GuardError as exc:
        if not as_json:
            raise  # one line on stderr, as every command
        result.exit_code, result.message = exc.exit_code, str(exc)  # --json: JSON on stdout in every outcome
    text = json.dumps(asdict(result), indent=2, default=str) if as_json else "\n".join(result.lines())
    ctx.out(text + "\n")
    return result.exit_code
