"""`guard check --shadow`: the lock trace of every pending statement, beside its static verdict.

The dry run applies the files to the shadow one transaction each. Before each pending file is
applied, it is first run once more in a transaction that is rolled back: the tables it names
are given rows (guard.lint.seed, at most ROWS_PER_TABLE each), then every statement is traced
(guard.lint.trace: the locks it took on tables that existed before, from pg_locks; a rewrite,
from relfilenode; a full read, from seq_scan). The dry run itself is unchanged: it never sees
the rows. A statement that fails only on the made-up rows is traced again on the empty tables.

Each traced statement becomes a row of ``report.shadow["trace"]``; where the server and the
lint disagree, a finding: `trace` (the server scanned or rewrote a table under a lock blocking
writes and no static rule said so) or `trace-unconfirmed` (a static locking finding the server
did not show on the shadow's schema: info, production's schema may differ).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from guard.lint.ruleset import Finding

if TYPE_CHECKING:
    from guard.migrations.apply_state import ApplyOutcome
    from guard.migrations.files import MigrationFile
    from guard.shadow import Shadow

Progress = Callable[[str], None]
TABLES = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'm')
"""
Display = Callable[["MigrationFile"], str]


def traced_dry_run(shadow: Shadow, files: Sequence[MigrationFile], pending: set[str],
                   findings: Sequence[dict[str, Any]], *, lock_timeout: float, statement_timeout: float,
                   display: Display, progress: Progress, with_target: bool = False) -> tuple[ApplyOutcome, list[dict[str, Any]]]:
    """guard.shadow.dry_run of `files`, with each file whose version is in `pending` traced
    just before it is applied; returns the merged outcome and the trace rows (as_dict of
    each statement: see _row). `findings`: the check's lint findings (report.findings);
    with_target: the check knows the target (the files before the first pending one are applied
    there): tables created by pending files are new in production, hold no rows, do not count."""
    from guard.db import connect
    from guard.migrations.apply_state import ApplyOutcome
    from guard.shadow import DRY_RUN_TIMEOUT, dry_run, prepare_files

    outside = _outside_transaction(files, findings, display)
    deadline = time.monotonic() + DRY_RUN_TIMEOUT  # the whole dry run's bound, not each part's

    def apply(part: Sequence[MigrationFile], prepared: bool = False) -> ApplyOutcome:
        return dry_run(shadow, part, lock_timeout=lock_timeout, statement_timeout=statement_timeout,
                       display=display, progress=progress, outside_transaction=outside,
                       timeout=max(1.0, deadline - time.monotonic()), prepared=prepared)

    first = next((i for i, f in enumerate(files) if f.version in pending), len(files))
    outcome = apply(files[:first]) if first else ApplyOutcome()
    rows: list[dict[str, Any]] = []
    if first == len(files) or outcome.failed or outcome.interrupted:
        return outcome, rows
    conn = connect(shadow.url, application_name="guard check (lock trace)")
    try:
        # With a target, a table an earlier pending file creates is new (empty) in production
        # too: only the tables there before the first pending file get rows and count.
        existing = {row[1] for row in conn.execute(TABLES).fetchall()} if with_target else None
        for file in files[first:]:
            # The trace runs what the dry run runs: an extension the shadow lacks left out...
            [ready] = prepare_files(shadow, [file], display=display)
            if file.version in pending:
                progress(f"lock trace: {display(file)}")
                # each statement within migrations.statement_timeout (0: none) and within what is
                # left of the dry run's bound: a file that sleeps cannot hold the check forever
                limit = min(statement_timeout or DRY_RUN_TIMEOUT, deadline - time.monotonic())
                conn.execute(f"SET statement_timeout = {max(1000, int(limit * 1000))}")
                rows.extend(trace_file(conn, file, findings, display(file), existing, ready=ready))
            part = apply([ready], prepared=True)
            _merge(outcome, part)
            if part.failed or part.interrupted:
                break
    finally:
        conn.close()
    return outcome, rows


def _outside_transaction(files: Sequence[MigrationFile], findings: Sequence[dict[str, Any]],
                         display: Display) -> set[str]:
    """Versions guard run would apply statement by statement (a statement PostgreSQL refuses in
    a transaction block): from the check's findings, and for files it did not lint (already
    applied ones the shadow replays), from a lint of their own."""
    from guard.lint import OUTSIDE_TRANSACTION_RULES, Linter

    linted = {f.get("file") for f in findings}
    out = {f.version for f in files if any(x.get("file") == display(f) and x.get("rule") in OUTSIDE_TRANSACTION_RULES
                                           for x in findings)}
    for file in files:
        if display(file) not in linted and any(x.rule in OUTSIDE_TRANSACTION_RULES for x in
                                               Linter().lint_file(file, display=display(file))):
            out.add(file.version)
    return out


