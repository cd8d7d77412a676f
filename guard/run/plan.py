"""Step 5: what is pending against the history table; an edited applied file is refused."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.config import MigrationsConfig
from guard.errors import Blocked
from guard.migrations import history
from guard.migrations.plan import compute_plan
from guard.report.model import MigrationResult, RunReport
from guard.run.state import RunState

if TYPE_CHECKING:
    from collections.abc import Callable

    import psycopg

    from guard.migrations.files import MigrationFile


def plan_pending(
    conn: psycopg.Connection[Any],
    files: list[MigrationFile],
    report: RunReport,
    *,
    include_all: bool,
    display: Callable[[MigrationFile], str],
) -> list[MigrationFile]:
    """The pending files, in order; listed in ``report.migrations`` as "pending". Blocked
    (exit 3) for a set that is not safe to apply (out of order without include_all, an applied
    file edited since)."""
    from guard.migrations.files import fingerprint

    by_version = {f.version: f for f in files}
    applied = history.read_history(conn)
    plan = compute_plan(
        [f.version for f in files],
        applied,
        include_all=include_all,
        filename_of={f.version: f.ref.filename for f in files},
    )
    for entry in applied:
        local = by_version.get(entry.version)
        if local is None or entry.statements is None:
            continue
        if fingerprint(entry.statements) != fingerprint(s.sql for s in local.statements):
            raise Blocked(
                f"{display(local)}: applied as version {entry.version}, "
                "but the file has changed since",
                hint="never edit an applied migration; add a new one instead",
            )
    pending = [by_version[v] for v in plan.pending]
    report.migrations = [
        MigrationResult(f.version, f.name, display(f), "pending", len(f.statements))
        for f in pending
    ]
    if plan.remote_only:
        report.warnings.append(
            f"applied versions with no local file: {', '.join(plan.remote_only)}"
        )
    return pending


def plan(state: RunState, migrations: MigrationsConfig) -> None:
    """Fill ``state.pending`` (see plan_pending)."""
    state.pending = plan_pending(
        state.db, state.files, state.report,
        include_all=state.options.include_all or migrations.include_all, display=state.display,
    )
    if state.pending and not state.read_only:
        state.progress(f"{len(state.pending)} pending: {', '.join(f.ref.filename for f in state.pending)}")
