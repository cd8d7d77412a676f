"""What every command shares: output, progress lines and error lines, all masked.

Commands (guard/commands.py, guard/demo.py) take a Context; they never import the CLI.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from typing import Any, NoReturn

import click

from guard.errors import GuardError


def env_masker(environ: Mapping[str, str]) -> Any:
    """A Masker for the secrets in ``environ`` (guard.report.mask.env_masker)."""
    from guard.report.mask import env_masker as build

    return build(environ)


def safe(mask: Callable[[str], str], text: str) -> str:
    """Masked, control characters escaped, no line able to start a workflow command."""
    from guard.report.sanitize import lines

    return lines(mask(text))


class Context:
    """What every command shares: the masker for its output and the verbosity."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose
        self.environ = dict(os.environ)
        self.mask = env_masker(self.environ)

    def out(self, text: str) -> None:
        self._notices()
        click.echo(safe(self.mask, text), nl=False)

    def workflow(self, line: str) -> None:
        """One of guard's own workflow commands (annotations), already escaped for the runner."""
        click.echo(self.mask(line), nl=False)

    def progress(self, line: str) -> None:
        self._notices()
        click.echo(safe(self.mask, f"guard: {line}"), err=True)

    def error(self, message: str) -> None:
        """One line, whatever ``message`` holds (a run id, a file name or a server's error
        with a line break in it: each escaped, as :func:`guard.report.sanitize.one_line` does)."""
        from guard.report.sanitize import one_line

        self._notices()
        click.echo(one_line(self.mask(f"guard: error: {message}")), err=True)

    def _notices(self) -> None:
        for notice in self.mask.notices():  # once each: a secret too weak to be masked
            click.echo(f"guard: note: {notice}", err=True)

    def fail(self, exc: GuardError) -> NoReturn:
        self.error(str(exc))
        sys.exit(exc.exit_code)


def internal_error(exc: BaseException, *, verbose: bool, mask: Callable[[str], str] = str) -> None:
    """One line for an unexpected exception (an ::error annotation in GitHub Actions); the
    traceback only with -v."""
    from guard.report.github import annotation
    from guard.run.internal import one_line

    if verbose:
        import traceback

        click.echo(safe(mask, traceback.format_exc()), err=True)
    line = mask(one_line(exc))
    if os.environ.get("GITHUB_ACTIONS") == "true":
        click.echo(annotation("error", line, title="migration-guard: internal error"), err=True)
    else:
        click.echo(safe(str, f"guard: {line}" + ("" if verbose else " (-v shows the traceback)")), err=True)
