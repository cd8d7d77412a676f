"""The JSON report (fields documented in docs/report.md)."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from guard.report.model import RunReport


def render(report: RunReport, mask: Callable[[str], str], *, indent: int | None = 2) -> str:
    """The report as JSON text. Secrets are masked in the values before serialising (JSON
    escaping changes how a secret with ``ü``, ``"`` or ``\\`` is spelt), then once more in the
    text."""
    data = report.to_dict(mask)
    text = json.dumps(data, indent=indent, sort_keys=False)
    return mask(text) + ("\n" if indent is not None else "")


def compact(report: RunReport, mask: Callable[[str], str]) -> str:
    """One line of JSON, masked as :func:`render` does (for guard.runs.report)."""
    return render(report, mask, indent=None)


def write(report: RunReport, path: Path, mask: Callable[[str], str]) -> None:
    """Write atomically: a reader never sees half a report."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".guard-report-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(render(report, mask))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
