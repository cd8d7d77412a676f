"""`guard undo` and privileges. Undo once said "the database is as before" (exit 0) with a GRANT
to another role still in place; then it named such grants (exit 4). Now it puts back what the
run granted, revoked or gave away (guard/undo/privileges.py): owners and ACLs of tables, views,
sequences, columns, functions, schemas, types and the database are, after the undo, exactly
what they were before the run (read from the catalog, not from guard's own words). What it
cannot put back is named and the undo is partial (exit 4): default privileges, a grant changed
again since the run, an item another role granted."""

from __future__ import annotations

import pytest

from guard.fingerprint import PRIVILEGES_FINGERPRINT
from tests.support import Project, wrapped_changes

ROLE = "undo_priv_reader"
OTHER = "undo_priv_other"
BEFORE = f"""
DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE {OTHER} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE public.existing (id int, note text);
INSERT INTO public.existing VALUES (1, 'a');
GRANT SELECT, UPDATE ON public.existing TO {OTHER};
GRANT INSERT ON public.existing TO {OTHER} WITH GRANT OPTION;
CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';
CREATE FUNCTION public.answer(int) RETURNS int LANGUAGE sql AS 'SELECT $1';
CREATE PROCEDURE public.act() LANGUAGE sql AS 'SELECT 1';
CREATE SCHEMA app;
CREATE SEQUENCE app.counter;
CREATE VIEW app.shown AS SELECT 1 AS x;
CREATE TYPE app.mood AS ENUM ('a', 'b');
CREATE DOMAIN app.positive AS int CHECK (VALUE > 0);
CREATE TABLE "Odd ""Name"" T" ("Odd Col" int);
"""
ADDS = "create table public.newer (id int);\n"
GRANT_ON_DATABASE = (f"do $$ begin execute format('grant create on database %I to {ROLE}', current_database()); "
                     "end $$;\n")

CHANGES = {  # what the run does besides adding a table; undo puts each back exactly
    "table grant": f"grant select on public.existing to {ROLE};",
    "grant to public": "grant select on public.existing to public;",
    "grant all": f"grant all on public.existing to {ROLE};",
    "grant with grant option": f"grant select, delete on public.existing to {ROLE} with grant option;",
    "revoke from a role": f"revoke select, update on public.existing from {OTHER};",
    "revoke grant option": f"revoke grant option for insert on public.existing from {OTHER};",
    "grant option added": f"grant select on public.existing to {OTHER} with grant option;",
    "revoke from the owner": "revoke delete, truncate on public.existing from current_user;",
    "column grant": f"grant update (note), select (id) on public.existing to {ROLE};",
    "column grant of an odd name": f'grant select ("Odd Col") on "Odd ""Name"" T" to {ROLE};',
    "function revoke": "revoke execute on function public.answer() from public;",
    "one overload granted": f"grant execute on function public.answer(int) to {ROLE} with grant option;",
    "procedure revoke": "revoke execute on procedure public.act() from public;",
    "schema grant": f"grant usage, create on schema app to {ROLE};",
    "public schema revoke": "revoke usage on schema public from public;",
    "sequence grant": f"grant usage, select on sequence app.counter to {ROLE};",
    "view grant": f"grant select, insert on app.shown to {ROLE};",
    "type revoke": "revoke usage on type app.mood from public;",
    "domain grant": f"grant usage on domain app.positive to {ROLE} with grant option;",
    "database grant": GRANT_ON_DATABASE,
    "owner": f"alter table public.existing owner to {ROLE};",
    "owner and grants": f"alter table public.existing owner to {ROLE}; grant select on public.existing to {OTHER};"
                        f"revoke insert on public.existing from {OTHER};",
    "function owner": f"alter function public.answer() owner to {ROLE};",
    "schema owner": f"alter schema app owner to {ROLE};",
    "sequence owner": f"alter sequence app.counter owner to {ROLE};",
    "view owner": f"alter view app.shown owner to {ROLE};",
    "type owner": f"alter type app.mood owner to {ROLE};",
    "domain owner": f"alter domain app.positive owner to {ROLE};",
    "many at once": f"grant select on public.existing to {ROLE}; revoke all on schema app from public;"
                    f"grant usage on sequence app.counter to public; alter view app.shown owner to {OTHER};",
}


def privileges(project: Project) -> list[tuple[str, str, str]]:
    """Every owner and ACL of the database, as guard's fingerprint reads them."""
    return sorted(project.query(PRIVILEGES_FINGERPRINT))


