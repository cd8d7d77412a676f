"""Breaking today's work as a new user would: the integrity lint rules on safe statements
(no false alarm) and on hidden forms (no miss), the pre-COMMIT check of guard's records and
the upsert's protective copy on files that are normal but unusual."""

from __future__ import annotations

import json

import pytest

from tests.safety_support import data, restore
from tests.support import Project, cover

ITEMS = ("CREATE TABLE public.items (id int PRIMARY KEY, label text);"
         "INSERT INTO public.items SELECT g, 'item ' || g FROM generate_series(1, 10) g;")

# Normal files after a protective copy (the DELETE): the check before COMMIT must pass them.
NORMAL = {
    "search_path elsewhere": "SET search_path = nowhere, pg_temp;\nCREATE TABLE public.n1 (id int);",
    "set role without guard's schema": "SET ROLE app_writer;\nINSERT INTO public.items VALUES (100, 'x');",
    "set local role": "SET LOCAL ROLE app_writer;\nSELECT count(*) FROM public.items;",
    "reset all": "SET search_path = nowhere;\nRESET ALL;\nCREATE TABLE public.n2 (id int);",
    "guard.kept set by the user": "SET guard.kept = 'nonsense';\nSELECT set_config('guard.kept', '[', true);",
    "session authorization": "SET SESSION AUTHORIZATION app_writer;\nSELECT 1;",
    "replication role": "SET session_replication_role = replica;\nUPDATE public.items SET label = 'y' WHERE id = 3;",
    "reads guard's records": "SELECT count(*) FROM guard.copies;\nSELECT * FROM guard.runs LIMIT 1;",
    "a temp table named runs": "CREATE TEMP TABLE runs (run_id text);\nCREATE TEMP TABLE copies (copy text);",
    "read only afterwards": "SET LOCAL default_transaction_read_only = on;",
}


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    ready.query("DO $$ BEGIN CREATE ROLE app_writer NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
                "GRANT USAGE ON SCHEMA public TO app_writer; GRANT ALL ON public.items TO app_writer;")
    return ready


