"""Breaking the guarded run's safety net: a file that removes guard's own records of the run
(refused before its COMMIT, guard/protect/kept.py), and upserts that overwrite rows."""

from __future__ import annotations

import json
import subprocess
import sys

import psycopg
import pytest

from tests.safety_support import DATA, data, restore
from tests.support import Project, cover

ITEMS = ("CREATE TABLE public.items (id int PRIMARY KEY, label text);"
         "INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 10) g;")

# What a file does to guard's records, and the words the refusal names it with.
REMOVALS = {
    "drop schema cascade": ("DROP SCHEMA guard_backup CASCADE;", "the protective copy"),
    "truncate the registry": ("TRUNCATE guard.copies;", "guard.copies row"),
    "writable CTE deletes the registry": (
        "WITH gone AS (DELETE FROM guard.copies RETURNING copy) SELECT count(*) FROM gone;", "guard.copies row"),
    "writable CTE deletes the run": (
        "WITH gone AS (DELETE FROM guard.runs RETURNING run_id) SELECT count(*) FROM gone;", "journal entry"),
    "a function deletes the run": (
        "CREATE FUNCTION public.tidy() RETURNS void LANGUAGE sql AS 'DELETE FROM guard.runs';\nSELECT public.tidy();",
        "journal entry"),
    "guard.runs renamed": ("ALTER TABLE guard.runs RENAME TO runs_old;", "guard.runs"),
    "guard.runs column renamed": ("ALTER TABLE guard.runs RENAME COLUMN run_id TO id;", "guard.runs"),
    "guard.copies dropped": ("DROP TABLE guard.copies;", "guard.copies"),
    "the copy truncated": ("DO $$ BEGIN EXECUTE (SELECT format('TRUNCATE %s', copy) FROM guard.copies LIMIT 1); END $$;",
                           "emptied"),
    "the copy's rows deleted": (
        "DO $$ BEGIN EXECUTE (SELECT format('DELETE FROM %s WHERE id = 1', copy) FROM guard.copies LIMIT 1); END $$;",
        "deleted or changed"),
    "the run's id changed": ("UPDATE guard.runs SET run_id = 'elsewhere';", "journal entry"),
    # The tripwire, which reads guard.copies before, refuses it first (PostgreSQL's words).
    "a registry column dropped": ("ALTER TABLE guard.copies DROP COLUMN rows;", 'column "rows" does not exist'),
    "the copy moved away": (
        "DO $$ BEGIN EXECUTE (SELECT format('ALTER TABLE %s SET SCHEMA public', copy) FROM guard.copies LIMIT 1); "
        "END $$;", "the protective copy"),
}

# Statements a protective copy may come before: those files go one at a time even unretried.
ONE_AT_A_TIME = {"drop schema cascade", "truncate the registry", "guard.copies dropped", "the run's id changed",
                 "a registry column dropped", "writable CTE deletes the registry", "writable CTE deletes the run"}


def _settings(project: Project, lock_retries: int) -> None:
    if lock_retries:  # one file at a time (a retry needs the client between files)
        (project.root / "guard.yml").write_text(f"migrations:\n  lock_retries: {lock_retries}\n")


@pytest.mark.parametrize(("removal", "lock_retries"), cover(list(REMOVALS), [0, 1]))
def test_a_file_removing_guards_records_is_rolled_back_before_commit(ready: Project, removal: str,
                                                                      lock_retries: int) -> None:
    sql, named = REMOVALS[removal]
    _settings(ready, lock_retries)
    assert ready.guard("init").code == 0
    ready.query(ITEMS)
    ready.add("20240101000000_a.sql", "DELETE FROM public.items WHERE id <= 2;\n")
    ready.add("20240102000000_b.sql", "CREATE TABLE public.b (id int);\n")
    ready.add("20240103000000_c.sql", sql + "\n")
    ready.add("20240104000000_d.sql", "CREATE TABLE public.d (id int);\n")
    result = ready.guard("run")
    assert result.code == 4, result.output  # a and b committed before c failed
    assert result.report is not None
    statuses = [m["status"] for m in result.report["migrations"]]
    assert statuses == ["applied", "applied", "failed", "skipped"], result.output
    error = result.report["migrations"][2]["error"]
    assert named in error["message"] and error["sqlstate"] in ("GDKPT", "42703"), error
    path = result.report["migrations"][2]["path"]
    assert path == ("single" if lock_retries or removal in ONE_AT_A_TIME else "pipeline"), path
    assert ready.history() == ["20240101000000", "20240102000000"]
    assert not ready.table_exists("public.d")
    copy = result.report["protective_copies"][0]
    assert ready.query(f"SELECT count(*) FROM {copy['copy']}") == [(2,)]  # noqa: S608
    assert ready.query("SELECT count(*) FROM guard.copies WHERE copy = %s", (copy["copy"],)) == [(1,)]
    assert ready.query("SELECT count(*) FROM guard.runs WHERE run_id = %s", (result.report["run_id"],)) == [(1,)]
    # The printed restore still brings the rows back.
    restore(ready, result.report)
    assert ready.query("SELECT count(*) FROM public.items") == [(10,)]


