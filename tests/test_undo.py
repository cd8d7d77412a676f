"""`guard undo` round trips on a real PostgreSQL: for each release shape, the catalog
fingerprint and every table's checksum before the run equal those after `guard undo --yes`."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from guard import fingerprint
from guard.undo.catalog import checksum, fingerprint_json
from tests.fakes import FakeSupabase
from tests.support import Project

SCHEMA = '''
CREATE TYPE public.mood AS ENUM ('sad', 'ok');
CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL UNIQUE, plan text DEFAULT 'free',
                              credits int NOT NULL DEFAULT 0, mood public.mood, seen timestamptz);
CREATE INDEX accounts_plan ON public.accounts (plan);
CREATE TABLE public.orders (id int PRIMARY KEY, account int REFERENCES public.accounts (id), total numeric(10, 2));
INSERT INTO public.accounts SELECT g, 'u' || g || '@example.com', CASE WHEN g % 3 = 0 THEN 'pro' ELSE 'free' END,
       g % 100, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'sad' END::public.mood, now() - g * interval '1 day'
  FROM generate_series(1, 300) g;
INSERT INTO public.orders SELECT g, g % 300 + 1, g * 1.5 FROM generate_series(1, 500) g;
CREATE TABLE public.events (id bigserial PRIMARY KEY, "Kind" text DEFAULT 'x');
INSERT INTO public.events ("Kind") SELECT 'k' || g FROM generate_series(1, 40) g;
CREATE TABLE public."OddName" (id int PRIMARY KEY, "Mixed Col" text DEFAULT 'it''s', n int);
INSERT INTO public."OddName" SELECT g, 'v' || g, g FROM generate_series(1, 20) g;
CREATE TABLE public.logins (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz NOT NULL);
INSERT INTO public.logins (at) SELECT now() - g * interval '1 hour' FROM generate_series(1, 30) g;
'''
USER_TABLES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'guard', 'guard_backup', 'supabase_migrations')
   AND c.relname <> 'backup_logs'
"""


def state(project: Project) -> tuple[dict[str, str], dict[str, str]]:
    """(catalog fingerprint, checksum of each user table by name): compared by column name."""
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        fp = fingerprint_json(fingerprint.take(conn))
        tables = {r[0]: checksum(conn, r[0]) for r in conn.execute(USER_TABLES).fetchall()}
    return fp, tables


@pytest.fixture
def shop(ready: Project) -> Project:
    ready.query(SCHEMA)
    return ready


