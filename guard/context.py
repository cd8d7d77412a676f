"""What every command shares: output, progress lines and error lines, all masked.

Commands (guard/commands.py, guard/demo.py) take a Context; they never import the CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

import click

from guard.errors import GuardError

# Environment variables whose values are secrets even when guard.yml does not mention them.
_SECRET_ENV_HINTS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "DATABASE_URL")


def _env_masker(environ: Mapping[str, str]) -> Any:
    """A Masker for the secrets in ``environ``: URL passwords and values of secret-looking names."""
    from guard.db import url_password
    from guard.report.mask import Masker

    masker = Masker()
    for name, value in environ.items():
        if not value:
            continue
        if name.endswith("DATABASE_URL") or name.endswith("_URL"):
            password = url_password(value)
            if password:
                masker.add(password)
        elif any(hint in name.upper() for hint in _SECRET_ENV_HINTS) and len(value) >= 8:
            masker.add(value)
    return masker


class Context:
    """What every command shares: the masker for its output and the verbosity."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.environ = dict(os.environ)
        self.mask = _env_masker(self.environ)

    def out(self, text: str) -> None:
        click.echo(self.mask(text), nl=False)

    def progress(self, line: str) -> None:
        click.echo(self.mask(f"guard: {line}"), err=True)

    def error(self, message: str) -> None:
        click.echo(self.mask(f"guard: error: {message}"), err=True)

    def fail(self, exc: GuardError) -> NoReturn:
        self.error(str(exc))
        sys.exit(exc.exit_code)