def _merge(outcome: ApplyOutcome, part: ApplyOutcome) -> None:
    outcome.results.extend(part.results)
    outcome.committed.extend(part.committed)
    for name in ("failed", "unknown", "connection_lost", "interrupted", "changed_outside_transaction",
                 "partially_committed"):
        if getattr(part, name):
            setattr(outcome, name, getattr(part, name))


def trace_file(conn: Any, file: MigrationFile, findings: Sequence[dict[str, Any]], shown: str,
               existing: set[str] | None = None, *, ready: MigrationFile | None = None) -> list[dict[str, Any]]:
    """The trace rows of one file's statements (rolled back), with their static verdicts.
    existing: the tables (qualified, quoted as format('%I.%I')) that hold rows in production;
    None: every table that exists before the file. ready: the file as the dry run applies it
    (guard.shadow.prepare_files): its statements are traced in place of the file's, and one
    it left out is "not traced"."""

    mine = [f for f in findings if f.get("file") == shown]
    runs = {s.offset: s.sql for s in (ready or file).statements}
    indexed = [(i, s) for i, s in enumerate(file.statements) if s.kind and s.offset in runs]
    left_out = [_row(shown, i, s, None, mine, note="left out of the dry run: see its limits")
                for i, s in enumerate(file.statements) if s.kind and s.offset not in runs]
    rows = _trace_rows(conn, indexed, runs, mine, shown, existing)
    return sorted([*rows, *left_out], key=lambda row: row["statement_index"])


def _trace_rows(conn: Any, indexed: list[tuple[int, Any]], runs: dict[int, str], mine: list[dict[str, Any]],
                shown: str, existing: set[str] | None) -> list[dict[str, Any]]:
    """trace_file's rows of the statements it traces: ``indexed`` (index in the file, statement),
    each run as ``runs[statement.offset]``."""
    from guard.lint import OUTSIDE_TRANSACTION_RULES
    from guard.lint.seed import seed_rows
    from guard.lint.trace import trace_statements

    if any(f.get("rule") in OUTSIDE_TRANSACTION_RULES for f in mine):
        return [_row(shown, i, s, None, mine, note="runs outside a transaction: not traced") for i, s in indexed]
    if any(f.get("rule") in ("transaction-control", "database-level") for f in mine):
        # its own COMMIT would end the trace's transaction and keep the made-up rows
        return [_row(shown, i, s, None, mine, note="controls transactions itself: not traced") for i, s in indexed]
    text = "\n".join(runs[s.offset] for _, s in indexed)
    seeded: dict[str, int] = {}

    def seed(c: Any) -> None:
        seeded.update(seed_rows(c, text, only=existing))

    results = trace_statements(conn, [runs[s.offset] for _, s in indexed], setup=seed)
    note = f"on {sum(seeded.values())} made-up rows in {len(seeded)} table(s)" if seeded else "on empty tables"
    with_rows: tuple[int, str] | None = None  # (position, error) of a statement that failed only on the rows
    if seeded and any(r.error for r in results):
        empty = trace_statements(conn, [runs[s.offset] for _, s in indexed])  # the rows may be what failed
        if not any(r.error for r in empty):
            with_rows = (len(results) - 1, str(results[-1].error))
            results, note = empty, f"on empty tables (line {indexed[len(results) - 1][1].line} failed on made-up rows)"
    held = 0.0
    out = []
    for n, ((i, s), result) in reversed(list(enumerate(zip(indexed, results, strict=False)))):
        held += result.seconds
        row = _row(shown, i, s, result, mine, note=note, held=held, existing=existing)
        if with_rows is not None and with_rows[0] == n:
            # e.g. ADD COLUMN ... NOT NULL without a default: the empty shadow applies it, production may not
            row.update(verdict="fails with rows", error_with_rows=with_rows[1])
        out.append(row)
    return out[::-1]


def _row(shown: str, index: int, statement: Any, result: Any, mine: Sequence[dict[str, Any]], *,
         note: str, held: float = 0.0, existing: set[str] | None = None) -> dict[str, Any]:
    """One statement: where, its first line, the static rules, what the server showed, verdict.
    verdict: "agrees", "trace" (server saw blocking work the lint missed), "trace-unconfirmed"
    (the lint said locking, the server showed none), "not traced", "failed" (also on empty
    tables), "fails with rows" (set by trace_file: it failed only on the made-up rows)."""
    static = sorted({f["rule"] for f in mine if f.get("statement_index") == index
                     and f.get("category") in ("locking", "destructive")})
    locking = {f.get("rule") for f in mine if f.get("statement_index") == index and f.get("category") == "locking"}
    row: dict[str, Any] = {"file": shown, "line": statement.line, "statement_index": index,
                           "statement": statement.sql.strip().splitlines()[0][:120], "static": static,
                           "note": note}
    if result is None:
        return {**row, "verdict": "not traced"}
    blocking = [t for t in result.blocking_work if existing is None or t in existing]
    row.update(locks=result.locks, rewritten=list(result.rewritten), scanned=list(result.scanned),
               blocking=blocking, ms=round(result.seconds * 1000, 3),
               held_ms=round(held * 1000, 3), error=result.error)
    if result.error:
        return {**row, "verdict": "failed"}
    if blocking and not static:
        return {**row, "verdict": "trace"}
    from guard.lint.locks import BLOCKS_WRITES

    if locking == {"lock-table"} and set(result.locks.values()) & BLOCKS_WRITES:
        return {**row, "verdict": "agrees"}  # an explicit LOCK: the lock it holds is its whole effect
    if locking and not blocking:
        return {**row, "verdict": "trace-unconfirmed"}
    return {**row, "verdict": "agrees"}


