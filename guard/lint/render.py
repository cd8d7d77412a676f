"""Findings as text, JSON and GitHub annotations. Renderers decide nothing."""

from __future__ import annotations

import json
from collections.abc import Sequence

from guard.lint import Finding
from guard.report.github import annotation


def text(findings: Sequence[Finding]) -> str:
    if not findings:
        return "no findings\n"
    lines = []
    for f in findings:
        accepted = f" [accepted: {f.accepted}]" if f.accepted else ""
        safer = f" (safer: {f.alternative})" if f.alternative else ""
        lines.append(f"{f.file}:{f.line}:{f.column}: {f.severity} {f.rule}: {f.message}{safer}{accepted}")
    errors = sum(1 for f in findings if f.severity == "error")
    lines.append(f"{len(findings)} finding(s), {errors} error(s)")
    return "\n".join(lines) + "\n"


def as_json(findings: Sequence[Finding]) -> str:
    return json.dumps([f.as_dict() for f in findings], indent=2) + "\n"


def as_json_with_traces(findings: Sequence[Finding], traces: Sequence[dict[str, object]]) -> str:
    """`guard lint --trace --format json`: {"findings": [...], "traces": [...]}."""
    return json.dumps({"findings": [f.as_dict() for f in findings], "traces": list(traces)}, indent=2) + "\n"


def github(findings: Sequence[Finding]) -> str:
    levels = {"error": "error", "warning": "warning", "info": "notice"}
    return "".join(
        annotation(levels[f.severity], f"{f.message}" + (f" Safer: {f.alternative}" if f.alternative else ""),
                   file=f.file, line=f.line, col=f.column, title=f"guard {f.rule}") + "\n"
        for f in findings
    )
