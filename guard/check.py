"""`guard check`: what `guard run` would do, for a pull request, without writing to the target.

The target session is read-only (``default_transaction_read_only``); everything guard learns
(pending files, backup verdicts, an unfinished run, a dry run on a shadow database) goes in
the same RunReport as `guard run`. Exit 0: run would proceed. 3: run would be blocked.
1: a pending file does not apply (it does not parse, or the shadow dry run failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from msgspec import Struct

from guard.config import Config, require_database_url
from guard.errors import Blocked, MigrationFileError
from guard.report.model import RunReport

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile
    from guard.run.state import RunState

Progress = Callable[[str], None]


class CheckOptions(Struct, frozen=True):
    shadow: str | None = None  # "embedded" or a scratch database URL
    shadow_from_target: bool = False
    include_all: bool = False


def guarded_check(
    config: Config,
    options: CheckOptions,
    report: RunReport,
    *,
    environ: Mapping[str, str],
    progress: Progress,
) -> RunReport:
    """Fill ``report`` with the check's findings and its outcome: the guarded run's own steps
    2-7 in read-only mode (``RunState.read_only``), then an optional dry run on a shadow."""
    from guard.run import (
        backup_gate,
        connect,
        files,
        lint_gate,
        lock,
        outcome,
        plan,
        unfinished,
        verify,
    )
    from guard.run.state import RunOptions, RunState
    from guard.shadow_check import not_applicable

    if not config.database_url and options.shadow:  # a fork's pull request: no target
        from guard.shadow_check import check_without_target
        return check_without_target(config, options, report, progress=progress)
    run_options = RunOptions(include_all=options.include_all or config.migrations.include_all)
    state = RunState(require_database_url(config), report, run_options, environ, progress,
                     lambda text: text, read_only=True)
    files.locate(state, config.migrations, config.base_dir)
    try:
        files.read_files(state, config.migrations, config.base_dir)
    except MigrationFileError as exc:
        not_applicable(report, exc)
        return report
    with connect.session(state):
        connect.record_server(state)
        with lock.held(state):
            try:
                files.refuse_unheld_text(state, config.reason)
                unfinished.refuse_unfinished(state, outcome.restore_context(config))
                plan.plan(state, config.migrations)
                files.refuse_unheld_names(state)
            except Blocked as exc:
                report.set_outcome("blocked", f"guard run would be blocked: {exc}", changed=False)
                return report
            if state.pending:
                try:  # what guard run refuses before any change, check refuses too
                    verify.preflight(state, config.verify, config.base_dir)
                except MigrationFileError as exc:
                    not_applicable(report, exc)
                    return report
                lint_gate.lint(state, config.lint, config.protect, config.migrations.transaction)
                backup_gate.confirm_backup(state, config)
                lint_gate.would_block(state, config.lint, config.protect, config.backups.require_pitr)
    return _verdict(state, config, options)


def _verdict(state: RunState, config: Config, options: CheckOptions) -> RunReport:
    """The dry run, when asked for, then what guard run would do."""
    report, pending = state.report, state.pending
    if options.shadow and (pending or not options.shadow_from_target):
        failed = _shadow(config, options, report, state.files, pending, state.url, state.progress)
        if failed:
            return report
    if state.blocked:
        report.set_outcome("blocked", "guard run would be blocked: " + "; ".join(state.blocked), changed=False)
    elif pending:
        report.set_outcome("ready", f"guard run would apply {len(pending)} migration(s).", changed=False)
    else:
        report.set_outcome("nothing_pending", "Nothing pending: the database is up to date.", changed=False)
    return report


def _shadow(
    config: Config,
    options: CheckOptions,
    report: RunReport,
    files: list[MigrationFile],
    pending: list[MigrationFile],
    url: str,
    progress: Progress,
) -> bool:
    """Run the dry run; True when it failed (the report then says where)."""
    from guard.shadow_check import run_shadow

    return run_shadow(config, options, report, files, pending, url, progress)
