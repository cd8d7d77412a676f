"""`guard lint --trace --shadow`: the files run on a shadow, each statement traced, the
observed locks shown beside the static verdict; where they disagree, a finding.

Each file runs in one transaction (as guard applies it) and is committed, so the next file
sees its effects; a file PostgreSQL refuses in a transaction block runs statement by
statement, untraced. Tables need not hold rows: a scan moves the seq_scan counter and a
rewrite the relfilenode even on an empty table (guard.lint.trace).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.lint import OUTSIDE_TRANSACTION_RULES, Finding
from guard.lint.ruleset import finding
from guard.lint.trace import TraceResult, trace_statements

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile


class Observed(Struct, frozen=True):
    """One statement of a file and what the shadow showed (trace None: run untraced)."""

    file: str
    line: int
    index: int
    trace: TraceResult | None
    note: str = ""
    static: tuple[str, ...] = ()  # locking/destructive rules the lint gives it against the shadow's schema

    def as_dict(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "statement_index": self.index,
                "trace": self.trace.as_dict() if self.trace else None, "note": self.note}


def trace_files(conn: Any, files: Sequence[MigrationFile], findings: Sequence[Finding],
                display: Callable[[MigrationFile], str]) -> list[Observed]:
    """Apply `files` in order on the shadow connection `conn`, tracing every statement; stops
    after the first failing statement (its error is in its trace). Each file is also linted
    against the shadow's schema as it stands before the file (the trace's own view of which
    tables existed), so that the comparison is like for like."""
    from guard.lint import Linter
    from guard.lint.catalog import PgCatalog

    catalog = PgCatalog(conn)
    out: list[Observed] = []
    for file in files:
        shown = display(file)
        statements = [s for s in file.statements if s.kind]
        own = Linter(server_major=15, existing_tables=catalog.exists, catalog=catalog).lint_file(file, display=shown)
        static = {i: tuple(f.rule for f in own if f.statement_index == i and f.category in ("locking", "destructive"))
                  for i in range(len(statements))}
        outside = any(f.file == shown and f.rule in OUTSIDE_TRANSACTION_RULES for f in findings)
        if outside:
            if not _run_untraced(conn, shown, statements, out):
                break
            continue
        results = trace_statements(conn, [s.sql for s in statements], commit=True)
        out.extend(Observed(shown, st.line, i, r, static=static.get(i, ()))
                   for i, (st, r) in enumerate(zip(statements, results, strict=False)))
        if any(r.error for r in results):
            break
    return out


def _run_untraced(conn: Any, shown: str, statements: Sequence[Any], out: list[Observed]) -> bool:
    """Run a file PostgreSQL refuses in a transaction block statement by statement; False after
    a failure (recorded as that statement's trace error)."""
    import psycopg

    for index, st in enumerate(statements):
        try:
            conn.execute(st.sql, prepare=False)
        except psycopg.Error as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            out.append(Observed(shown, st.line, index, TraceResult(st.sql, error=message)))
            return False
        out.append(Observed(shown, st.line, index, None, "runs outside a transaction: not traced"))
    return True


def disagreements(observed: Sequence[Observed], files: Sequence[MigrationFile],
                  display: Callable[[MigrationFile], str]) -> list[Finding]:
    """A `trace` finding where the shadow shows a scan or rewrite under a lock blocking writes
    and the lint, against the same schema, raised no locking or destructive finding."""
    by_file = {display(f): f for f in files}
    out: list[Finding] = []
    for seen in observed:
        trace = seen.trace
        if trace is None or not trace.blocking_work or seen.static:
            continue
        statements = [s for s in by_file[seen.file].statements if s.kind]
        work = ", ".join(f"{t} ({trace.locks[t]}" + (", rewritten)" if t in trace.rewritten else ", scanned)")
                         for t in trace.blocking_work)
        out.append(finding("trace", statements[seen.index], seen.index, seen.file,
                           f"on the shadow this statement read or rewrote {work} while writers were blocked; "
                           "no static rule flagged it", "treat it as locking: see docs/lint.md for the safe pattern"))
    return out


def render(observed: Sequence[Observed]) -> str:
    """One line per statement: file:line, the observed locks, rewrite/scan, time."""
    lines = []
    for seen in observed:
        if seen.trace is None:
            lines.append(f"{seen.file}:{seen.line}: trace: {seen.note}")
            continue
        t = seen.trace
        if t.error:
            lines.append(f"{seen.file}:{seen.line}: trace: failed on the shadow: {t.error}")
            continue
        locks = ", ".join(f"{mode} on {table}" for table, mode in sorted(t.locks.items())) or "no lock on an existing table"
        work = "".join([f"; rewrote {', '.join(t.rewritten)}" if t.rewritten else "",
                        f"; scanned {', '.join(t.scanned)}" if t.scanned else ""])
        lines.append(f"{seen.file}:{seen.line}: trace: {locks}{work} ({t.seconds * 1000:.1f} ms)")
    return "\n".join(lines) + ("\n" if lines else "")


def _apply_context(conn: Any, files: Sequence[MigrationFile], display: Callable[[MigrationFile], str]) -> list[Observed]:
    """Run the earlier files (what the linted ones build on) untraced, statement by statement,
    committed; [] when all ran, else one Observed saying which statement failed."""
    import psycopg

    for file in files:
        for st in (s for s in file.statements if s.kind):
            try:
                conn.execute(st.sql, prepare=False)
            except psycopg.Error as exc:
                message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                return [Observed(display(file), st.line, 0, None, f"earlier file failed on the shadow ({message}): "
                                                                  "the linted files were not traced")]
    return []


def trace_on_shadow(spec: str, paths: Sequence[Any], findings: Sequence[Finding], *, display_root: Any,
                    target_url: str | None, progress: Callable[[str], None],
                    context: Sequence[Any] = ()) -> tuple[list[Finding], list[Observed]]:
    """`guard lint --trace --shadow spec` ("embedded" or a scratch database URL): the `context`
    files (the migration set before the linted ones, which the static verdict reads as already
    applied) run first, untraced; then the files at `paths` (in order) are traced on the shadow.
    Returns the disagreement findings and the traces. Raises UsageError for a bad spec or the
    target itself, ConnectError when it cannot connect."""
    from guard.db import connect
    from guard.migrations.files import FILE_PATTERN, MigrationRef, load
    from guard.shadow import open_shadow

    def loaded(path: Any) -> MigrationFile:
        match = FILE_PATTERN.match(path.name)
        return load(MigrationRef(match.group(1) if match else "0", match.group(2) if match else path.stem, path),
                    display_root=display_root)

    files = [loaded(p) for p in paths]
    earlier = [loaded(p) for p in context]

    def display(file: MigrationFile) -> str:
        try:
            return str(file.path.resolve().relative_to(display_root.resolve()))
        except ValueError:
            return str(file.path)

    # The Supabase base: migrations grant to its roles and name its schemas. The files run as
    # the shadow's dry-run role, not a superuser: they are a pull request's untrusted SQL.
    with open_shadow(spec, target_url=target_url, base="supabase", progress=progress) as shadow:
        conn = connect(shadow.url, application_name="guard lint (trace)")
        try:
            observed = _apply_context(conn, earlier, display) or trace_files(conn, files, findings, display)
        finally:
            conn.close()
    return disagreements(observed, files, display), observed
