"""Step 5a: the local migration files, read and parsed before guard even connects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import MigrationsConfig
from guard.errors import GuardError, MigrationFileError, UsageError
from guard.migrations.files import under
from guard.run.state import Progress, RunState

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile


def display(path: Path, base_dir: Path) -> str:
    """``path`` relative to the project (as Path.relative_to, without resolving)."""
    given = os.fspath(path)
    relative = under(given, os.fspath(base_dir))
    return given if relative is None else relative


def load_migrations(migrations: MigrationsConfig, base_dir: Path, progress: Progress) -> list[MigrationFile]:
    """Discover and parse every local file (parse errors stop here with file:line:
    MigrationFileError)."""
    from guard.migrations.files import discover, load

    refs = discover(migrations.dir, ignore=migrations.ignore)
    return [load(ref, display_root=base_dir) for ref in refs]


def locate(state: RunState, migrations: MigrationsConfig, base_dir: Path) -> None:
    """How files are named in the report (relative to the project), and where they live."""
    names: dict[Path, str] = {}  # each file's name is asked for several times (report, lint, journal)

    def named(file: MigrationFile) -> str:
        name = names.get(file.path)
        if name is None:
            name = names[file.path] = display(file.path, base_dir)
        return name

    state.display = named
    state.report.migrations_dir = display(migrations.dir, base_dir)


def read_files(state: RunState, migrations: MigrationsConfig, base_dir: Path) -> None:
    """Fill ``state.files`` (none for a wrapped command: that tool reads its own files)."""
    if state.options.command:
        return
    state.files = load_migrations(migrations, base_dir, state.progress)


# Where each CI fact guard records comes from (guard.run.report.ci_context), for a message.
CI_SOURCES = {"commit": "GITHUB_SHA or CI_COMMIT_SHA", "actor": "GITHUB_ACTOR or GITLAB_USER_LOGIN",
              "ref": "GITHUB_REF or CI_COMMIT_REF_NAME", "repository": "GITHUB_REPOSITORY or CI_PROJECT_PATH",
              "run_url": "GITHUB_SERVER_URL/GITHUB_REPOSITORY/GITHUB_RUN_ID or CI_JOB_URL"}


def _refuse(state: RunState, problems: dict[str, str], error: type[GuardError], hint: str) -> None:
    """Raise the first problem as ``error`` (exit code), or, read only, note each as what would block."""
    if not problems:
        return
    from guard.db_encoding import printable

    lines = [f"{printable(culprit)}: {why}; nothing was changed" for culprit, why in problems.items()]
    if state.read_only:
        state.blocked.extend(lines)
        return
    culprit, why = next(iter(problems.items()))
    if error is MigrationFileError:
        raise MigrationFileError(f"{why}; nothing was changed", file=printable(culprit), hint=hint)
    raise error(lines[0], hint=hint)


def refuse_unheld_text(state: RunState, config_reason: str | None) -> None:
    """Before the journal is read or written: the reason (``--reason``, else ``reason``), the
    actor and the CI facts guard records must fit the database's encoding (guard.db_encoding);
    UsageError (exit 2) naming the flag or variable and the encoding, or, read only, a note."""
    from guard.db_encoding import unheld
    from guard.run.report import actor

    texts = {f"{CI_SOURCES.get(key, key)} ({key})": value for key, value in state.report.ci.items()}
    if not state.report.ci.get("actor"):
        texts["the actor (user@host, as no CI actor is set)"] = actor(state.report.ci)
    if config_reason:
        texts["reason (guard.yml or GUARD_REASON)"] = config_reason
    if state.options.reason:
        texts["--reason"] = state.options.reason
    _refuse(state, unheld(state.db, texts), UsageError, "use text the database's encoding holds")


def refuse_unheld_names(state: RunState) -> None:
    """After the plan: each pending file's name and path, which the history and the journal
    record, must fit the database's encoding; MigrationFileError (exit 3) naming the first file
    that does not, or, read only, a note for each."""
    from guard.db_encoding import unheld

    texts = {state.display(f): f"{state.display(f)} {f.ref.filename}" for f in state.pending}
    _refuse(state, unheld(state.db, texts), MigrationFileError,
            "rename it, or its directory, with characters the database's encoding holds; ASCII fits every encoding")
