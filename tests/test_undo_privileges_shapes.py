"""`guard undo` with privileges in Supabase's shapes (tests/test_undo_privileges.py has the
single changes). Supabase's default privileges (``ALTER DEFAULT PRIVILEGES IN SCHEMA public
GRANT ALL ON TABLES, SEQUENCES, FUNCTIONS TO anon, authenticated, service_role``) give every
object undo recreates the ACL the dropped one had: a whole undo stays "as before" (exit 0),
serial and identity sequences included. A grant or revoke on an object that stays (a view, a
sequence, one of overloaded functions, to a role with an odd name) is put back (exit 0). What
the defaults would not give back (a grant beyond them on a table or column the run dropped) is
put back too: a table the run dropped is recreated with its owner and ACL, a column with its
column grants (exit 0); a role dropped after the run leaves nothing behind."""

from __future__ import annotations

import pytest

from tests.support import Project

ODD = '"Odd ""Role"" x"'
SUPABASE = f"""
DO $$ BEGIN CREATE ROLE anon NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE authenticated NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE service_role NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE {ODD} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated, service_role;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated, service_role;
"""
ADD = "create table public.n (id int);\n"
# name -> (before the run, the run, after the run, exit of the undo, what it says still differs)
SHAPES = {
    "serial table dropped": ("create table public.t (id serial primary key, n text); insert into public.t (n) values ('a');",
                             "drop table public.t;", "", 0, None),
    "identity table dropped": ("create table public.t (id int generated always as identity primary key, n text);"
                               "insert into public.t (n) values ('a');", "drop table public.t;", "", 0, None),
    "table and enum dropped": ("create type public.mood as enum ('a', 'b'); create table public.t (m public.mood);",
                               "drop table public.t; drop type public.mood;", "", 0, None),
    "table dropped and made again": ("create table public.t (id int, n text);",
                                     "drop table public.t; create table public.t (id int, n text);", "", 0, None),
    "overloaded functions added": ("", "create function public.f(int) returns int language sql as 'select 1';"
                                   "create function public.f(text) returns int language sql as 'select 2';"
                                   "revoke all on function public.f(text) from anon;", "", 0, None),
    "grant to a role dropped since": ("create table public.e (id int); create role undo_shape_gone;",
                                      "grant select on public.e to undo_shape_gone;",
                                      "drop owned by undo_shape_gone; drop role undo_shape_gone;", 0, None),
    "dropped table's own grant": (f"create table public.t (id int); grant select on public.t to {ODD};",
                                  "drop table public.t;", "", 0, None),
    "dropped table's revoke from anon": ("create table public.t (id int); revoke all on public.t from anon;",
                                         "drop table public.t;", "", 0, None),
    "dropped column's grant": ("create table public.t (id int primary key, n text); insert into public.t values (1, 'a');"
                               "grant update (n) on public.t to anon;", "alter table public.t drop column n;", "", 0, None),
    "view grant": ("create view public.v as select 1 as x;", f"grant select on public.v to {ODD};", "", 0, None),
    "sequence revoke": ("create sequence public.s;", "revoke usage on sequence public.s from anon;", "", 0, None),
    "one overload revoked": ("create function public.f(int) returns int language sql as 'select 1';"
                             "create function public.f(text) returns int language sql as 'select 2';",
                             "revoke all on function public.f(text) from anon;", "", 0, None),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_undo_in_supabase_shapes_says_exactly_what_privileges_differ(ready: Project, shape: str) -> None:
    before, run, since, code, left = SHAPES[shape]
    assert ready.guard("init").code == 0
    ready.query(SUPABASE + before)
    ready.add("20240101000000_p.sql", ADD + run + "\n")
    assert ready.guard("run").code == 0
    if since:
        ready.query(since)
    undone = ready.guard("undo", "--yes")
    assert "Traceback" not in undone.output, undone.output
    assert undone.code == code, undone.output
    differs = [line.strip() for line in undone.output.splitlines() if line.strip().startswith("still differs")]
    assert differs == ([f"still differs: {left}"] if left else []), undone.output
    assert ready.history() == (["20240101000000"] if code else [])
    assert not ready.table_exists("public.n")
