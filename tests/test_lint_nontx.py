"""Every statement PostgreSQL refuses inside a transaction block (guard.lint.nontx.TABLE):
the server of the test cluster refuses it with SQLSTATE 25001, and guard's lint marks it
non-transactional (or, where guard refuses it in a migration, names it in the refusal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from guard.lint import lint_paths
from guard.lint.catalog import PgCatalog
from guard.lint.nontx import BY_TAG, TABLE

SETUP = """
create table public.items (id int primary key, note text);
create index items_note on public.items (note);
create table public.m (id int, ts date) partition by range (ts);
create table public.m_2024 partition of public.m for values from ('2024-01-01') to ('2025-01-01');
create index m_ts on public.m (ts);
"""
# tag -> (statement, setup outside the transaction, cleanup)
CASES: dict[str, tuple[str, str, str]] = {
    "CREATE INDEX CONCURRENTLY": ("create index concurrently i2 on public.items (id)", "", ""),
    "DROP INDEX CONCURRENTLY": ("drop index concurrently public.items_note", "", ""),
    "REINDEX CONCURRENTLY": ("reindex table concurrently public.items", "", ""),
    "REINDEX SCHEMA": ("reindex schema public", "", ""),
    "REINDEX SYSTEM": ("reindex system {db}", "", ""),  # the name is optional from 16 on
    "REINDEX DATABASE": ("reindex database {db}", "", ""),
    "REINDEX TABLE": ("reindex table public.m", "", ""),
    "REINDEX INDEX": ("reindex index public.m_ts", "", ""),
    "ALTER TABLE ... DETACH CONCURRENTLY": ("alter table public.m detach partition public.m_2024 concurrently", "", ""),
    "VACUUM": ("vacuum public.items", "", ""),
    "CLUSTER": ("cluster", "", ""),
    "CREATE DATABASE": ("create database never_made", "", ""),
    "DROP DATABASE": ("drop database if exists never_made", "", ""),
    "ALTER DATABASE SET TABLESPACE": ("alter database postgres set tablespace pg_default", "", ""),
    "CREATE TABLESPACE": ("create tablespace never_made location '/nonexistent'", "", ""),
    "DROP TABLESPACE": ("drop tablespace if exists never_made", "", ""),
    "ALTER SYSTEM": ("alter system set work_mem = '8MB'", "", ""),
    "COMMIT PREPARED": ("commit prepared 'never_made'", "", ""),
    "ROLLBACK PREPARED": ("rollback prepared 'never_made'", "", ""),
    "DISCARD ALL": ("discard all", "", ""),
    "CREATE SUBSCRIPTION ... WITH (create_slot = true)": (
        "create subscription never_made connection 'host=127.0.0.1 dbname=none' publication p", "", ""),
    "DROP SUBSCRIPTION": (
        "drop subscription s_guard",
        "create subscription s_guard connection 'host=127.0.0.1 dbname=none' publication p with (connect = false)",
        "alter subscription s_guard set (slot_name = none); drop subscription s_guard"),
}
# Entries the PostgreSQL 15 cluster cannot show: another major, or a live publisher needed
# (the server checks that the subscription is enabled before it checks the transaction block).
NOT_ON_15 = {
    "ALTER SUBSCRIPTION ... REFRESH": "needs an enabled subscription connected to a publisher",
    "ALTER SUBSCRIPTION with refresh": "needs an enabled subscription connected to a publisher",
    "ALTER SUBSCRIPTION ... SET (failover)": "PostgreSQL 17 only",
    "ALTER SUBSCRIPTION ... SET (two_phase)": "PostgreSQL 17 only",
    "ALTER TYPE ... ADD": "PostgreSQL 11 and older",
}


def test_the_cases_cover_the_table() -> None:
    assert set(CASES) | set(NOT_ON_15) == {e.tag for e in TABLE}


@pytest.mark.parametrize("tag", sorted(CASES))
def test_server_refuses_it_in_a_transaction_and_lint_marks_it(tag: str, db_conn: psycopg.Connection[Any],
                                                              tmp_path: Path) -> None:
    statement, setup, cleanup = CASES[tag]
    row = db_conn.execute("SELECT current_database()").fetchone()
    statement = statement.format(db=row[0] if row else "")
    db_conn.execute(SETUP)
    if setup:
        db_conn.execute(setup)
    try:
        with pytest.raises(psycopg.Error) as refused:
            with db_conn.transaction():
                db_conn.execute(statement)
        assert refused.value.diag.sqlstate == "25001", refused.value
        assert f"{tag} cannot run inside a transaction block" in str(refused.value)
    finally:
        if cleanup:
            db_conn.execute(cleanup)
    path = tmp_path / "20240101000000_x.sql"
    path.write_text(statement + ";\n")
    findings = lint_paths([path], display_root=tmp_path, server_major=15, catalog=PgCatalog(db_conn),
                          existing_tables=PgCatalog(db_conn).exists)
    marked = [f for f in findings if f.category == "non-transactional" and tag in f.message]
    assert marked, [f.message for f in findings]
    if BY_TAG[tag].refused:
        assert marked[0].severity == "error" and f"guard refuses {tag}" in marked[0].message


def test_detach_concurrently_runs_outside_a_transaction_in_guard_run(ready: Any) -> None:
    ready.add("20240101000000_a.sql", "create table public.measurements (id int, ts date) partition by range (ts);\n"
              "create table public.measurements_2024 partition of public.measurements\n"
              "  for values from ('2024-01-01') to ('2025-01-01');\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_detach.sql",
              "alter table public.measurements detach partition public.measurements_2024 concurrently;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("SELECT count(*) FROM pg_inherits WHERE inhrelid = 'public.measurements_2024'::regclass") == [(0,)]


def test_create_database_is_refused_by_name(ready: Any) -> None:
    ready.add("20240101000000_db.sql", "create database analytics;\n")
    result = ready.guard("run")
    assert result.code == 3
    assert "CREATE DATABASE" in result.stderr and "guard refuses CREATE DATABASE" in result.stderr
