"""Step 5a: the local migration files, read and parsed before guard even connects."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import MigrationsConfig
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
    state.display = lambda f: display(f.path, base_dir)
    state.report.migrations_dir = display(migrations.dir, base_dir)


def read_files(state: RunState, migrations: MigrationsConfig, base_dir: Path) -> None:
    """Fill ``state.files`` (none for a wrapped command: that tool reads its own files)."""
    if state.options.command:
        return
    state.files = load_migrations(migrations, base_dir, state.progress)