SHAPES: dict[str, list[str]] = {
    "drop_column": ["alter table public.accounts drop column plan;\n"],
    "drop_table": ["drop table public.orders;\n"],
    "delete_rows": ["delete from public.orders where total > 300;\n"],
    "update_volatile": ["update public.accounts set credits = credits + 1000, seen = clock_timestamp() "
                        "where seen < clock_timestamp() - interval '100 days';\n"],
    "add_column_default": ["alter table public.accounts add column tier text not null default 'basic';\n"],
    "create_index": ["create index orders_total on public.orders (total);\n"],
    "alter_column_type": ["alter table public.orders alter column total type text;\n"],
    "rename": ["alter table public.orders rename to purchases;\n"
               "alter table public.accounts rename column email to mail;\n"],
    "multi_file_third_fails": [
        "alter table public.accounts drop column seen;\n",
        "create table public.notes (id int primary key, body text);\ninsert into public.notes values (1, 'a');\n",
        "alter table public.orders add column note text;\nselect 1 / 0;\n",
    ],
    "drop_serial_and_identity_tables": [
        "drop table public.events;\n",
        "drop table public.logins;\n",
    ],
    "quoted_names": ['alter table public."OddName" drop column "Mixed Col";\n'
                     'delete from public."OddName" where n > 15;\n'
                     'alter table public."OddName" rename to "StillOdd";\n'],
    "create_table": ["create table public.tags (id int primary key, label text);\n"
                     "insert into public.tags values (1, 'new');\n"],
    # Renames with rows written: the copies call a column by its name when they were made,
    # the undo writes by the names before the run (the renames go back first).
    "rename_column_then_update": ["alter table public.accounts rename column plan to tier;\n"
                                  "update public.accounts set tier = 'gold' where id <= 10;\n"],
    "rename_column_then_delete": ["alter table public.orders rename column total to amount;\n"
                                  "delete from public.orders where amount > 300;\n"],
    "update_then_rename_column": ["update public.accounts set credits = 0 where id < 50;\n"
                                  "alter table public.accounts rename column credits to balance;\n"],
    "rename_key_then_delete": ["alter table public.orders rename column id to order_id;\n"
                               "delete from public.orders where order_id > 450;\n"],
    "rename_key_then_update": ['alter table public."OddName" rename column id to "Key Id";\n'
                               'update public."OddName" set n = n * 100 where "Key Id" > 5;\n'],
    "rename_table_and_column_then_delete": ["alter table public.orders rename to purchases;\n"
                                            "alter table public.purchases rename column total to amount;\n"
                                            "delete from public.purchases where amount > 600;\n"],
    "rename_in_one_file_update_in_the_next": ["alter table public.accounts rename column email to mail;\n",
                                              "update public.accounts set mail = 'x' || mail where id > 290;\n"],
    "add_column_then_delete": ["alter table public.orders add column note text default 'n';\n"
                               "delete from public.orders where id > 400;\n"],
    "rename_then_retype": ["alter table public.orders rename column total to amount;\n"
                           "alter table public.orders alter column amount type text;\n"],
    "merge": ["merge into public.orders o using (select g as id from generate_series(1, 50) g) s on o.id = s.id "
              "when matched and o.id > 40 then delete when matched then update set total = 0;\n"],
    "rename_table_then_drop": ["alter table public.orders rename to purchases;\n"
                               "drop table public.purchases;\n"],
    "rename_column_then_merge": ["alter table public.orders rename column total to amount;\n"
                                 "merge into public.orders o using (select 1 as id) s on o.id = s.id "
                                 "when matched then update set amount = 0;\n"],
}


def run_then_dry_undo(shop: Project, shape: str, files: list[str], codes: tuple[int, ...] = (0, 4)) -> Any:
    """Apply ``files`` (exit in ``codes``), then `guard undo` without --yes: it would do
    something and changes nothing. Returns the state before the run."""
    before = state(shop)
    for n, text in enumerate(files, start=1):
        shop.add(f"2024010100000{n}_{shape}.sql", text)
    run = shop.guard("run")
    assert run.code in codes, run.output
    assert "could not record" not in run.output
    after_run = state(shop)
    assert after_run != before and shop.history()

    dry = shop.guard("undo")
    assert dry.code == 0, dry.output
    assert "would" in dry.stdout and state(shop) == after_run  # a dry run changes nothing
    return before


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_undo_puts_catalog_and_data_back(shop: Project, shape: str) -> None:
    before = run_then_dry_undo(shop, shape, SHAPES[shape])

    undone = shop.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert state(shop) == before
    assert shop.history() == []  # as `supabase migration repair --status reverted`
    again = shop.guard("undo")
    assert again.code == 3 and "nothing to undo" in again.output


def _undo_rows(project: Project) -> list[tuple[Any, ...]]:
    return project.query("SELECT command, status, exit_code, reason FROM guard.runs WHERE command = 'undo'")


def test_undo_writes_its_journal_row_and_backup_log_entry(shop: Project) -> None:
    shop.add("20240101000001_drop.sql", "alter table public.orders drop column total;\n")
    run = shop.guard("run")
    assert run.code == 0 and run.report is not None
    assert shop.guard("undo", "--yes").code == 0
    assert _undo_rows(shop) == [("undo", "undone", 0, f"undo of run {run.report['run_id']}")]
    entries = [e for e in shop.manual_entries() if e["metadata"].get("undo_of")]
    assert len(entries) == 1 and entries[0]["metadata"]["path"] == "local"
    copies = shop.query("SELECT count(*) FROM pg_tables WHERE schemaname = 'guard_backup' AND tablename LIKE 'undo_%'")
    assert copies[0][0] >= 1  # the present state, copied before the undo


