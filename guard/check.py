"""`guard check`: what `guard run` would do, for a pull request, without writing to the target.

The target session is read-only (``default_transaction_read_only``); everything guard learns
(pending files, backup verdicts, an unfinished run, a dry run on a shadow database) goes in
the same RunReport as `guard run`. Exit 0: run would proceed. 3: run would be blocked.
1: a pending file does not apply (it does not parse, or the shadow dry run failed).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from guard.config import Config, require_database_url
from guard.errors import Blocked, Interrupted, MigrationFileError
from guard.report.model import MigrationError, MigrationResult, RunReport

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile
    from guard.run.state import RunState

Progress = Callable[[str], None]


@dataclass(frozen=True)
class CheckOptions:
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
    from guard.run import backup_gate, connect, files, lint_gate, lock, outcome, plan, unfinished
    from guard.run.state import RunOptions, RunState

    run_options = RunOptions(include_all=options.include_all or config.migrations.include_all)
    state = RunState(require_database_url(config), report, run_options, environ, progress,
                     lambda text: text, read_only=True)
    files.locate(state, config.migrations, config.base_dir)
    try:
        files.read_files(state, config.migrations, config.base_dir)
    except MigrationFileError as exc:
        _not_applicable(report, exc)
        return report
    with connect.session(state):
        connect.record_server(state)
        with lock.held(state):
            try:
                unfinished.refuse_unfinished(state, outcome.restore_context(config))
                plan.plan(state, config.migrations)
            except Blocked as exc:
                report.set_outcome("blocked", f"guard run would be blocked: {exc}", changed=False)
                return report
            if state.pending:
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


def _not_applicable(report: RunReport, exc: MigrationFileError) -> None:
    """A file that does not even parse cannot apply: the dry-run verdict, exit 1."""
    name = exc.file.rsplit("/", 1)[-1]
    version = name.split("_", 1)[0]
    report.migrations = [
        MigrationResult(version, name.removesuffix(".sql").split("_", 1)[-1], exc.file, "failed", 0,
                        error=MigrationError(exc.message.split(": ", 1)[-1], None, exc.file, exc.line))
    ]
    report.set_outcome("dry_run_failed", f"{exc}", changed=False)


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
    from guard.run.files import display
    from guard.shadow import copy_schema, dry_run, shadow_database

    assert options.shadow is not None
    with shadow_database(options.shadow, target_url=url, progress=progress) as shadow_url:
        if options.shadow_from_target:
            copy_schema(url, shadow_url, progress)
            to_apply = pending
        else:
            to_apply = files
        progress(f"dry run: applying {len(to_apply)} file(s) to the shadow")
        outcome = dry_run(
            shadow_url, to_apply,
            lock_timeout=config.migrations.lock_timeout,
            statement_timeout=config.migrations.statement_timeout,
            display=lambda f: display(f.path, config.base_dir),
            progress=progress,
        )
        verify_failed: list[str] = []
        if outcome.failed is None and not outcome.interrupted:  # shadow: true checks (issue #19)
            from guard.run.verify import on_shadow

            verify_failed = on_shadow(config.verify, shadow_url, config.base_dir, report, progress)
        if outcome.interrupted:
            # A cancelled job, not a migration that does not apply: leave (the shadow is
            # cleaned up on the way out) and let the CLI say which signal it was.
            raise Interrupted(outcome.interrupted)
    pending_versions = {f.version for f in pending}
    shadow_status = {r.version: r for r in outcome.results}
    report.shadow = {
        "mode": "embedded" if options.shadow == "embedded" else "url",
        "from_target": options.shadow_from_target,
        "applied": [r.version for r in outcome.results if r.status == "applied"],
        "failed": outcome.failed.version if outcome.failed else None,
    }
    failed = outcome.failed
    if failed is None:
        for result in report.migrations:
            if result.version in shadow_status:
                result.duration_ms = shadow_status[result.version].duration_ms
        if verify_failed:
            report.set_outcome("dry_run_failed", f"on the shadow, verification failed: {', '.join(verify_failed)}",
                               changed=False)
        return bool(verify_failed)
    # Report the failing file (pending or not: an applied file that fails from scratch is
    # worth knowing too, but the verdict is about what would run).
    listed = {m.version for m in report.migrations}
    if failed.version not in listed:
        report.migrations.insert(0, failed)
    else:
        report.migrations = [failed if m.version == failed.version else m for m in report.migrations]
    err = failed.error
    where = f"{err.file}:{err.line}" if err and err.line else failed.file
    state = f" (SQLSTATE {err.sqlstate})" if err and err.sqlstate else ""
    scope = "" if failed.version in pending_versions else " (an already applied file, replayed from scratch)"
    report.set_outcome(
        "dry_run_failed",
        f"dry run failed at {where}: {err.message if err else '?'}{state}{scope}",
        changed=False,
    )
    return True
