"""The labelled corpus, checked against the server itself (PostgreSQL of the test cluster).

Each case runs in one transaction on tables that exist and hold rows (tests/lint_corpus/
setup.sql), traced by guard.lint.trace, then rolled back. A label and the trace must agree:
- locking: the statement read (seq_scan counter grew) or rewrote (new relfilenode) a table
  that existed before while the transaction held a lock blocking its writes (SHARE or stronger);
- safe / breaking: it did no such thing;
- destructive: a table that existed before was dropped, emptied, lost a column, or rows of
  it were deleted or updated.
Statements PostgreSQL refuses in a transaction block are shown to be refused (25001) instead.
A case noted `trace: lock held` (an explicit LOCK: no scan) is locking when, after it, the
transaction holds a lock blocking writes on a table that existed before. A case noted
`after: [SQLSTATE ]SQL` shows what its label means for later clients: SQL runs in the case's
transaction after its statements (as the role corpus_reader after `set local role`), and must
return true, or fail with SQLSTATE (e.g. 23505: a sequence moved back hands out a stored id).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg

from guard.lint import RISK_CATEGORIES, lint_paths, locks
from guard.lint.catalog import PgCatalog
from guard.lint.trace import trace_statements
from tests.lint_corpus import SETUP, Case, load


def _verdict(case: Case, conn: psycopg.Connection[Any]) -> str | None:
    """None when the trace agrees with the label, else what disagrees."""
    results = trace_statements(conn, case.statements)
    last = results[-1]
    if last.error is not None or len(results) < len(case.statements):
        return f"failed: {last.error}"
    after = _AFTER.search(case.note)
    if after is not None:
        problem = _after(conn, case, after.group("state"), after.group("sql"))
        if problem:
            return problem
    if "trace: lock held" in case.note:
        if case.label == "locking" and not set(last.locks.values()) & locks.BLOCKS_WRITES:
            return f"labelled locking, the transaction holds no lock blocking writes: {last.locks}"
    elif case.label == "locking" and not last.blocking_work:
        return f"labelled locking, trace shows no blocking scan/rewrite: {last.as_dict()}"
    if case.label in ("safe", "breaking") and last.blocking_work:
        return f"labelled {case.label}, trace shows {last.blocking_work} under {last.locks}"
    # A lossy type change shows as a rewrite through a cast; the values lost are the protective
    # copies' round trips to prove.
    type_change = " type " in case.statements[-1].lower() and last.rewritten
    if case.label == "destructive" and not last.destroyed and not type_change:
        return f"labelled destructive, trace shows nothing destroyed: {last.as_dict()}"
    return None


_AFTER = re.compile(r"after: (?:(?P<state>[0-9A-Z]{5}) )?(?P<sql>.+)$")


def _after(conn: psycopg.Connection[Any], case: Case, state: str | None, sql: str) -> str | None:
    """Run the case's statements, then `sql`, in one transaction rolled back; None when `sql`
    returns true (state None) or fails with SQLSTATE `state`, else what happened."""
    from pglast import parser

    try:
        with conn.transaction(force_rollback=True):
            for statement in (*case.statements, *(s.strip() for s in parser.split(sql))):
                cursor = conn.execute(statement)
    except psycopg.Error as exc:
        got = getattr(exc.diag, "sqlstate", None)
        return None if state is not None and got == state else f"after: {sql!r} failed with {got}: {exc}"
    if state is not None:
        return f"after: {sql!r} did not fail with {state}"
    row = cursor.fetchone() if cursor.description else None
    return None if row is not None and row[0] is True else f"after: {sql!r} returned {row}"


def _reader(conn: psycopg.Connection[Any]) -> None:
    """The role `after:` checks read as: neither owner nor BYPASSRLS (as Supabase's anon)."""
    if not conn.execute("SELECT FROM pg_roles WHERE rolname = 'corpus_reader'").fetchone():
        try:
            conn.execute("CREATE ROLE corpus_reader NOLOGIN")
        except psycopg.errors.DuplicateObject:
            pass  # another test's database made it meanwhile (roles are the cluster's)
    conn.execute("GRANT USAGE ON SCHEMA public TO corpus_reader")
    conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO corpus_reader")


def test_every_label_agrees_with_the_server(db_url: str) -> None:
    cases = load()
    assert len(cases) >= 300 and {c.label for c in cases} == {"destructive", "locking", "breaking", "safe"}
    assert sum("after: " in c.note for c in cases) >= 20 and sum("trace: lock held" in c.note for c in cases) >= 5
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(SETUP.read_text())
        _reader(conn)
        wrong: list[str] = []
        refused = 0
        for case in cases:
            if "non-transactional" in case.note:
                try:
                    trace_statements(conn, case.statements)
                except psycopg.Error:
                    pass
                result = trace_statements(conn, case.statements)[-1]
                if result.sqlstate != "25001":
                    wrong.append(f"{case.id}: not refused in a transaction block ({result.error})")
                refused += 1
                continue
            problem = _verdict(case, conn)
            if problem:
                wrong.append(f"{case.id} ({case.statements[-1][:70]}): {problem}")
    assert not wrong, f"{len(wrong)} disagreement(s):\n" + "\n".join(wrong)
    assert refused >= 5


def test_guard_meets_the_accuracy_target_with_a_database(db_url: str, tmp_path: Path) -> None:
    """Recall >= 0.97 on risky cases at specificity >= 0.98 on safe ones, linting each case as
    `guard check` does (the corpus schema in the database), and statically with setup.sql as the
    migration set's earlier file; statically, the case alone, recall stays >= 0.97."""
    cases = load()
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(SETUP.read_text())
        catalog = PgCatalog(conn)
        flagged_db = {c.id: _flags(c, tmp_path, catalog) for c in cases}
    flagged_static = {c.id: _flags(c, tmp_path, None) for c in cases}
    setup = tmp_path / "20230101000000_setup.sql"
    setup.write_text(SETUP.read_text())
    flagged_set = {c.id: _flags(c, tmp_path, None, context=[setup]) for c in cases}
    risky = [c for c in cases if c.risky]
    safe = [c for c in cases if not c.risky]
    missed = [c.id for c in risky if not flagged_db[c.id]]
    false_alarms = [c.id for c in safe if flagged_db[c.id]]
    assert len(missed) / len(risky) <= 0.03, missed
    assert len(false_alarms) / len(safe) <= 0.02, false_alarms
    assert sum(flagged_static[c.id] for c in risky) / len(risky) >= 0.97
    # statically, with the schema the earlier file (setup.sql) declares: the same target
    assert sum(flagged_set[c.id] for c in risky) / len(risky) >= 0.97
    assert sum(not flagged_set[c.id] for c in safe) / len(safe) >= 0.98, [c.id for c in safe if flagged_set[c.id]]


def _flags(case: Case, tmp_path: Path, catalog: PgCatalog | None, context: list[Path] | None = None) -> bool:
    path = tmp_path / f"20240101000000_{case.id}.sql"
    path.write_text(case.sql)
    findings = lint_paths([path], display_root=tmp_path, server_major=15, catalog=catalog,
                          existing_tables=catalog.exists if catalog else None, context=context or [])
    last = len(case.statements) - 1
    return any(f.category in RISK_CATEGORIES and f.statement_index == last for f in findings)