def test_table_written_since_is_kept_without_force(shop: Project) -> None:
    shop.add("20240101000001_tags.sql", "create table public.tags (id int primary key, label text);\n")
    assert shop.guard("run").code == 0
    shop.query("INSERT INTO public.tags VALUES (7, 'written by the app')")

    kept = shop.guard("undo", "--yes")
    assert kept.code == 4, kept.output
    assert "public.tags: kept, the application wrote to it since the run" in kept.stdout
    assert shop.query("SELECT label FROM public.tags") == [("written by the app",)]
    assert shop.history() == ["20240101000001"]  # its effect remains


def test_force_drops_a_table_written_since(shop: Project) -> None:
    before = state(shop)
    shop.add("20240101000001_tags.sql", "create table public.tags (id int primary key, label text);\n")
    assert shop.guard("run").code == 0
    shop.query("INSERT INTO public.tags VALUES (7, 'written by the app')")
    assert shop.guard("undo", "--yes", "--force").code == 0
    assert state(shop) == before


def test_enum_value_cannot_be_removed_and_undo_says_so(shop: Project) -> None:
    before = state(shop)
    shop.add("20240101000001_mood.sql", "alter type public.mood add value 'glad';\n"
             "alter table public.accounts add column note text;\n")
    assert shop.guard("run").code == 0
    dry = shop.guard("undo")
    assert dry.code == 0
    assert "value 'glad' stays; PostgreSQL cannot remove a value from an enum type" in dry.stdout
    result = shop.guard("undo", "--yes")
    assert result.code == 4, result.output
    assert "cannot invert: type public.mood: value 'glad' stays" in result.stdout
    fp, tables = state(shop)
    assert tables == before[1]
    assert {k for k in set(fp) | set(before[0]) if fp.get(k) != before[0].get(k)} == {"type public.mood"}


def test_verify_style_failure_after_commit_then_undo(shop: Project) -> None:
    """A release that committed and was found wrong afterwards (exit 0 here) is undone by id."""
    before = state(shop)
    shop.add("20240101000001_a.sql", "update public.orders set total = 0;\n")
    run = shop.guard("run")
    assert run.code == 0 and run.report is not None
    assert shop.guard("undo", run.report["run_id"], "--yes").code == 0
    assert state(shop) == before


def test_undo_refuses_an_earlier_run_while_a_later_one_stands(shop: Project) -> None:
    shop.add("20240101000001_a.sql", "alter table public.orders add column a int;\n")
    first = shop.guard("run")
    shop.add("20240101000002_b.sql", "alter table public.orders add column b int;\n")
    assert shop.guard("run").code == 0 and first.report is not None
    refused = shop.guard("undo", first.report["run_id"], "--yes")
    assert refused.code == 3 and "undo it first" in refused.output


# ------------------------------------------------------------------ whole-database paths

TOKEN = "sbp_undo_test_token_0123456789"


@pytest.fixture
def api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=TOKEN).start()
    yield fake
    fake.stop()


def _supabase_project(project: Project, api: FakeSupabase, *, restore_point: bool) -> None:
    project.init_backup_log()
    api.backup_at(dt.timedelta(hours=5))
    sink = (f"    - type: supabase-restore-point\n      project_ref: {api.ref}\n      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n"
            f"      api_url: {api.url}\n      poll: 100ms\n") if restore_point else ""
    (project.root / "guard.yml").write_text(
        f"backups:\n  providers:\n    - type: supabase\n      project_ref: {api.ref}\n"
        f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: {api.url}\n"
        "log:\n  sinks:\n" + sink + "    - type: table\n"
    )


def _platform_calls(api: FakeSupabase) -> list[tuple[str, str, Any]]:
    return [(r["method"], r["path"], r["body"]) for r in api.requests
            if r["path"].endswith(("/undo", "/restore-pitr")) or r["path"] == f"/v1/projects/{api.ref}"]


