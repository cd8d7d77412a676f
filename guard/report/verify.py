"""The verify section of a report (issue #19): each check's name, result, duration and, when
it failed, its first rows, shown as psql shows them.

Values arrive as PostgreSQL's text output (guard.run.verify.as_text): ``1``, ``t``,
``2026-11-30 08:00:00+00``; NULL is shown as ``NULL`` (psql's ``\\pset null NULL``), columns
are separated by `` | `` as in psql's aligned output. Rows and a ``run:`` check's output are
untrusted (anyone who can write to the table, or the command): every value is made one inert
line (guard.report.sanitize) and cut at SHOWN_CHARS; the renderers mask secrets as for the
rest of the report.
"""

from __future__ import annotations

from typing import Any

from guard.report.sanitize import markdown_cell, one_line

NULL = "NULL"
SHOWN_CHARS = 200
# How a check a signal stopped begins its ``error`` (guard.run.verify.after_commit); renderers
# tell it from a check that failed by it.
NOT_FINISHED = "did not finish"


def cut(text: str) -> str:
    """``text`` cut at SHOWN_CHARS characters, an ellipsis saying so."""
    return text if len(text) <= SHOWN_CHARS else text[:SHOWN_CHARS] + "…"


def value_text(value: Any) -> str:
    """One value as shown: NULL for None, control characters escaped, cut at SHOWN_CHARS."""
    return NULL if value is None else cut(one_line(str(value)))


def row_text(row: list[Any]) -> str:
    """``a | b | NULL``: one row as psql's aligned output separates it."""
    return " | ".join(value_text(v) for v in row)


def rows_summary(check: dict[str, Any]) -> str:
    """The first rows of a failed check in one line: ``first rows (of 7): 1 | f; 2 | f``,
    ``no rows``, or the first lines of a run: check's output."""
    if check.get("kind") == "run":
        out = check.get("output") or []
        return ("output: " + "; ".join(value_text(line) for line in out)) if out else "no output"
    rows = check.get("rows") or []
    total = check.get("row_count", len(rows))
    if not rows:
        return "no rows"
    counted = f" (of {total})" if total > len(rows) else ""
    return f"first rows{counted}: " + "; ".join(row_text(r) for r in rows)


def check_line(check: dict[str, Any]) -> str:
    """``verify.x: failed (2.1 ms, after COMMIT): error; first rows: f``."""
    head = f"{one_line(str(check['name']))}: {check['result']} ({check['duration_ms']:g} ms, {check['where']})"
    if check["result"] == "passed":
        return head
    error = f"{value_text(check['error'])}; " if check.get("error") else ""
    return f"{head}: {error}{rows_summary(check)}"


def text_lines(checks: list[dict[str, Any]]) -> list[str]:
    """The terminal section: a header, then per check a line, and for a failed sql check its
    column names and first rows, indented as psql prints them."""
    if not checks:
        return []
    lines = ["Verify:"]
    for check in checks:
        lines.append(f"  {check['result']:<7} {one_line(str(check['name']))} "
                     f"({check['duration_ms']:g} ms, {check['where']})")
        if check["result"] == "passed":
            continue
        if check.get("error"):
            lines.append(f"          {value_text(check['error'])}")
        if check.get("kind") == "run":
            lines += [f"          | {value_text(line)}" for line in check.get("output") or []]
            continue
        rows = check.get("rows") or []
        if check.get("columns"):
            lines.append("          " + " | ".join(value_text(c) for c in check["columns"]))
        lines += [f"          {row_text(r)}" for r in rows]
        total = check.get("row_count", len(rows))
        lines.append(f"          ({total} row{'' if total == 1 else 's'}"
                     + (f", first {len(rows)} shown)" if total > len(rows) else ")"))
    return lines


def markdown_lines(checks: list[dict[str, Any]]) -> list[str]:
    """The step summary's table: check, result, duration, what it returned."""
    if not checks:
        return []
    lines = ["### Verify", "", "| check | result | duration | returned |", "| --- | --- | --- | --- |"]
    for check in checks:
        shown = "" if check["result"] == "passed" else rows_summary(check)
        if check.get("error") and check["result"] != "passed":
            shown = f"{check['error']}; {shown}"
        lines.append(f"| {markdown_cell(str(check['name']))} | {check['result']} | "
                     f"{check['duration_ms']:g} ms | {markdown_cell(shown)} |")
    return lines + [""]
