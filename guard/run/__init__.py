"""The guarded run: the numbered steps of DESIGN.md, in order, once.

Everything before step 8 only reads. A refusal before then leaves the database untouched.
The run produces one RunReport; the CLI renders it and exits with its exit code. Each step
lives in its own module and takes the run state plus the part of the configuration it needs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from guard.config import Config, require_database_url
from guard.errors import GuardError
from guard.report.model import RunReport
from guard.run import (
    apply,
    backup_gate,
    backup_log,
    catalog,
    connect,
    files,
    internal,
    lint_gate,
    lock,
    outcome,
    plan,
    protect,
    restore_point,
    unfinished,
    verify,
    wrap,
)
from guard.run.report import actor, ci_context, new_report, new_run_id
from guard.run.state import Mask, Progress, RunOptions, RunState

__all__ = ["RunOptions", "RunState", "actor", "ci_context", "guarded_run", "new_report", "new_run_id"]


def guarded_run(
    config: Config,
    options: RunOptions,
    report: RunReport,
    *,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    mask: Mask | None = None,
) -> RunReport:
    """Steps 2-13 of the guarded run. Fills ``report``; raises GuardError only for exits 2/3,
    and InternalError (run/internal.py) once an unexpected error's outcome is settled."""
    state = RunState(require_database_url(config), report, options, os.environ if environ is None else environ,
                     progress or (lambda _line: None), mask or (lambda text: text))
    restore = outcome.restore_context(config)
    files.locate(state, config.migrations, config.base_dir)                # 1. configure
    check_options(options)
    files.read_files(state, config.migrations, config.base_dir)            # 5a. files, before connecting
    with connect.session(state):                                          # 2. connect
        connect.record_server(state)                                      #    server facts; no standby
        with lock.held(state), verify.undo_offered(state, config), \
                outcome.journal_closed(state), internal.settled(state, restore):  # 3. lock; 12b. undo offered
            files.refuse_unheld_text(state, config.reason)                #    text the database holds
            unfinished.refuse_unfinished(state, restore)                  # 4. journal
            if options.command:
                wrap.wrapped_run(state, config, restore)                  # 7-9, 13 around another tool
                return report
            plan.plan(state, config.migrations)                           # 5. plan
            files.refuse_unheld_names(state)                              #    names it holds
            if outcome.nothing_pending(state):
                return report
            lint_gate.lint(state, config.lint, config.protect, config.migrations.transaction)  # 6. lint
            verify.preflight(state, config.verify, config.base_dir)       #    checks usable (12)
            backup_gate.confirm_backup(state, config)                     # 7. backups
            lint_gate.destructive(state, config.lint, config.protect, config.backups.require_pitr)  # 6b. policy
            restore_point.mark(state)                                     # 8. restore point
            backup_log.log_backup(state, config, default_reason(state))   # 9. log the backup
            protect.take_snapshot_if_due(state, config.snapshot)          # 10. protect (snapshot)
            before = catalog.record_before(state)                         #    catalog, for guard undo
            checks = verify.in_transaction(state, config.verify, config.migrations.transaction)
            apply.apply(state, config.migrations, config.protect, config.lint.destructive,
                        checks)                                           # 10-11. copies, apply
            catalog.record_after(state, before)                           #    catalog after, for guard undo
            outcome.settle(state, restore)                                # 13. outcome, restore plan
            verify.after_commit(state, config.verify, config.migrations.transaction,
                                config.base_dir, restore)                 # 12. verify after COMMIT
    return report


def check_options(options: RunOptions) -> None:
    """Flags that need each other (exit 2), and a wrapped command that exists."""
    if options.allow_stale_backup and not options.reason:
        raise GuardError("--allow-stale-backup needs --reason explaining why")
    if options.acknowledge and not options.reason:
        raise GuardError("--acknowledge needs --reason saying what was checked")
    if options.acknowledge is not None:
        from guard.run.report import checked_run_id

        checked_run_id(options.acknowledge, "--acknowledge")
    wrap.check_executable(options.command)


def default_reason(state: RunState) -> str:
    """``Before migration <version>_<name>, ...`` for the pending files."""
    return "Before migration " + ", ".join(f.ref.filename.removesuffix(".sql") for f in state.pending)
