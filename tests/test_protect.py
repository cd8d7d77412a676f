"""Protective copies: exactly the destroyed data is kept, locked down, and the plan's SQL puts
it back (compared by checksum with the data before the migration)."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import Project

CHECKSUM = "SELECT md5(COALESCE(string_agg(t::text, '|' ORDER BY t.id), '')) FROM {table} t"


@pytest.fixture
def ready(ready: Project) -> Project:
    """The shared ready project, with 2,000 accounts to destroy."""
    project = ready
    project.query(
        "CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL, plan text, credits int);"
        "INSERT INTO public.accounts SELECT g, 'u' || g || '@example.com', "
        "CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END, g % 100 FROM generate_series(1, 2000) g"
    )
    return project


def _checksum(project: Project, table: str = "public.accounts") -> str:
    return str(project.query(CHECKSUM.format(table=table))[0][0])


def _restore(project: Project, report: dict, index: int = 0) -> None:  # type: ignore[type-arg]
    sql = report["protective_copies"][index]["restore_sql"]
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        conn.execute(sql.encode())


def test_drop_column_on_100k_rows_is_copied_and_restored_exactly(ready: Project) -> None:
    ready.query("INSERT INTO public.accounts SELECT g, 'v' || g || '@example.com', 'free', g % 7 "
                "FROM generate_series(2001, 100000) g")
    by_columns = ("SELECT md5(string_agg(concat_ws(',', id, email, plan, credits), '|' ORDER BY id)) "
                  "FROM public.accounts")
    before = ready.query(by_columns)[0][0]
    ready.add("20240101000000_drop_plan.sql", "alter table public.accounts drop column plan;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    report = result.report
    assert report is not None
    copy = report["protective_copies"][0]
    assert copy["source"] == 'public.accounts' and copy["kind"] == "column" and copy["rows"] == 100000
    assert copy["statement"] == "supabase/migrations/20240101000000_drop_plan.sql:1"
    assert ready.query("SELECT count(*) FROM information_schema.columns "
                       "WHERE table_name = 'accounts' AND column_name = 'plan'")[0][0] == 0
    _restore(ready, report)
    # The column comes back (at the end of the table) with every value where it was.
    assert ready.query(by_columns)[0][0] == before
    shown = ready.guard("restore-plan", report["run_id"])
    assert copy["copy"] in shown.stdout


@pytest.mark.parametrize(
    ("migration", "kind"),
    [
        ("drop table public.accounts;", "table"),
        ("truncate public.accounts;", "table"),
        ("delete from public.accounts a where a.plan = 'pro';", "rows"),
        ("update public.accounts set credits = 0, plan = 'free' where id <= 500;", "rows"),
        ("delete from public.accounts;", "rows"),
    ],
)
def test_destroyed_data_comes_back_exactly(ready: Project, migration: str, kind: str) -> None:
    before = _checksum(ready)
    ready.add("20240101000000_destroy.sql", migration + "\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    copy = result.report["protective_copies"][0]
    assert copy["kind"] == kind
    if "drop" in migration:
        assert not ready.table_exists("public.accounts")
    else:
        assert _checksum(ready) != before
    _restore(ready, result.report)
    assert _checksum(ready) == before


def test_copies_are_not_readable_by_public_or_api_roles(ready: Project) -> None:
    ready.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'authenticated') "
                "THEN CREATE ROLE authenticated NOLOGIN; END IF; END $$")
    ready.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'nobody_in_particular') "
                "THEN CREATE ROLE nobody_in_particular NOLOGIN; END IF; END $$")
    ready.add("20240101000000_drop.sql", "drop table public.accounts;\n")
    result = ready.guard("run")
    assert result.code == 0 and result.report is not None
    copy = result.report["protective_copies"][0]["copy"]
    for role in ("authenticated", "nobody_in_particular"):
        with psycopg.connect(ready.db_url, autocommit=True) as conn:
            conn.execute(f"SET ROLE {role}")
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(f"SELECT * FROM {copy}")


def test_a_failed_file_leaves_no_copy(ready: Project) -> None:
    ready.add("20240101000000_drop_then_fail.sql", "drop table public.accounts;\nselect 1/0;\n")
    result = ready.guard("run")
    assert result.code == 1
    assert result.report is not None and result.report["protective_copies"] == []
    assert ready.table_exists("public.accounts")
    copies = ready.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'guard_backup'")
    assert copies[0][0] == 0


def test_partial_failure_plan_carries_the_copy_sql(ready: Project) -> None:
    ready.add("20240101000000_delete.sql", "delete from public.accounts where credits > 90;\n")
    ready.add("20240102000000_fail.sql", "select 1/0;\n")
    result = ready.guard("run")
    assert result.code == 4 and result.report is not None
    steps = result.report["restore_plan"]["steps"]
    copy_step = next(s for s in steps if "protective copies" in s["title"])
    assert "INSERT INTO" in copy_step["commands"][0]


def test_too_large_tables_block_unless_accepted(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("protect:\n  max_bytes: 10kB\n")
    path = ready.add("20240101000000_drop.sql", "drop table public.accounts;\n")
    blocked = ready.guard("run")
    assert blocked.code == 3, blocked.output
    assert "above protect.max_bytes" in blocked.stderr and ready.table_exists("public.accounts")
    path.write_text("-- guard:allow drop-table archived to the warehouse in INC-12\ndrop table public.accounts;\n")
    result = ready.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    assert result.report["protective_copies"] == []
    assert any("protect.max_bytes" in w for w in result.report["warnings"])
    assert result.report["findings"][0]["accepted"] == "archived to the warehouse in INC-12"


def test_without_protection_a_destructive_statement_needs_a_pragma(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("protect:\n  enabled: false\n")
    path = ready.add("20240101000000_drop.sql", "drop table public.accounts;\n")
    blocked = ready.guard("run")
    assert blocked.code == 3, blocked.output
    assert "neither a protective copy nor confirmed PITR" in blocked.stderr
    assert "supabase/migrations/20240101000000_drop.sql:1" in blocked.stderr
    assert ready.manual_entries() == [] and ready.table_exists("public.accounts")
    path.write_text("drop table public.accounts; -- guard:allow drop-table replaced by accounts_v2 in 1.4\n")
    result = ready.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    assert result.report["protective_copies"] == []


def test_prune_drops_old_copies(ready: Project) -> None:
    ready.add("20240101000000_drop.sql", "drop table public.accounts;\n")
    assert ready.guard("run").code == 0
    assert ready.guard("backup", "prune", "--older-than", "30d").stdout.startswith("0 protective copies")
    ready.query("UPDATE guard.copies SET created_at = now() - interval '31 days'")
    pruned = ready.guard("backup", "prune", "--older-than", "30d")
    assert pruned.code == 0 and "1 protective copy" in pruned.stdout
    assert ready.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'guard_backup'")[0][0] == 0


def test_require_pitr_blocks_destructive_migrations_without_pitr(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("backups:\n  require_pitr: true\n")
    ready.add("20240101000000_drop.sql", "drop table public.accounts;\n")
    blocked = ready.guard("run")
    assert blocked.code == 3 and "require_pitr" in blocked.stderr
    assert ready.table_exists("public.accounts")
    ready.add("20240101000000_drop.sql", "create table public.harmless (id int);\n")
    assert ready.guard("run").code == 0  # nothing destructive: no PITR needed


def test_prune_forgets_the_row_hashes_of_runs_as_old_and_undo_says_so(ready: Project) -> None:
    """guard.run_rows holds an md5 of each value a run left in a column it added (and of each row
    it updated): made from the same rows as the copies, they expire with them. An undo of a run
    whose hashes are gone says it cannot tell rows written since from the run's own; --force
    undoes it."""
    ready.add("20240101000000_col.sql", "alter table public.accounts add column tier int not null default 1;\n")
    assert ready.guard("run").code == 0
    assert ready.query("SELECT count(*) FROM guard.run_rows")[0][0] > 0
    assert ready.guard("backup", "prune", "--older-than", "30d").code == 0
    assert ready.query("SELECT count(*) FROM guard.run_rows")[0][0] > 0  # not yet old
    ready.query("UPDATE guard.runs SET started_at = started_at - interval '31 days'")
    assert ready.guard("backup", "prune", "--older-than", "30d").code == 0
    assert ready.query("SELECT count(*) FROM guard.run_rows") == [(0,)]
    kept = ready.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "guard.run_rows) was pruned with its copies" in kept.output, kept.output
    assert "nothing undone" in kept.output and "--force overwrites" in kept.output, kept.output
    assert "tier" in [r[0] for r in ready.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'")]
    forced = ready.guard("undo", "--yes", "--force")  # at once: an undo that did nothing is none to undo first
    assert forced.code == 0, forced.output
    assert "tier" not in [r[0] for r in ready.query(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'accounts'")]
