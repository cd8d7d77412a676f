"""The labelled corpus, checked against the server itself (PostgreSQL of the test cluster).

Each case runs in one transaction on tables that exist and hold rows (tests/lint_corpus/
setup.sql), traced by guard.lint.trace, then rolled back. A label and the trace must agree:
- locking: the statement read (seq_scan counter grew) or rewrote (new relfilenode) a table
  that existed before while the transaction held a lock blocking its writes (SHARE or stronger);
- safe / breaking: it did no such thing;
- destructive: a table that existed before was dropped, emptied, lost a column, or rows of
  it were deleted or updated.
Statements PostgreSQL refuses in a transaction block are shown to be refused (25001) instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg

from guard.lint import RISK_CATEGORIES, lint_paths
from guard.lint.catalog import PgCatalog
from guard.lint.trace import trace_statements
from tests.lint_corpus import SETUP, Case, load


def _verdict(case: Case, conn: psycopg.Connection[Any]) -> str | None:
    """None when the trace agrees with the label, else what disagrees."""
    results = trace_statements(conn, case.statements)
    last = results[-1]
    if last.error is not None or len(results) < len(case.statements):
        return f"failed: {last.error}"
    if case.label == "locking" and not last.blocking_work:
        return f"labelled locking, trace shows no blocking scan/rewrite: {last.as_dict()}"
    if case.label in ("safe", "breaking") and last.blocking_work:
        return f"labelled {case.label}, trace shows {last.blocking_work} under {last.locks}"
    # A lossy type change shows as a rewrite through a cast; the values lost are the protective
    # copies' round trips to prove.
    type_change = " type " in case.statements[-1].lower() and last.rewritten
    if case.label == "destructive" and not last.destroyed and not type_change:
        return f"labelled destructive, trace shows nothing destroyed: {last.as_dict()}"
    return None


def test_every_label_agrees_with_the_server(db_url: str) -> None:
    cases = load()
    assert len(cases) >= 300 and {c.label for c in cases} == {"destructive", "locking", "breaking", "safe"}
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(SETUP.read_text())
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
