"""Attempts to break `guard undo` with releases that change a property of an object that exists
before the run (a comment, a trigger's enabled state, a table's storage options, replica identity
or persistence, FORCE ROW LEVEL SECURITY, a view's options, a sequence's parameters or value)
beside a change undo does invert. The truth is read with pg_dump (schema and sequence values),
never from guard's words or its fingerprint: an undo that exits 0 must leave the dump as it was
before the run; one that cannot put a property back must exit 4 naming it."""

from __future__ import annotations

import subprocess

import pytest

from tests.support import Project

SETUP = """
create table public.t (id serial primary key, v text default 'x', n int);
insert into public.t (v, n) select 'r' || i, i from generate_series(1, 5) i;
comment on table public.t is 'orig';
comment on column public.t.v is 'vc';
create index t_n on public.t (n);
create sequence public.s;
select setval('public.s', 42);
create function public.trg() returns trigger language plpgsql as 'begin return new; end';
create trigger tt before insert on public.t for each row execute function public.trg();
alter table public.t enable row level security;
create policy p on public.t for select using (true);
create view public.vw as select id from public.t;
"""
ADD = "alter table public.t add column w int;\n"

# A property the run changes (each beside ADD), and the word the undo's output must name it by
# when it does not put it back.
SHAPES = {
    "comment_on_table": ("comment on table public.t is 'new';", "comment"),
    "comment_on_column": ("comment on column public.t.v is null;", "comment"),
    "comment_on_function": ("comment on function public.trg() is 'f';", "comment"),
    # public's oid (2200) is below FirstNormalObjectId: made by initdb, its comment still counts.
    "comment_on_schema_public": ("comment on schema public is 'ours';", "comment"),
    "comment_on_policy": ("comment on policy p on public.t is 'pc';", "comment"),
    "comment_on_trigger": ("comment on trigger tt on public.t is 'tc';", "comment"),
    "comment_on_constraint": ("comment on constraint t_pkey on public.t is 'kc';", "comment"),
    "comment_on_index": ("comment on index public.t_n is 'ic';", "comment"),
    "disable_trigger": ("alter table public.t disable trigger tt;", "trigger"),
    "fillfactor": ("alter table public.t set (fillfactor = 50);", "public.t"),
    "replica_identity": ("alter table public.t replica identity full;", "public.t"),
    "unlogged": ("alter table public.t set unlogged;", "public.t"),
    "force_rls": ("alter table public.t force row level security;", "public.t"),
    "view_security_invoker": ("alter view public.vw set (security_invoker = true);", "public.vw"),
    "sequence_increment": ("alter sequence public.s increment by 5;", "public.s"),
    "sequence_value": ("select setval('public.s', 1000);", "public.s"),
    "sequence_restart": ("alter sequence public.s restart;", "public.s"),
}
# Put back exactly: undo knows its value before the run, and going up hands out no id twice.
EXACT = {"sequence_restart"}


def schema_dump(project: Project) -> str:
    """pg_dump of the user's objects (guard's own and the history left out), sequence values
    included, with the lines that change at every dump removed."""
    out = subprocess.run(
        ["pg_dump", "--no-sync", "-d", project.db_url, "--exclude-schema=guard", "--exclude-schema=guard_backup",
         "--exclude-schema=supabase_migrations", "--exclude-table=public.backup_logs*",
         "--exclude-table-data=public.t", "--exclude-table=public.get_backup_stats"],
        capture_output=True, text=True, check=False)
    assert out.returncode == 0, f"pg_dump (the test's oracle) failed: {out.stderr.strip()}"
    return "\n".join(line for line in out.stdout.splitlines()
                     if not line.startswith(("-- Dumped", "\\restrict", "\\unrestrict"))
                     and "get_backup_stats" not in line)


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_undo_of_a_changed_property_is_exact_or_named(ready: Project, shape: str) -> None:
    change, word = SHAPES[shape]
    ready.query(SETUP)
    before = schema_dump(ready)
    ready.add("20260101000000_change.sql", f"{change}\n{ADD}")
    run = ready.guard("run", "--reason", shape)
    assert run.code == 0, run.output
    undo = ready.guard("undo", "--yes")
    after = schema_dump(ready)
    assert undo.code == 0 or shape not in EXACT, undo.output
    if undo.code == 0:
        assert after == before, f"undo said undone (exit 0) but the database differs:\n{undo.output}"
    else:
        assert undo.code == 4, undo.output
        named = [line for line in undo.stdout.splitlines() if "still differs" in line or "kept" in line]
        assert any(word in line for line in named), undo.output
        assert "20260101000000" in ready.history()  # partly undone: the run stays in place


def test_a_sequence_the_run_moved_and_the_application_advanced_since_is_kept(ready: Project) -> None:
    """The ids handed out since the run are the application's: undo does not set the sequence
    back under them (exit 4, named); --force does, as it overwrites what was written since."""
    ready.query(SETUP)
    ready.add("20260101000000_jump.sql", f"select setval('public.s', 1000);\n{ADD}")
    assert ready.guard("run", "--reason", "jump").code == 0
    ready.query("select nextval('public.s')")
    undo = ready.guard("undo", "--yes")
    assert undo.code == 4, undo.output
    assert "sequence public.s" in undo.output and "advanced since" in undo.output, undo.output
    assert ready.query("select last_value from public.s") == [(1001,)]
    undo_id = ready.query("select run_id from guard.runs where command = 'undo'")[0][0]
    assert ready.guard("undo", undo_id, "--yes").code == 0
    forced = ready.guard("undo", "--yes", "--force")
    assert forced.code == 0, forced.output
    assert ready.query("select last_value, is_called from public.s") == [(42, True)]