def test_whole_database_undo_to_the_runs_restore_point(project: Project, api: FakeSupabase) -> None:
    _supabase_project(project, api, restore_point=True)
    project.add("20240101000001_a.sql", "create table public.a (id int);\n")
    run = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN)
    assert run.code == 0 and run.report is not None, run.output
    point = run.report["run_id"][:20]

    dry = project.guard("undo", "--whole-database", SUPABASE_ACCESS_TOKEN=TOKEN)
    assert dry.code == 0, dry.output
    assert f'POST /v1/projects/{api.ref}/database/backups/undo {{"name": "{point}"}}' in dry.stdout
    assert "every write of the last" in dry.stdout and f"needs --confirm {api.ref}" in dry.stdout
    unconfirmed = project.guard("undo", "--whole-database", "--yes", SUPABASE_ACCESS_TOKEN=TOKEN)
    wrong = project.guard("undo", "--whole-database", "--yes", "--confirm", "zzzzzzzzzzzzzzzzzzzz",
                          SUPABASE_ACCESS_TOKEN=TOKEN)
    assert unconfirmed.code == 3 and wrong.code == 3
    assert _platform_calls(api) == []  # the confirmation rule: nothing sent

    done = project.guard("undo", "--whole-database", "--yes", "--confirm", api.ref, "--poll", "50ms",
                         SUPABASE_ACCESS_TOKEN=TOKEN)
    assert done.code == 0, done.output
    base = f"/v1/projects/{api.ref}"
    assert _platform_calls(api) == [("POST", f"{base}/database/backups/undo", {"name": point}),
                                    ("GET", base, None), ("GET", base, None), ("GET", base, None)]
    assert "RESTORING" in done.stderr and "COMING_UP" in done.stderr
    assert TOKEN not in done.output
    assert _undo_rows(project) == [("undo", "undone", 0, f"undo of run {run.report['run_id']}")]


def test_pitr_when_nothing_can_be_inverted_locally_and_a_restore_that_does_not_finish(
        project: Project, api: FakeSupabase) -> None:
    _supabase_project(project, api, restore_point=False)
    api.pitr_enabled = True
    now = int(dt.datetime.now(dt.timezone.utc).timestamp())
    api.physical = {"earliest_physical_backup_date_unix": now - 86400, "latest_physical_backup_date_unix": now - 60}
    project.add("20240101000001_a.sql", "create table public.a (id int);\n")
    run = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN)
    assert run.code == 0 and run.report is not None, run.output
    # A run guard recorded no catalog for (an older guard): nothing to invert locally.
    project.query("DELETE FROM guard.run_catalogs")
    api.statuses_after_restore = ["RESTORING"] * 50
    result = project.guard("undo", "--yes", "--confirm", api.ref, "--poll", "50ms", "--wait", "1s",
                           SUPABASE_ACCESS_TOKEN=TOKEN)
    assert result.code == 4, result.output
    target = run.report["restore_target"]["unix"]
    assert api.restores == [("restore-pitr", {"recovery_time_target_unix": math.floor(target)})]
    assert "the project is RESTORING" in result.stdout and f"GET /v1/projects/{api.ref}" in result.stdout
    polls = [c for c in _platform_calls(api) if c[0] == "GET"]
    assert 3 <= len(polls) <= 25