@pytest.fixture
def project_before(ready: Project) -> Project:
    assert ready.guard("init").code == 0
    ready.query(BEFORE)
    return ready


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_privilege_the_run_changed_is_put_back_exactly(project_before: Project, change: str) -> None:
    was = privileges(project_before)
    project_before.add("20240101000000_p.sql", ADDS + CHANGES[change] + "\n")
    assert project_before.guard("run").code == 0
    assert privileges(project_before) != was  # the run did change them
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert "the database is as before" in undone.output
    assert privileges(project_before) == was
    assert project_before.history() == []
    assert not project_before.table_exists("public.newer")


DROPPED = {  # the run drops what had an owner or grants of its own; undo recreates it with them
    "table with grants and another owner": (f"create table public.gone (id int primary key, n text);"
                                            f"insert into public.gone values (1, 'a');"
                                            f"grant select, insert on public.gone to {ROLE} with grant option;"
                                            "revoke all on public.gone from current_user;"
                                            f"grant update (n) on public.gone to {OTHER};"
                                            f"alter table public.gone owner to {OTHER};", "drop table public.gone;"),
    "column with grants": (f"grant select (note), update (note) on public.existing to {ROLE};"
                           "alter table public.existing add primary key (id);",
                           "alter table public.existing drop column note;"),
}


@pytest.mark.parametrize("case", list(DROPPED))
def test_what_the_run_dropped_comes_back_with_its_owner_and_grants(project_before: Project, case: str) -> None:
    setup, run = DROPPED[case]
    project_before.query(setup)
    was = privileges(project_before)
    project_before.add("20240101000000_p.sql", ADDS + run + "\n")
    assert project_before.guard("run").code == 0
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert privileges(project_before) == was


def test_the_plan_says_each_privilege_it_puts_back(project_before: Project) -> None:
    project_before.add("20240101000000_p.sql", ADDS + f"grant select on public.existing to {ROLE};"
                       "revoke execute on function public.answer() from public;"
                       f"alter schema app owner to {ROLE};\n")
    assert project_before.guard("run").code == 0
    planned = project_before.guard("undo")
    assert planned.code == 0, planned.output
    for words in (f"revoke SELECT on table public.existing from {ROLE}, as before the run",
                  "grant EXECUTE on function public.answer() to PUBLIC, as before the run",
                  "schema app: owner back to "):
        assert words in planned.output, planned.output


DEFAULTS = {  # ALTER DEFAULT PRIVILEGES the run made; an absent global entry is PostgreSQL's default
    "in a schema": f"alter default privileges in schema app grant select, insert on tables to {ROLE};",
    "global functions from public": "alter default privileges revoke execute on functions from public;",
    "global tables": f"alter default privileges grant all on tables to {ROLE} with grant option;",
    "for another role": f"alter default privileges for role {OTHER} in schema app grant usage on sequences to {ROLE};",
    "types and schemas": f"alter default privileges grant create on schemas to {ROLE};"
                         "alter default privileges revoke usage on types from public;",
    "an existing entry changed": f"alter default privileges in schema public revoke select on tables from {OTHER};",
}


@pytest.mark.parametrize("change", list(DEFAULTS))
def test_default_privileges_the_run_changed_are_put_back(project_before: Project, change: str) -> None:
    project_before.query(f"ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, UPDATE ON TABLES TO {OTHER}")
    was = privileges(project_before)
    project_before.add("20240101000000_p.sql", ADDS + DEFAULTS[change] + "\n")
    assert project_before.guard("run").code == 0
    assert privileges(project_before) != was
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert privileges(project_before) == was
    assert project_before.history() == []


def test_a_grant_changed_again_since_the_run_is_left_and_named(project_before: Project) -> None:
    """The run granted SELECT; a DBA then granted INSERT too: undo does not guess which to take
    back. Another table's grant made since is not the run's and is never touched."""
    project_before.add("20240101000000_p.sql", ADDS + f"grant select on public.existing to {ROLE};\n")
    assert project_before.guard("run").code == 0
    project_before.query(f"GRANT INSERT ON public.existing TO {ROLE}; GRANT USAGE ON SCHEMA app TO {ROLE}")
    since = [row for row in privileges(project_before) if row[1] in ("public.existing", "app")]
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 4, undone.output
    assert "table privileges public.existing: changed by the run and again since; left as it is now" in undone.output
    assert [row for row in privileges(project_before) if row[1] in ("public.existing", "app")] == since
    assert project_before.history() == ["20240101000000"]


