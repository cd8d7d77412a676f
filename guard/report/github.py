"""GitHub Actions rendering: step summary, step outputs, annotations, log groups.

Active when ``GITHUB_ACTIONS=true``. Values written to ``$GITHUB_OUTPUT`` use the
multi-line ``name<<delimiter`` form with a random delimiter, so no value can end the block
early or inject another output. Annotation text is escaped as the runner expects.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping
from pathlib import Path

from guard.report.model import RunReport
from guard.report.sanitize import lines as safe_lines


def active(environ: Mapping[str, str]) -> bool:
    return environ.get("GITHUB_ACTIONS") == "true"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def annotation(level: str, message: str, *, file: str | None = None, line: int | None = None,
               title: str | None = None, col: int | None = None) -> str:
    props = []
    if file:
        props.append(f"file={escape_property(file)}")
    if line:
        props.append(f"line={line}")
    if col:
        props.append(f"col={col}")
    if title:
        props.append(f"title={escape_property(title)}")
    head = f"::{level}" + (" " + ",".join(props) if props else "")
    # Control characters but newline escaped first: the runner turns %0D back into \r.
    return f"{head}::{escape_data(safe_lines(message))}"


def annotation_lines(report: RunReport) -> list[str]:
    """One ::error at each failing statement's file:line, one per check that failed outside a
    file's transaction (after COMMIT, on the shadow), and one for a blocked run."""
    out: list[str] = []
    for m in report.migrations:
        if m.error is not None and m.status in ("failed", "unknown"):
            state = f" (SQLSTATE {m.error.sqlstate})" if m.error.sqlstate else ""
            out.append(annotation(
                "error", f"{m.error.message}{state}", file=m.error.file, line=m.error.line,
                title=f"migration-guard: {m.version} {m.status}",
            ))
    for finding in getattr(report, "findings", None) or []:
        level = {"error": "error", "warning": "warning"}.get(finding.get("severity", ""), "notice")
        out.append(annotation(
            level, finding.get("message", ""), file=finding.get("file"), line=finding.get("line"),
            title=f"migration-guard {finding.get('rule', '')}",
        ))
    for check in report.verify:
        if check.get("result") == "failed" and check.get("where") in ("after COMMIT", "shadow"):  # not a file's
            from guard.report.verify import NOT_FINISHED, check_line

            verdict = NOT_FINISHED if (check.get("error") or "").startswith(NOT_FINISHED) else "failed"
            out.append(annotation("error", check_line(check), title=f"migration-guard {check['name']} {verdict}"))
    if report.exit_code in (2, 3) and not out:
        out.append(annotation("error", report.message, title=f"migration-guard {report.command}: {report.status}"))
    if report.restore_plan is not None and report.restore_plan.needed is not False:
        out.append(annotation("error", report.restore_plan.summary, title="migration-guard: restore plan"))
    return out


def outputs(report: RunReport, report_path: Path) -> dict[str, str]:
    target = report.restore_target
    changed = report.database_changed
    return {
        "status": report.status,
        "exit-code": str(report.exit_code),
        "database-changed": "unknown" if changed is None else str(changed).lower(),
        "restore-target": target.timestamp if target else "",
        "restore-target-unix": str(target.unix) if target else "",
        "run-id": report.run_id,
        "report-path": str(report_path),
    }


def write_outputs(values: Mapping[str, str], path: Path) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for name, value in values.items():
            delimiter = f"guard_{secrets.token_hex(8)}"
            handle.write(f"{name}<<{delimiter}\n{value}\n{delimiter}\n")


def append_summary(environ: Mapping[str, str], markdown: str) -> None:
    """Append to the step summary ($GITHUB_STEP_SUMMARY, if set), control characters escaped
    and no line able to start a workflow command. OSError when the file cannot be written."""
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with Path(summary).open("a", encoding="utf-8") as handle:
            handle.write(safe_lines(markdown) + "\n")


def publish(
    report: RunReport,
    *,
    environ: Mapping[str, str],
    report_path: Path,
    markdown: str,
    echo: Callable[[str], None],
) -> None:
    """Summary, outputs and annotations for the current step (each only if its file is set)."""
    append_summary(environ, markdown)
    output = environ.get("GITHUB_OUTPUT")
    if output:
        write_outputs(outputs(report, report_path), Path(output))
    for line in annotation_lines(report):
        echo(line + "\n")


def group(title: str) -> str:
    return f"::group::{escape_data(title)}"


ENDGROUP = "::endgroup::"