def test_nothing_local_and_no_platform_path_refuses_with_the_manual_plan(ready: Project) -> None:
    ready.add("20240101000001_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0
    ready.query("DELETE FROM guard.run_catalogs")
    for args in (("undo",), ("undo", "--yes")):
        refused = ready.guard(*args)
        assert refused.code == 3, refused.output
        assert "no Supabase restore point or PITR" in refused.stdout and "manual: restore the newest daily backup" in refused.stdout
    assert ready.table_exists("public.a")


def test_only_an_enum_value_left_refuses_and_says_why(shop: Project) -> None:
    shop.add("20240101000001_mood.sql", "alter type public.mood add value 'glad';\n")
    assert shop.guard("run").code == 0
    refused = shop.guard("undo", "--yes")
    assert refused.code == 3, refused.output
    assert "cannot invert: type public.mood: value 'glad' stays" in refused.stdout
    assert "manual: restore the newest daily backup" in refused.stdout
    assert shop.history() == ["20240101000001"]


def test_undo_of_an_unknown_run_and_without_journal(project: Project) -> None:
    empty = project.guard("undo")
    assert empty.code == 3 and "nothing to undo" in empty.stderr
    project.init_backup_log()
    project.log_automated_backup()
    project.add("20240101000001_a.sql", "create table public.a (id int);\n")
    assert project.guard("run").code == 0
    bogus = project.guard("undo", "20990101000000-zzzzz")
    assert bogus.code == 3 and "no guarded run 20990101000000-zzzzz" in bogus.stderr
    bad = project.guard("undo", "--poll", "soon")
    assert bad.code == 2 and "--poll" in bad.stderr


def test_recreated_serial_and_identity_tables_keep_counting(shop: Project) -> None:
    shop.add("20240101000001_drop.sql", "drop table public.events;\ndrop table public.logins;\n")
    assert shop.guard("run").code == 0
    assert shop.guard("undo", "--yes").code == 0
    shop.query("INSERT INTO public.events (\"Kind\") VALUES ('after'); INSERT INTO public.logins (at) VALUES (now())")
    assert shop.query("SELECT max(id) FROM public.events") == [(41,)]
    assert shop.query("SELECT max(id) FROM public.logins") == [(31,)]


def test_a_pruned_copy_is_named_and_the_undo_is_partial(shop: Project) -> None:
    before = state(shop)
    shop.add("20240101000001_del.sql", "delete from public.orders where total > 600;\n")
    run = shop.guard("run")
    assert run.code == 0 and run.report is not None
    copy = run.report["protective_copies"][0]["copy"]
    shop.query(f"DROP TABLE {copy}")
    result = shop.guard("undo", "--yes")
    assert result.code in (3, 4), result.output
    assert f"copy {copy} of" in result.stdout and "no longer exists" in result.stdout
    assert state(shop) != before and shop.history() == ["20240101000001"]


def test_after_undo_the_fixed_migration_applies_again(shop: Project) -> None:
    path = shop.add("20240101000001_fix.sql", "alter table public.orders drop column total;\n")
    assert shop.guard("run").code == 0
    assert shop.guard("undo", "--yes").code == 0
    path.write_text("alter table public.orders add column note text;\n")
    again = shop.guard("run")
    assert again.code == 0, again.output
    assert shop.history() == ["20240101000001"]
    assert shop.query("SELECT count(total), count(note) FROM public.orders") == [(500, 0)]


WRONG_TOTALS = "SELECT count(*) FROM public.orders WHERE total IS NOT NULL AND total <> id * 1.5"


@pytest.mark.parametrize(("files", "said", "wrong"), [
    # The copy was made before two columns swapped names: which of them a copy column is
    # cannot be told from the catalogs before and after.
    (["delete from public.orders where id > 450;\n"
      "alter table public.orders rename column total to t2;\n"
      "alter table public.orders rename column account to total;\n"
      "alter table public.orders rename column t2 to account;\n"], "cannot be matched to a column of the table",
     WRONG_TOTALS),
    # Renamed, then the table dropped: the copy calls the column by a name the run did not keep.
    (["alter table public.orders rename column total to amount;\n"
      "drop table public.orders;\n"], "match no column of the table before the run", WRONG_TOTALS),
    # Renamed, then the column dropped: its column copy has the name in between.
    (["alter table public.accounts rename column plan to tier;\n"
      "alter table public.accounts drop column tier;\n"], "cannot be matched to a column of the table",
     "SELECT count(*) FROM public.accounts WHERE plan IS NOT NULL AND plan <> 'free'"),
])
def test_a_copy_undo_cannot_match_is_named_not_put_back_wrong(shop: Project, files: list[str], said: str,
                                                              wrong: str) -> None:
    for n, text in enumerate(files, start=1):
        shop.add(f"2024010100000{n}_release.sql", text)
    run = shop.guard("run")
    assert run.code in (0, 4), run.output
    undone = shop.guard("undo", "--yes")
    assert undone.code == 4 and said in undone.output, undone.output
    assert shop.history() != []  # its effect remains in part: the history says so
    assert shop.query(wrong) == [(0,)]  # nothing put back under the wrong column


def test_columns_that_swapped_names_go_back(shop: Project) -> None:
    """A swap (or a longer cycle) of column names is renamed back through guard's own names:
    RENAME COLUMN to a name another column still holds would fail."""
    before = state(shop)
    shop.add("20240101000001_swap.sql",
             "alter table public.accounts rename column plan to t;\n"
             "alter table public.accounts rename column email to plan;\n"
             "alter table public.accounts rename column t to email;\n"
             "alter table public.orders rename column account to total2;\n"
             "alter table public.orders rename column total to account;\n"
             "alter table public.orders rename column total2 to total;\n")
    assert shop.guard("run").code == 0
    undone = shop.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert state(shop) == before
