"""`guard run` and `guard check`: the guarded run, its read-only twin, and the report they write."""

from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import Config
from guard.errors import EXIT_BLOCKED, GuardError, UsageError

if TYPE_CHECKING:
    from guard.context import Context
    from guard.report.model import RunReport


def run_command(
    ctx: Context,
    config: Config,
    *,
    reason: str | None,
    allow_stale_backup: bool,
    summary_path: Path | None,
    as_json: bool,
    acknowledge: str | None = None,
    command: tuple[str, ...] = (),
) -> int:
    """`guard run`: the guarded run; always writes the report, whatever the outcome."""
    from guard.run import RunOptions, guarded_run, new_report

    try:
        report = new_report("run", config, ctx.environ)
    except GuardError as exc:  # GUARD_RUN_ID that cannot name a run
        ctx.fail(exc)
    options = RunOptions(reason=reason, allow_stale_backup=allow_stale_backup, acknowledge=acknowledge,
                         command=tuple(command))
    try:
        guarded_run(config, options, report, environ=ctx.environ, progress=ctx.progress, mask=ctx.mask)
    except GuardError as exc:
        status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
        report.set_outcome(status, str(exc), changed=False)
        ctx.error(str(exc))
    except KeyboardInterrupt:
        _interrupted(report)
    except Exception as exc:  # noqa: BLE001 - report what is known, never lose the report
        from guard.run.internal import InternalError, one_line

        if ctx.verbose:
            ctx.progress(traceback.format_exc())
        if not isinstance(exc, InternalError):  # before the session: nothing was changed
            _unexpected(report, one_line(exc))
        ctx.error(str(exc) + ("" if ctx.verbose else " (-v shows the traceback)"))
    _finish_safely(ctx, config, report, summary_path=summary_path, as_json=as_json)
    return report.exit_code


def _finish_safely(
    ctx: Context, config: Config, report: RunReport, *, summary_path: Path | None, as_json: bool
) -> None:
    """finish(); an error while reporting is one line, and the run's exit code stands."""
    try:
        finish(ctx, config, report, summary_path=summary_path, as_json=as_json)
    except Exception as exc:  # noqa: BLE001 - the outcome is settled; only its report failed
        from guard.run.internal import one_line

        if ctx.verbose:
            ctx.progress(traceback.format_exc())
        ctx.error(f"while writing the report: {one_line(exc)}")


def check_command(
    ctx: Context,
    config: Config,
    *,
    shadow: str | None,
    shadow_from_target: bool,
    include_all: bool,
    summary_path: Path | None,
    as_json: bool,
) -> int:
    """`guard check`: read-only verdict on what `guard run` would do, plus an optional dry run."""
    from guard.check import CheckOptions, guarded_check
    from guard.run import new_report

    try:
        report = new_report("check", config, ctx.environ)
    except GuardError as exc:  # GUARD_RUN_ID that cannot name a run
        ctx.fail(exc)
    options = CheckOptions(shadow=shadow, shadow_from_target=shadow_from_target, include_all=include_all)
    if shadow_from_target and not shadow:
        ctx.fail(UsageError("--shadow-from-target needs --shadow embedded|URL"))
    try:
        guarded_check(config, options, report, environ=ctx.environ, progress=ctx.progress)
    except GuardError as exc:
        status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
        report.set_outcome(status, str(exc), changed=False)
        ctx.error(str(exc))
    except Exception as exc:  # noqa: BLE001 - a check never changes the target: report and stop
        if ctx.verbose:
            ctx.progress(traceback.format_exc())
        report.set_outcome("blocked", f"internal error: {exc.__class__.__name__}: {exc}", changed=False)
    finish(ctx, config, report, summary_path=summary_path, as_json=as_json)
    return report.exit_code


def _interrupted(report: RunReport) -> None:
    from guard.restore import RestoreContext, build_plan

    if report.restore_target is None:
        # Nothing had been changed yet: the run stopped while it was only reading.
        report.set_outcome("blocked", "interrupted", changed=False)
    else:
        report.set_outcome("outcome_unknown", "interrupted", changed=None)
        report.restore_plan = build_plan(report, RestoreContext())


def _unexpected(report: RunReport, message: str) -> None:
    """An error outside the steps run/internal.py watches: reading files or connecting
    (nothing was changed), or closing the session after the outcome was settled (it stands)."""
    from guard.restore import RestoreContext, build_plan

    if report.restore_target is None:
        report.set_outcome("blocked", f"{message} (nothing was changed)", changed=False)
    elif report.status != "usage_error":  # the run had settled its outcome: it stands
        report.warnings.append(message)
    else:
        report.set_outcome("outcome_unknown", message, changed=None)
        report.restore_plan = build_plan(report, RestoreContext())


def finish(
    ctx: Context, config: Config, report: RunReport, *, summary_path: Path | None, as_json: bool
) -> None:
    """Stamp the end, write the JSON report (and Markdown summary), print the result."""
    from guard.report import github
    from guard.report import json as json_report
    from guard.report.text import render_markdown, render_text

    now = dt.datetime.now(dt.timezone.utc)
    report.finished_at = now.isoformat().replace("+00:00", "Z")
    started = dt.datetime.fromisoformat(report.started_at.replace("Z", "+00:00"))
    report.duration_ms = round((now - started).total_seconds() * 1000, 1)
    try:
        json_report.write(report, config.report, ctx.mask)
    except OSError as exc:
        ctx.progress(f"cannot write report {config.report}: {exc.strerror}")
    publish = github.active(ctx.environ)
    # Rendered only for a reader: the summary file or GitHub's step summary.
    markdown = render_markdown(report) if summary_path is not None or publish else ""
    if summary_path is not None:
        try:
            summary_path.write_text(ctx.mask(markdown), encoding="utf-8")
        except OSError as exc:
            ctx.progress(f"cannot write summary {summary_path}: {exc.strerror}")
    if as_json:
        ctx.out(json_report.render(report, ctx.mask))
    else:
        ctx.out(render_text(report))
    if publish:
        try:
            github.publish(report, environ=ctx.environ, report_path=config.report,
                           markdown=ctx.mask(markdown), echo=ctx.workflow)
        except OSError as exc:
            ctx.progress(f"cannot write GitHub step files: {exc.strerror}")
