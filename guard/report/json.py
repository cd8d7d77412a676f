"""The JSON report (fields documented in docs/report.md)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from guard.report.mask import Masker
from guard.report.model import RunReport


def render(report: RunReport, mask: Masker) -> str:
    return mask(json.dumps(report.to_dict(), indent=2, sort_keys=False, default=str)) + "\n"


def write(report: RunReport, path: Path, mask: Masker) -> None:
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