def disagreement_findings(rows: Sequence[dict[str, Any]], files: Sequence[MigrationFile],
                          display: Display) -> list[Finding]:
    """A Finding per row whose verdict is `trace` or `trace-unconfirmed`."""
    from guard.lint.ruleset import finding

    by_file = {display(f): f for f in files}
    out = []
    for row in rows:
        if row["verdict"] not in ("trace", "trace-unconfirmed"):
            continue
        statement = by_file[row["file"]].statements[row["statement_index"]]
        if row["verdict"] == "trace":
            work = ", ".join(f"{t} ({row['locks'][t]}, {'rewritten' if t in row['rewritten'] else 'scanned'})"
                             for t in row["blocking"])
            out.append(finding("trace", statement, row["statement_index"], row["file"],
                               f"on the shadow this statement read or rewrote {work} while writers were blocked; "
                               "no static rule flagged it", "treat it as locking: see docs/lint.md for the safe pattern"))
        else:
            strongest = ", ".join(f"{m} on {t}" for t, m in sorted(row["locks"].items())) or "no lock"
            out.append(finding("trace-unconfirmed", statement, row["statement_index"], row["file"],
                               f"{', '.join(row['static'])}: on the shadow it took {strongest} and neither "
                               "scanned nor rewrote a table; production's schema may differ (check it)", None))
    return out


def render_text(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Lines for the text report: one per traced statement."""
    rows = _shown(rows)
    lines = ["Lock trace (shadow):"] if rows else []
    for row in rows:
        lines.append(f"  {row['file']}:{row['line']}: {_observed(row)} | static: "
                     f"{', '.join(row['static']) or 'none'} | {row['verdict']}")
    return lines


def render_markdown(rows: Sequence[dict[str, Any]], cell: Callable[[str], str]) -> list[str]:
    """A Markdown table for the PR comment: observed lock beside the static verdict. File names,
    statements, table names and server errors are untrusted: each is a code span (no link, bold,
    mention or HTML renders inside one), `cell` is for guard's own words."""
    rows = _shown(rows)
    if not rows:
        return []
    lines = ["### Lock trace on the shadow", "",
             "| where | statement | static verdict | observed on the shadow | held | verdict |",
             "| --- | --- | --- | --- | --- | --- |"]
    for row in rows:
        held = f"{row['held_ms']:.1f} ms" if "held_ms" in row else "-"
        where = f"{row['file']}:{row['line']}"
        lines.append(f"| {code_span(where)} | {code_span(row['statement'])} | "
                     f"{cell(', '.join(row['static']) or 'none')} | {code_span(_observed(row))} | {held} | "
                     f"{'**' + row['verdict'] + '**' if row['verdict'] not in ('agrees', 'not traced') else row['verdict']} |")
    return lines + [""]


def code_span(text: str) -> str:
    """Untrusted text as one Markdown code span inside a table cell: on one line, fenced by more
    backticks than any run inside it (CommonMark "Code spans"), `|` escaped (GFM tables)."""
    import re

    text = " ".join(text.splitlines()).replace("|", "\\|")
    fence = "`" * (max((len(m) for m in re.findall("`+", text)), default=0) + 1)
    return f"{fence} {text} {fence}"


def _shown(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows a reviewer needs: a lock on a table that existed before, a static finding or a
    verdict other than "agrees" (a CREATE TABLE that agrees with the lint is noise)."""
    return [r for r in rows if r["verdict"] != "agrees" or r.get("locks") or r["static"]]


def _observed(row: dict[str, Any]) -> str:
    if row["verdict"] == "not traced":
        return row["note"]
    if row.get("error_with_rows"):
        return f"failed on made-up rows: {row['error_with_rows']} (applies to empty tables only)"
    if row.get("error"):
        return f"failed: {row['error']}"
    locks = ", ".join(f"{m} on {t}" for t, m in sorted(row["locks"].items())) or "no lock on an existing table"
    work = "".join([f"; rewrote {', '.join(row['rewritten'])}" if row["rewritten"] else "",
                    f"; scanned {', '.join(row['scanned'])}" if row["scanned"] else ""])
    return f"{locks}{work} ({row['ms']:.1f} ms, {row['note']})"