def test_a_sequence_the_run_drew_ids_from_is_not_set_back_under_its_rows(ready: Project) -> None:
    """Undo does not remove rows a run inserted: setting the sequence they drew their ids from
    back to its value before the run would hand the same ids out again (duplicate keys)."""
    ready.query(SETUP + "create table public.u (id bigint primary key default nextval('public.s'));")
    ready.add("20260101000000_seed.sql", f"insert into public.u default values;\n{ADD}")
    assert ready.guard("run", "--reason", "seed").code == 0
    undo = ready.guard("undo", "--yes")
    assert undo.code == 4 and "sequence public.s" in undo.stdout, undo.output
    ready.query("insert into public.u default values")  # no duplicate key
    assert ready.query("select count(*) from public.u") == [(2,)]


@pytest.mark.parametrize("since", [
    "alter table public.x add column y int",
    "create index x_label on public.x (label)",
    "alter table public.x add constraint x_label_len check (length(label) < 100)",
    "create policy x_read on public.x for select using (true)",
    "create trigger x_tt before insert on public.x for each row execute function public.trg()",
    "alter table public.x alter column label set default 'theirs'",
])
def test_a_table_the_run_added_and_someone_altered_since_is_kept(ready: Project, since: str) -> None:
    """Someone else's work on a table the run made (a column, index, constraint, policy,
    trigger, default) went with the table: undo dropped it and said the database was as before
    (exit 0). Now it is kept and named (exit 4); --force drops it."""
    ready.query(SETUP)
    ready.add("20260101000000_x.sql", f"create table public.x (id int primary key, label text);\n{ADD}")
    assert ready.guard("run", "--reason", "x").code == 0
    ready.query(since)
    undo = ready.guard("undo", "--yes")
    assert undo.code == 4 and "table public.x: kept" in undo.stdout, undo.output
    assert ready.table_exists("public.x")
    undo_id = ready.query("select run_id from guard.runs where command = 'undo'")[0][0]
    assert ready.guard("undo", undo_id, "--yes").code == 0
    forced = ready.guard("undo", "--yes", "--force")
    assert forced.code == 0 and not ready.table_exists("public.x"), forced.output


def test_a_table_the_run_added_and_nobody_altered_goes(ready: Project) -> None:
    ready.query(SETUP)
    ready.add("20260101000000_x.sql", "create table public.x (id int primary key, label text);\n"
              "create index x_label on public.x (label);\ncreate policy x_read on public.x using (true);\n" + ADD)
    assert ready.guard("run", "--reason", "x").code == 0
    undo = ready.guard("undo", "--yes")
    assert undo.code == 0 and not ready.table_exists("public.x"), undo.output


@pytest.mark.parametrize("setup, change", [
    ("create rule r as on update to public.t do also notify t_changed; comment on rule r on public.t is 'was';",
     "comment on rule r on public.t is 'now';"),
    ("create extension if not exists pgcrypto;", "comment on extension pgcrypto is 'ours';"),
    ("create statistics public.st on id, n from public.t;", "comment on statistics public.st is 'now';"),
    ("create collation public.c_coll (locale = 'C');", "comment on collation public.c_coll is 'now';"),
    ("create function public.evt() returns event_trigger language plpgsql as 'begin end';"
     "create event trigger guard_test_et on ddl_command_start execute function public.evt();"
     "comment on event trigger guard_test_et is 'was';", "comment on event trigger guard_test_et is null;"),
])
def test_a_comment_on_any_kind_of_object_is_put_back_or_named(ready: Project, setup: str, change: str) -> None:
    """Comments on objects that are not tables, columns or functions (rules, extensions,
    statistics objects, collations, event triggers) were not read: undo said "as before"."""
    ready.query(SETUP + setup)
    before = schema_dump(ready)
    ready.add("20260101000000_change.sql", f"{change}\n{ADD}")
    assert ready.guard("run", "--reason", "comment").code == 0
    undo = ready.guard("undo", "--yes")
    if undo.code == 0:
        assert schema_dump(ready) == before, f"undo said undone (exit 0) but the database differs:\n{undo.output}"
    else:
        assert undo.code == 4 and "comment" in undo.stdout, undo.output


def test_a_run_recorded_by_a_v4_guard_compares_without_the_comments_v4_did_not_read(ready: Project) -> None:
    """A v4 fingerprint holds no comments on triggers or policies: those that were there all
    along must not look added by the run (exit 4 for comments nobody changed)."""
    ready.query(SETUP + "comment on trigger tt on public.t is 'tc'; comment on policy p on public.t is 'pc';")
    ready.add("20260101000000_add.sql", ADD)
    assert ready.guard("run", "--reason", "v4").code == 0
    assert ready.query("SELECT count(*) FROM guard.run_catalogs, jsonb_object_keys(fingerprint) k "
                       "WHERE phase = 'before' AND (k LIKE 'comment trigger %' OR k LIKE 'comment policy %')") == [(2,)]
    ready.query("UPDATE guard.run_catalogs SET fingerprint = (SELECT COALESCE(jsonb_object_agg(key, value), '{}') "
                "FROM jsonb_each(fingerprint) WHERE key NOT LIKE 'comment trigger %' AND key NOT LIKE 'comment policy %' "
                "AND key <> 'properties recorded v5')")
    undo = ready.guard("undo", "--yes")
    assert undo.code == 0, undo.output
    assert "w" not in [c for c, in ready.query(
        "select attname from pg_attribute where attrelid = 'public.t'::regclass and not attisdropped")]