@pytest.mark.parametrize(("case", "lock_retries"), cover(list(NORMAL), [0, 1]))
def test_a_normal_file_after_a_copy_is_never_refused(items: Project, case: str, lock_retries: int) -> None:
    if lock_retries:
        (items.root / "guard.yml").write_text("migrations:\n  lock_retries: 1\n")
    items.add("20240101000000_a.sql", "DELETE FROM public.items WHERE id <= 2;\n")
    items.add("20240102000000_b.sql", NORMAL[case] + "\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.history() == ["20240101000000", "20240102000000"]


# Upserts on unusual tables: a copy first, the run's restore (and guard undo) puts the rows back.
UPSERT_TABLES = {
    "quoted unicode name": (
        'CREATE TABLE public."Ümlaut Tåble" (id int PRIMARY KEY, "Label" text);'
        'INSERT INTO public."Ümlaut Tåble" SELECT g, \'l\' || g FROM generate_series(1, 5) g;',
        'public."Ümlaut Tåble"',
        'INSERT INTO public."Ümlaut Tåble" VALUES (1, \'new\'), (9, \'nine\') '
        'ON CONFLICT (id) DO UPDATE SET "Label" = EXCLUDED."Label";'),
    "partitioned": (
        "CREATE TABLE public.parts (id int, region text, v text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);"
        "CREATE TABLE public.parts_eu PARTITION OF public.parts FOR VALUES IN ('eu');"
        "CREATE TABLE public.parts_us PARTITION OF public.parts FOR VALUES IN ('us');"
        "INSERT INTO public.parts SELECT g, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END, 'v' || g "
        "FROM generate_series(1, 6) g;",
        "public.parts",
        "INSERT INTO public.parts VALUES (2, 'eu', 'changed'), (7, 'us', 'new') "
        "ON CONFLICT (id, region) DO UPDATE SET v = EXCLUDED.v;"),
    "generated and identity columns": (
        "CREATE TABLE public.gen (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, k text UNIQUE, n int, "
        "twice int GENERATED ALWAYS AS (n * 2) STORED);"
        "INSERT INTO public.gen (k, n) SELECT 'k' || g, g FROM generate_series(1, 5) g;",
        "public.gen",
        "INSERT INTO public.gen (k, n) VALUES ('k1', 100), ('k9', 9) ON CONFLICT (k) DO UPDATE SET n = EXCLUDED.n;"),
    "row security forced": (
        "CREATE TABLE public.secret (id int PRIMARY KEY, owner text, v text);"
        "INSERT INTO public.secret SELECT g, 'o' || (g % 2), 'v' || g FROM generate_series(1, 6) g;"
        "ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY; ALTER TABLE public.secret FORCE ROW LEVEL SECURITY;"
        "CREATE POLICY only_o1 ON public.secret USING (owner = 'o1');",
        "public.secret",
        "INSERT INTO public.secret VALUES (1, 'o1', 'changed') ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v;"),
    "DO UPDATE with WHERE, aliased": (
        ITEMS, "public.items",
        "INSERT INTO public.items AS i VALUES (1, 'a'), (2, 'b'), (20, 'c') "
        "ON CONFLICT (id) DO UPDATE SET label = i.label || EXCLUDED.label WHERE i.id % 2 = 0;"),
    "upsert after SET ROLE": (
        ITEMS + "DO $$ BEGIN CREATE ROLE app_writer NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
        "GRANT USAGE ON SCHEMA public TO app_writer; GRANT ALL ON public.items TO app_writer;",
        "public.items",
        "SET ROLE app_writer;\nINSERT INTO public.items VALUES (3, 'as app') ON CONFLICT (id) DO UPDATE "
        "SET label = EXCLUDED.label;\nDELETE FROM public.items WHERE id = 4;"),
    "search_path elsewhere": (
        ITEMS, "public.items",
        "SET search_path = nowhere;\nINSERT INTO public.items VALUES (3, 'x') ON CONFLICT (id) DO UPDATE "
        "SET label = EXCLUDED.label;"),
}


@pytest.mark.parametrize("case", list(UPSERT_TABLES))
def test_an_upsert_on_an_unusual_table_is_copied_and_undone(ready: Project, case: str) -> None:
    setup, table, upsert = UPSERT_TABLES[case]
    ready.query(setup)
    before = data(ready, table)
    ready.add("20240101000000_a.sql", upsert + "\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"], result.output
    assert data(ready, table) != before
    undo = ready.guard("undo", "--yes")
    assert undo.code == 0, undo.output
    assert data(ready, table) == before


WRITING_CTES = {
    "upsert": "WITH u AS (INSERT INTO public.items VALUES (1, 'over'), (30, 'new') ON CONFLICT (id) "
              "DO UPDATE SET label = EXCLUDED.label RETURNING id) SELECT count(*) FROM u;",
    "delete": "with gone as (delete from public.items where id < 4 returning *) select count(*) from gone;",
    "update and delete, two tables": (
        'WITH u AS (UPDATE public.items SET label = \'x\' WHERE id > 5 RETURNING id), '
        'd AS (DELETE FROM public."Other Ünïcode" WHERE id = 1 RETURNING id) '
        'SELECT (SELECT count(*) FROM u) + (SELECT count(*) FROM d);'),
    "archive: delete into an insert": "WITH d AS (DELETE FROM public.items WHERE id <= 3 RETURNING *) "
                                      'INSERT INTO public."Other Ünïcode" SELECT id FROM d;',
    "update feeding a delete": "WITH u AS (UPDATE public.items SET label = 'moved' WHERE id = 9 RETURNING id) "
                               "DELETE FROM public.items WHERE id = 10;",
    "a plain insert beside a delete": "WITH i AS (INSERT INTO public.items VALUES (40, 'n') RETURNING id), "
                                      "d AS (DELETE FROM ONLY public.items WHERE id = 7 RETURNING id) SELECT 1;",
}


OTHER = 'public."Other Ünïcode"'


def _both(project: Project, case: str) -> str:
    """items, and the other table where the case destroys in it (rows an INSERT added stay)."""
    inserts = f"INSERT INTO {OTHER}" in WRITING_CTES[case]
    return data(project, "public.items") + ("" if inserts else data(project, OTHER))


@pytest.mark.parametrize("undo", [False, True])
@pytest.mark.parametrize("case", list(WRITING_CTES))
def test_a_writing_with_query_is_copied_first_and_put_back(ready: Project, case: str, undo: bool) -> None:
    # Before: refused by the tripwire ("deleted 2 row(s) ... without a protective copy"): a
    # failed deploy for a statement the Protector can keep.
    ready.query(ITEMS + f"CREATE TABLE {OTHER} (id int); INSERT INTO {OTHER} VALUES (1), (2);")
    before = _both(ready, case)
    ready.add("20240101000000_a.sql", WRITING_CTES[case] + "\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"], result.output
    assert _both(ready, case) != before
    if undo:
        undone = ready.guard("undo", "--yes")
        assert undone.code == 0, undone.output
    else:
        restore(ready, result.report)
    assert _both(ready, case) == before


def test_a_select_with_a_read_only_with_query_makes_no_copy(ready: Project) -> None:
    ready.query(ITEMS)
    ready.add("20240101000000_a.sql", "WITH x AS (SELECT id FROM public.items) SELECT count(*) FROM x "
                                      "WHERE 'update' <> 'delete';\nSELECT 1 AS insert_count;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"] == [], result.output


def test_many_copies_in_one_run_pass_the_check_and_undo(ready: Project) -> None:
    # Each file's check before COMMIT reads every copy the run made so far (three files,
    # 40 tables each, some names needing quotes): none refused, all put back by guard undo.
    names = [f'public."T {i} Ä"' if i % 3 == 0 else f"public.t{i}" for i in range(120)]
    ready.query("".join(f"CREATE TABLE {n} (id int PRIMARY KEY, v text); INSERT INTO {n} VALUES (1, 'a'), (2, 'b');"
                        for n in names))
    before = [data(ready, n) for n in names]
    for f in range(3):
        ready.add(f"2024010{f + 1}000000_f.sql", "".join(
            f"DELETE FROM {n} WHERE id = 1;\nINSERT INTO {n} VALUES (2, 'z') ON CONFLICT (id) DO UPDATE SET v = 'y';\n"
            for n in names[f * 40:(f + 1) * 40]))
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and len(result.report["protective_copies"]) == 240, result.output
    assert [data(ready, n) for n in names] != before
    undone = ready.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert [data(ready, n) for n in names] == before


# --- the integrity lint rules --------------------------------------------------------------

LINT_SCHEMA = ("create table public.tickets (id bigserial primary key, title text);\n"
               "create table public.authors (id int primary key);\n"
               "create table public.books (id int primary key, author_id int references public.authors (id));\n"
               "create table public.events (id int primary key);\n")

# Safe statements: each must lint clean, with and without a database.
SAFE = {
    "setval of a serial made in the file": "create table public.t1 (id serial primary key);\n"
                                           "insert into public.t1 values (1), (2);\n"
                                           "select setval('public.t1_id_seq', 2);",
    "restart of an identity's sequence made in the file": "create table t2 (id bigint generated always as identity);\n"
                                                          "alter sequence t2_id_seq restart with 10;",
    "setval of a quoted serial made in the file": 'create table "My T" (id bigserial);\n'
                                                  "select setval('\"My T_id_seq\"', 5, false);",
    "setval via pg_get_serial_sequence of a new table": 'create table "Up" (id serial);\n'
                                                        "select setval(pg_get_serial_sequence('\"Up\"', 'id'), 9);",
    "setval to max(id)": "select setval('public.tickets_id_seq', (select max(id) from public.tickets));",
    "setval to coalesce(max)+1, false": "select setval('tickets_id_seq', coalesce(max(id), 0) + 1, false) "
                                        "from public.tickets;",
    "setval in upper case, computed": "SELECT SETVAL('PUBLIC.TICKETS_ID_SEQ', (SELECT MAX(ID) FROM TICKETS));",
    "lock on a table made in the file": "create table public.fresh (id int);\nlock table public.fresh;",
    "RLS right before its policy": "alter table public.events enable row level security;\n"
                                   "create policy p on events for select using (true);",
    "required column with a default expression": "alter table public.events add column at timestamptz "
                                                 "not null default now();",
    "required column on a table made in the file": "create table public.f2 (id int);\n"
                                                   "alter table public.f2 add column c int not null;",
    "upsert doing nothing": "insert into public.events values (1) on conflict (id) do nothing;",
    "upsert into a table made in the file": "create table public.u (id int primary key, v int);\n"
                                            "insert into public.u values (1, 1) on conflict (id) do update set v = 2;",
    "replication role back to origin": "select set_config('session_replication_role', 'origin', true);",
}

# Hidden forms of what the rules are for: each must be found.
HIDDEN = {
    "setval with a cast constant": ("select setval('public.tickets_id_seq', 1::bigint);", "sequence-restart"),
    "setval through pg_get_serial_sequence": (
        "select setval(pg_get_serial_sequence('public.tickets', 'id'), 1);", "sequence-restart"),
    "PERFORM setval in a DO block": (
        "do $$ begin perform setval('public.tickets_id_seq', 1); end $$;", "sequence-restart"),
    "PERFORM set_config in a DO block": (
        "do $$ begin perform set_config('session_replication_role', 'replica', true); end $$;", "triggers-disabled"),
    "set_config local in a select": (
        "select pg_catalog.set_config('session_replication_role', 'replica', true);", "triggers-disabled"),
    "IF EXISTS ONLY, quoted": ('alter table if exists only "public"."books" disable trigger all;', "triggers-disabled"),
    "search_path then a bare name": ("set search_path = public;\nalter sequence tickets_id_seq restart with 1;",
                                     "sequence-restart"),
    "a serial made in the file does not hide an older one": (
        "create table public.t9 (id serial);\nselect setval('public.tickets_id_seq', 1);", "sequence-restart"),
}


def _lint(project: Project, body: str, *args: str) -> list[dict[str, object]]:
    project.add("20240101000000_schema.sql", LINT_SCHEMA)
    project.add("20240102000000_x.sql", body + "\n")
    result = project.guard("lint", "--format", "json", *args, "supabase/migrations/20240102000000_x.sql")
    assert result.code in (0, 3), result.output
    found: list[dict[str, object]] = json.loads(result.stdout)
    return found


RULES = {"lock-table", "sequence-restart", "row-security-no-policy", "triggers-disabled", "add-required-column",
         "upsert"}


@pytest.mark.parametrize("with_database", [False, True])
@pytest.mark.parametrize("case", list(SAFE))
def test_a_safe_statement_is_not_flagged(project: Project, case: str, with_database: bool) -> None:
    if with_database:
        project.query(LINT_SCHEMA)
    found = _lint(project, SAFE[case], *(() if with_database else ("--database-url", "")))
    assert [f for f in found if f["rule"] in RULES] == []


@pytest.mark.parametrize("case", list(HIDDEN))
def test_a_hidden_form_is_found(project: Project, case: str) -> None:
    body, rule = HIDDEN[case]
    found = _lint(project, body, "--database-url", "")
    assert rule in {f["rule"] for f in found}, found