# A run without copies: only its guard.runs row (and the table) to keep.
ONE_FILE = {
    "delete": ("DELETE FROM guard.runs;", "journal entry"),
    "a function": ("CREATE FUNCTION public.tidy() RETURNS void LANGUAGE sql AS 'DELETE FROM guard.runs';\n"
                   "SELECT public.tidy();", "journal entry"),
    "rename": ("ALTER TABLE guard.runs RENAME TO runs_old;", "guard.runs"),
    "drop cascade": ("DROP SCHEMA guard CASCADE;", "guard."),
}


@pytest.mark.parametrize(("case", "lock_retries"), cover(list(ONE_FILE), [0, 1]))
def test_a_one_file_run_removing_its_journal_entry_is_exit_1(ready: Project, case: str, lock_retries: int) -> None:
    sql, named = ONE_FILE[case]
    _settings(ready, lock_retries)
    assert ready.guard("init").code == 0
    ready.add("20240101000000_a.sql", f"CREATE TABLE public.a (id int);\n{sql}\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None and result.report["status"] == "failed_rolled_back"
    error = result.report["migrations"][0]["error"]
    assert named in error["message"], error
    if named == "journal entry":
        assert error["sqlstate"] == "GDKPT" and "invalid input syntax" not in error["message"], error
    assert ready.history() == [] and not ready.table_exists("public.a")


def test_a_file_that_copies_then_drops_its_own_copy_is_exit_1(ready: Project) -> None:
    # The copy made in the same transaction, then removed by the same file.
    ready.query(ITEMS)
    before = data(ready, "public.items")
    ready.add("20240101000000_a.sql", "DELETE FROM public.items WHERE id <= 3;\nDROP SCHEMA guard_backup CASCADE;\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert "the protective copy" in result.report["migrations"][0]["error"]["message"]  # type: ignore[index]
    assert data(ready, "public.items") == before and ready.history() == []


def test_reading_guards_records_is_not_removing_them(ready: Project) -> None:
    # Reads, a table of the file's own in guard_backup's neighbourhood, an UPDATE of another
    # run's row: nothing of this run's is gone, exit 0 on both paths.
    ready.query(ITEMS)
    ready.add("20240101000000_a.sql", "DELETE FROM public.items WHERE id <= 2;\n")
    ready.add("20240102000000_b.sql", "SELECT count(*) FROM guard.copies;\nSELECT count(*) FROM guard.runs;\n"
                                      "CREATE TABLE public.notes AS SELECT copy FROM guard.copies;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20240101000000", "20240102000000"]


def _as_psql(project: Project, sql: str, table: str) -> str:
    """The table's data after ``sql`` as psql would apply it (then rolled back)."""
    with psycopg.connect(project.db_url) as conn:
        conn.execute(sql)
        row = conn.execute(DATA.format(table=table)).fetchone()
        conn.rollback()
    return str(row[0]) if row else ""


# Upserts on a table that existed before the run: each overwrites rows, as an UPDATE does.
UPSERTS = {
    "values, column target": "INSERT INTO public.items VALUES (1, 'new'), (11, 'eleven') "
                             "ON CONFLICT (id) DO UPDATE SET label = EXCLUDED.label;",
    "on constraint": "INSERT INTO public.items VALUES (2, 'two') ON CONFLICT ON CONSTRAINT items_pkey "
                     "DO UPDATE SET label = EXCLUDED.label || '!';",
    "from a select, with WHERE": "insert into public.items (id, label) select g, 'x' || g from generate_series(5, 12) g "
                                 "on conflict (id) do update set label = excluded.label where items.id % 2 = 0;",
    "comment between DO and UPDATE": "INSERT INTO public.items VALUES (3, 'c') ON CONFLICT (id) DO /* yes */ "
                                     "UPDATE SET label = 'changed';",
    "unique column, no primary key": "INSERT INTO public.tags VALUES ('a', 100) ON CONFLICT (name) "
                                     "DO UPDATE SET n = tags.n + EXCLUDED.n;",
    "merge matched then update": "MERGE INTO public.items t USING (VALUES (4, 'm')) s(id, label) ON t.id = s.id "
                                 "WHEN MATCHED THEN UPDATE SET label = s.label "
                                 "WHEN NOT MATCHED THEN INSERT VALUES (s.id, s.label);",
}
TAGS = "CREATE TABLE public.tags (name text UNIQUE, n int); INSERT INTO public.tags VALUES ('a', 1), ('b', 2);"


@pytest.mark.parametrize(("upsert", "lock_retries"), cover(list(UPSERTS), [0, 1]))
def test_an_upsert_is_copied_first_and_its_restore_puts_the_rows_back(ready: Project, upsert: str,
                                                                       lock_retries: int) -> None:
    _settings(ready, lock_retries)
    ready.query(ITEMS)
    ready.query(TAGS)
    table = "public.tags" if "tags" in UPSERTS[upsert] else "public.items"
    before = data(ready, table)
    as_psql = _as_psql(ready, UPSERTS[upsert], table)
    assert as_psql != before  # the statement does overwrite something
    ready.add("20240101000000_a.sql", UPSERTS[upsert] + "\n")
    lint = ready.guard("lint", "--format", "json")
    assert ('"upsert"' in lint.stdout) == ("INSERT" in UPSERTS[upsert].upper()[:6]), lint.stdout
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"], result.output
    assert data(ready, table) == as_psql
    restore(ready, result.report)
    assert data(ready, table) == before


NOT_OVERWRITING = {
    "do nothing": "INSERT INTO public.items VALUES (1, 'new'), (12, 'twelve') ON CONFLICT (id) DO NOTHING;",
    "plain seed": "INSERT INTO public.items VALUES (13, 'thirteen');\nINSERT INTO public.items VALUES (14, 'x');",
    "upsert into a table of the run": "CREATE TABLE public.fresh (id int PRIMARY KEY, v text);\n"
                                      "INSERT INTO public.fresh VALUES (1, 'a') ON CONFLICT (id) DO UPDATE SET v = 'b';",
    "the words in a string": "INSERT INTO public.items VALUES (15, 'on conflict do update');",
}


@pytest.mark.parametrize("case", list(NOT_OVERWRITING))
def test_inserts_that_overwrite_nothing_stay_safe_and_streamed(ready: Project, case: str) -> None:
    ready.query(ITEMS)
    as_psql = _as_psql(ready, NOT_OVERWRITING[case], "public.items")
    ready.add("20240101000000_a.sql", NOT_OVERWRITING[case] + "\n")
    lint = ready.guard("lint", "--format", "json")
    assert '"upsert"' not in lint.stdout, lint.stdout
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and data(ready, "public.items") == as_psql
    if case in ("do nothing", "plain seed"):  # no parse, no copy: the fast path
        assert not result.report["protective_copies"] and result.report["migrations"][0]["path"] == "pipeline"
    if case == "the words in a string":  # parsed (the pre-filter's price), found to overwrite nothing
        assert not result.report["protective_copies"]


@pytest.mark.parametrize("statement", ["DELETE FROM public.items WHERE id <= 2;",
                                       "INSERT INTO public.items VALUES (1, 'x') ON CONFLICT (id) DO UPDATE SET label = 'x';"])
def test_a_retried_file_keeps_only_the_copies_of_the_attempt_that_committed(ready: Project, statement: str) -> None:
    # The first attempt makes its copy, then gives up waiting for a lock and rolls back (its
    # copy with it); the retry makes the copy again. The copy of the attempt that rolled back
    # is not one the file must leave in place, nor one the report lists.
    ready.query(ITEMS + "CREATE TABLE public.other (id int);")
    before = data(ready, "public.items")
    ready.add("20240101000000_a.sql", f"{statement}\nALTER TABLE public.other ADD COLUMN n int;\n")
    (ready.root / "guard.yml").write_text("migrations:\n  lock_timeout: 200ms\n  lock_retries: 3\n  lock_retry_delay: 1s\n")
    holder = psycopg.connect(ready.db_url)
    holder.execute("SELECT count(*) FROM public.other")
    proc = subprocess.Popen([sys.executable, "-m", "guard", "run"], cwd=ready.root, env=ready.env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
    assert proc.stderr is not None
    seen = []
    for line in proc.stderr:  # the lock goes once the first attempt has timed out
        seen.append(line)
        if "retry 1/3" in line:
            break
    holder.rollback()
    holder.close()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, out + "".join(seen) + err
    report = json.loads((ready.root / "guard-report.json").read_text())
    copies = report["protective_copies"]
    assert len(copies) == 1 and ready.table_exists(copies[0]["copy"]), copies
    assert not [w for w in report["warnings"] if "gone after COMMIT" in w], report["warnings"]
    restore(ready, report)
    assert data(ready, "public.items") == before


def test_in_one_transaction_a_file_removing_guards_records_rolls_back_the_release(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("migrations:\n  transaction: all\n")
    ready.query(ITEMS)
    before = data(ready, "public.items")
    ready.add("20240101000000_a.sql", "DELETE FROM public.items WHERE id <= 2;\n")
    ready.add("20240102000000_b.sql", "DROP SCHEMA guard_backup CASCADE;\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None and "the protective copy" in result.report["migrations"][1]["error"]["message"]
    assert data(ready, "public.items") == before and ready.history() == []


def test_guard_undo_puts_an_upserted_table_back(ready: Project) -> None:
    ready.query(ITEMS)
    before = data(ready, "public.items")
    ready.add("20240101000000_a.sql", UPSERTS["values, column target"] + "\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    undone = ready.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert data(ready, "public.items") == before
