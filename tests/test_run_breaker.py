"""Inputs a breaker found against the guarded run: each is a migration psql applies (or a
database a real project has) that guard must apply as written, with the invariant kept (the
data before, the run, then the report's restore SQL gives the same data back)."""

from __future__ import annotations

import psycopg
import pytest

from tests.safety_support import DATA, data, restore, run_with_copies
from tests.support import Project

ITEMS = ("CREATE TABLE public.items (id int PRIMARY KEY, label text, deleted boolean NOT NULL DEFAULT false);"
         "INSERT INTO public.items (id, label) SELECT g, 'item ' || g FROM generate_series(1, 10) g;"
         "CREATE TABLE public.audit (id serial PRIMARY KEY, note text);")

# Rules on the table a DELETE or UPDATE names: PostgreSQL refuses a data-modifying WITH
# over them ("DO ALSO rules are not supported for data-modifying statements in WITH",
# "cannot perform DELETE RETURNING ... no unconditional ON DELETE DO INSTEAD rule with a
# RETURNING clause"), where psql runs the statement as written. Guard's rewrite into
# WITH ... RETURNING made such a file fail (exit 1) that psql applies.
RULES = {
    "soft delete (DO INSTEAD UPDATE)":
        "CREATE RULE soft AS ON DELETE TO public.items DO INSTEAD "
        "UPDATE public.items SET deleted = true WHERE id = OLD.id",
    "audit (DO ALSO INSERT)":
        "CREATE RULE audit AS ON DELETE TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('deleted ' || OLD.id)",
    "conditional DO INSTEAD NOTHING":
        "CREATE RULE keep_one AS ON DELETE TO public.items WHERE OLD.id = 1 DO INSTEAD NOTHING",
    "update audit (DO ALSO INSERT)":
        "CREATE RULE audit_upd AS ON UPDATE TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('updated ' || OLD.id)",
    # A rule on INSERT alone: the statement is rewritten as usual, but restore SQL cannot be
    # INSERT ... ON CONFLICT ("cannot be used with table that has INSERT or UPDATE rules").
    "insert audit (ON INSERT DO ALSO)":
        "CREATE RULE audit_ins AS ON INSERT TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('inserted ' || NEW.id)",
    "update redirected (conditional DO INSTEAD)":
        "CREATE RULE frozen AS ON UPDATE TO public.items WHERE OLD.id > 8 DO INSTEAD NOTHING",
}
STATEMENTS = {
    "delete": "DELETE FROM public.items WHERE id <= 3;\n",
    "update": "UPDATE public.items SET label = 'renamed' WHERE id IN (1, 2, 9, 10);\n",
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("statement", list(STATEMENTS))
def test_a_delete_or_update_of_a_table_with_rules_runs_as_psql_runs_it(
        ready: Project, rule: str, statement: str) -> None:
    ready.query(ITEMS)
    ready.query(RULES[rule])
    before = data(ready, "public.items")
    with psycopg.connect(ready.db_url) as conn:  # what psql leaves, in a transaction rolled back
        conn.execute(STATEMENTS[statement])
        as_psql = conn.execute(DATA.format(table="public.items")).fetchone()
        conn.rollback()
    report = run_with_copies(ready, "20240101000000_a.sql", STATEMENTS[statement])
    assert report["status"] == "applied"
    assert data(ready, "public.items") == (as_psql or [None])[0]
    restore(ready, report)
    assert data(ready, "public.items") == before


def _owner_with_rows(project: Project) -> None:
    project.query("DO $$ BEGIN CREATE ROLE brk_owner NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")
    project.query(ITEMS)
    project.query("ALTER TABLE public.items OWNER TO brk_owner")


@pytest.mark.parametrize("sql", ["drop owned by brk_owner;", "DROP OWNED BY brk_owner, brk_owner CASCADE;"])
def test_drop_owned_is_destructive_for_lint_check_and_run(ready: Project, sql: str) -> None:
    # DROP OWNED BY took the owner's tables with their rows; lint called it safe and
    # `guard check` said the run would proceed (the run's tripwire then rolled it back).
    _owner_with_rows(ready)
    before = data(ready, "public.items")
    ready.add("20240101000000_a.sql", sql + "\n")
    lint = ready.guard("lint", "--format", "json")
    assert lint.code == 3 and '"drop-owned"' in lint.stdout, lint.output
    check = ready.guard("check")
    assert check.code == 3 and check.report is not None and check.report["status"] == "blocked", check.output
    run = ready.guard("run")
    assert run.code == 3 and "DROP OWNED" in run.output, run.output
    assert run.report is not None and run.report["status"] == "blocked" and run.report["database_changed"] is False
    assert data(ready, "public.items") == before and ready.history() == []


def test_drop_owned_accepted_by_a_pragma_runs(ready: Project) -> None:
    _owner_with_rows(ready)
    ready.add("20240101000000_a.sql", "-- guard:allow drop-owned the owner's tables are retired\n"
                                      "drop owned by brk_owner;\n")
    run = ready.guard("run", "--reason", "retire")
    assert run.code == 0, run.output
    assert not ready.table_exists("public.items")
    assert run.report is not None and any(f["rule"] == "drop-owned" and f["accepted"] for f in run.report["findings"])


# A later file of the run removes guard's own records of it. Before, each ran exit 0
# "applied": a protective copy dropped with its rows (the deleted rows then kept nowhere),
# or the run's journal entry gone (guard undo and restore-plan could not find the run). Now
# the file is refused before its COMMIT (guard/protect/kept.py): the earlier file stays
# committed (exit 4), the file that removed them rolled back, naming what it removed.
FIGHTS = {
    "copies' schema dropped": ("drop schema guard_backup cascade;\n", "the protective copy", "kept nowhere else"),
    "the copy dropped by name": ("do $$ begin execute (select format('drop table %s', copy) from guard.copies "
                                 "limit 1); end $$;\n", "the protective copy", "kept nowhere else"),
    "copy registry emptied": ("delete from guard.copies;\n", "guard.copies row", "no longer knows"),
    "journal row deleted": ("delete from guard.runs;\n", "journal entry", "cannot find the run"),
}


@pytest.mark.parametrize("fight", list(FIGHTS))
def test_a_file_removing_guards_records_of_the_run_is_rolled_back(ready: Project, fight: str) -> None:
    sql, what, consequence = FIGHTS[fight]
    assert ready.guard("init").code == 0
    ready.query(ITEMS)
    ready.add("20240101000000_a.sql", "delete from public.items where id <= 2;\n")
    ready.add("20240102000000_b.sql", sql)
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None and result.report["status"] == "failed_partially_applied"
    failed = result.report["migrations"][1]
    assert failed["status"] == "failed" and what in failed["error"]["message"], failed
    assert consequence in failed["error"]["message"], failed
    assert ready.history() == ["20240101000000"]
    copy = result.report["protective_copies"][0]["copy"]
    assert ready.query(f"SELECT count(*) FROM {copy}") == [(2,)]  # noqa: S608


def test_a_run_whose_records_stay_is_applied(ready: Project) -> None:
    # The same shapes that leave guard's records alone: exit 0, no warning.
    assert ready.guard("init").code == 0
    ready.query(ITEMS)
    ready.add("20240101000000_a.sql", "delete from public.items where id <= 2;\n")
    ready.add("20240102000000_b.sql", "select count(*) from guard.copies;\nselect count(*) from guard.runs;\n")
    result = ready.guard("run", GUARD_PROTECT_RETENTION="1min")
    assert result.code == 0, result.output
    assert result.report is not None and not [w for w in result.report["warnings"] if "gone after COMMIT" in w]
