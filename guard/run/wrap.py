"""`guard run -- COMMAND`: steps 7-9 and 13 around another migration tool; the catalog says
what it changed."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from guard import journal
from guard.config import Config
from guard.errors import GuardError
from guard.report.model import MigrationResult, RunReport
from guard.restore import RestoreContext, build_plan
from guard.run.backup_gate import confirm_backup
from guard.run.backup_log import log_backup
from guard.run.catalog import record_after, record_before
from guard.run.outcome import note_journal_created
from guard.run.restore_point import mark
from guard.run.state import RunState


def check_executable(command: tuple[str, ...]) -> None:
    """GuardError (exit 2) when ``command[0]`` is not on PATH (it runs without a shell)."""
    import shutil

    if command and shutil.which(command[0]) is None:
        raise GuardError(
            f"command not found: {command[0]}", hint="guard runs it without a shell; give a path or fix PATH"
        )


def wrapped_run(state: RunState, config: Config, restore: RestoreContext) -> None:
    """Confirm a backup, mark the restore point, log the backup, run the command, then report
    the catalog's changes (and the history rows it added) as the run's outcome."""
    from guard import fingerprint

    conn, report = state.db, state.report
    argv = list(state.options.command)
    shown = " ".join(argv[:4]) + (" ..." if len(argv) > 4 else "")
    confirm_backup(state, config)
    mark(state)
    log_backup(state, config, f"Before {shown}")
    before = fingerprint.take(conn)
    catalog_before = record_before(state)  # for guard undo: the catalog it can invert
    state.progress(f"running {shown}")
    code = run_wrapped(argv, state.url, state.environ, state.mask)
    after = fingerprint.take(conn)
    record_after(state, catalog_before)
    changes = sorted(fingerprint.diff(before, after), key=dependency_rank)
    versions = fingerprint.applied_versions(before, after)
    for version in versions:
        journal.mark_committed(conn, report.run_id, version)
    report.wrapped = {
        "argv": argv,
        "exit_code": code,
        "changes": [{"action": c.action, "kind": c.kind, "name": c.name} for c in changes],
    }
    report.migrations = [MigrationResult(v, "", argv[0], "applied", 0) for v in versions]
    listed = "; ".join(c.describe() for c in changes[:5]) + (
        f"; and {len(changes) - 5} more (all in the restore plan and the report's wrapped.changes)"
        if len(changes) > 5 else ""
    )
    _set_outcome(report, argv[0], code, bool(changes), listed, len(changes))
    report.restore_plan = build_plan(report, restore)
    if not changes:
        note_journal_created(state)


# Kinds in the order objects depend on each other: a schema before its tables, a table before
# its columns, constraints and indexes, a function before the trigger and policy that use it.
_KIND_ORDER = ("extension", "schema", "type", "sequence", "table", "foreign table", "column",
               "constraint", "index", "view", "materialized view", "function", "trigger", "policy",
               "history")


def dependency_rank(change: Any) -> tuple[int, int, str]:
    """Sort key for a catalog change: additions in dependency order (schema, table, column,
    ...), removals after them in reverse (a column before its table), then by name."""
    rank = _KIND_ORDER.index(change.kind) if change.kind in _KIND_ORDER else len(_KIND_ORDER)
    if change.action == "removed":
        return (1, len(_KIND_ORDER) - rank, change.name)
    return (0, rank, change.name)


def _set_outcome(report: RunReport, tool: str, code: int, changed: bool, listed: str, count: int) -> None:
    if code == 0 and not changed:
        report.set_outcome(
            "nothing_pending", f"{tool} exited 0; the database catalog and migration history are unchanged.",
            changed=False,
        )
    elif code == 0:
        report.set_outcome("applied", f"{tool} exited 0; {count} change(s): {listed}", changed=True)
    elif not changed:
        report.set_outcome(
            "failed_rolled_back",
            f"{tool} exited {code}; the database catalog and migration history are unchanged.",
            changed=False,
        )
    else:
        report.set_outcome(
            "failed_partially_applied", f"{tool} exited {code} after changing the database: {listed}", changed=True
        )


def run_wrapped(argv: list[str], url: str, environ: Mapping[str, str], mask: Callable[[str], str]) -> int:
    """Run argv without a shell, DATABASE_URL in its environment, its output streamed (masked)
    to stderr; SIGINT/SIGTERM are passed on to it. Returns its exit status."""
    import signal
    import subprocess
    import sys
    import threading

    from guard.report.sanitize import lines as safe_lines

    env = {**environ, "DATABASE_URL": url}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, errors="replace", bufsize=1,
    )
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def forward(signum: int, _frame: object) -> None:
            proc.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(safe_lines(mask(line)))  # a wrapped tool's output is not trusted
            sys.stderr.flush()
        return proc.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