def test_an_item_another_role_granted_is_named(project_before: Project) -> None:
    """OTHER holds INSERT with grant option and passes it on in the run: PostgreSQL records
    OTHER as its grantor, which guard (granting as the owner) cannot be."""
    project_before.add("20240101000000_p.sql", ADDS + f"set role {OTHER}; grant insert on public.existing to {ROLE};"
                       "reset role;\n")
    assert project_before.guard("run").code == 0
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 4, undone.output
    assert f"privileges of {ROLE} granted by {OTHER}: guard grants as the owner" in undone.output, undone.output


def test_a_run_recorded_without_privileges_at_its_end_is_named_as_before(project_before: Project) -> None:
    """A run recorded by a guard that stored no owners and ACLs at its end: which of today's are
    the run's is unknown, so none is touched; what differs is named (exit 4)."""
    project_before.add("20240101000000_p.sql", ADDS + f"grant select on public.existing to {ROLE};\n")
    assert project_before.guard("run").code == 0
    project_before.query("UPDATE guard.run_catalogs SET fingerprint = '{}' WHERE phase = 'after'")
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 4, undone.output
    assert "table privileges public.existing changed" in undone.output, undone.output


def test_a_grant_taken_back_within_the_run_leaves_no_trace(project_before: Project) -> None:
    project_before.add("20240101000000_p.sql", ADDS + f"grant select, insert on public.existing to {ROLE};\n"
                       f"revoke select, insert on public.existing from {ROLE};\n"
                       "grant all on public.existing to public;\nrevoke all on public.existing from public;\n"
                       "revoke all on public.existing from public;\n"  # PUBLIC had nothing: no change
                       "grant select on public.newer to public;\n")
    assert project_before.guard("run").code == 0
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert "the database is as before" in undone.output and project_before.history() == []


def test_a_run_recorded_before_privileges_were_read_is_undone_as_before(project_before: Project) -> None:
    """A fingerprint stored by an earlier guard holds no owners or ACLs: they are left out of
    the comparison, not reported as all added."""
    project_before.add("20240101000000_p.sql", ADDS)
    assert project_before.guard("run").code == 0
    project_before.query(
        "UPDATE guard.run_catalogs SET fingerprint = (SELECT COALESCE(jsonb_object_agg(key, value), '{}') "
        "FROM jsonb_each(fingerprint) WHERE key NOT LIKE '%privileges %') WHERE phase = 'before'")
    assert project_before.query("SELECT count(*) FROM guard.run_catalogs, jsonb_object_keys(fingerprint) k "
                                "WHERE phase = 'before' AND k LIKE '%privileges%'") == [(0,)]
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert project_before.history() == []


def test_a_wrapped_tool_that_grants_is_seen_changing_that_table(project_before: Project) -> None:
    names = wrapped_changes(project_before, f"grant select on public.existing to {ROLE}")
    assert names == ["table privileges public.existing changed"], names


def test_a_run_recorded_before_languages_and_memberships_were_read_compares_without_them(project_before: Project) -> None:
    """A fingerprint stored by the guard before v2 holds no languages, composite types, foreign
    servers or role memberships: the undo leaves them out of its comparison (not "all added")."""
    project_before.add("20240101000000_p.sql", ADDS)
    assert project_before.guard("run").code == 0
    project_before.query(
        "UPDATE guard.run_catalogs SET fingerprint = (SELECT COALESCE(jsonb_object_agg(key, value), '{}') "
        "FROM jsonb_each(fingerprint) WHERE key NOT LIKE 'language privileges %' AND key NOT LIKE 'role membership %' "
        "AND key <> 'privileges recorded v2')")
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert "the database is as before" in undone.output


def test_a_language_grant_and_a_composite_type_owner_are_put_back(project_before: Project) -> None:
    project_before.query("CREATE TYPE app.pair AS (a int, b int)")
    was = privileges(project_before)
    project_before.add("20240101000000_p.sql", ADDS + f"grant usage on language plpgsql to {ROLE};"
                       "revoke usage on language sql from public;"
                       f"alter type app.pair owner to {ROLE}; grant usage on type app.pair to {OTHER};\n")
    assert project_before.guard("run").code == 0
    assert privileges(project_before) != was
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert privileges(project_before) == was
