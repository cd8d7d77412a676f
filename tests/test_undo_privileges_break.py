"""Attempts to break `guard undo`'s putting back of owners and ACLs (guard/undo/privileges.py).
Each test is an input a user or an attacker could write; the result is read from the catalog
by oid (``RAW``), never from guard's words or its fingerprint."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.support import Project, Result, undo_then_undo_the_undo

ROLE = "undo_brk_reader"
OTHER = "undo_brk_other"
ROLES = f"""
DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
DO $$ BEGIN CREATE ROLE {OTHER} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
"""
ADD = "create table public.brk_new (id int);\n"

# Owners and ACLs of every per-database object, named by oid-based casts (no name collisions),
# guard's own schemas left out.
RAW = """
SELECT 'class', c.oid::regclass::text, c.relowner::regrole::text,
       (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(c.relacl, acldefault(CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::"char", c.relowner))) x)::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard', 'guard_backup')
UNION ALL
SELECT 'column', a.attrelid::regclass::text || ' ' || quote_ident(a.attname), '', (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(a.attacl) x)::text
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE cardinality(a.attacl) > 0 AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard', 'guard_backup')
UNION ALL
SELECT 'proc', p.oid::regprocedure::text, p.proowner::regrole::text, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(p.proacl, acldefault('f', p.proowner))) x)::text
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'guard', 'guard_backup')
UNION ALL
SELECT 'schema', quote_ident(nspname), nspowner::regrole::text, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(nspacl, acldefault('n', nspowner))) x)::text FROM pg_namespace
 WHERE nspname NOT IN ('guard', 'guard_backup')
UNION ALL
SELECT 'type', t.oid::regtype::text, t.typowner::regrole::text, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(t.typacl, acldefault('T', t.typowner))) x)::text
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard', 'guard_backup')
UNION ALL
SELECT 'database', quote_ident(datname), datdba::regrole::text, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(datacl, acldefault('d', datdba))) x)::text FROM pg_database
 WHERE datname = current_database()
UNION ALL
SELECT 'default', defaclrole::regrole::text || ' ' || defaclnamespace::text || ' ' || defaclobjtype::text, '',
       (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(defaclacl) x)::text FROM pg_default_acl
UNION ALL
SELECT 'language', quote_ident(lanname), lanowner::regrole::text, (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(lanacl, acldefault('l', lanowner))) x)::text FROM pg_language
UNION ALL
SELECT 'foreign server', quote_ident(srvname), srvowner::regrole::text,
       (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(srvacl, acldefault('S', srvowner))) x)::text
  FROM pg_foreign_server
UNION ALL
SELECT 'foreign data wrapper', quote_ident(fdwname), fdwowner::regrole::text,
       (SELECT array_agg(x::text ORDER BY x::text) FROM unnest(COALESCE(fdwacl, acldefault('F', fdwowner))) x)::text
  FROM pg_foreign_data_wrapper
UNION ALL
SELECT 'member', m.roleid::regrole::text || ' to ' || m.member::regrole::text, '', m.admin_option::text
  FROM pg_auth_members m WHERE m.member::regrole::text LIKE 'undo\\_brk\\_%%' OR m.roleid::regrole::text LIKE 'undo\\_brk\\_%%'
"""


def raw(project: Project) -> list[tuple[str, ...]]:
    return sorted((str(a), str(b), str(c), str(d)) for a, b, c, d in project.query(RAW))


def undo_after(project: Project, before: str, run: str, since: str = "", *, setup: str = ROLES,
               read: Callable[[Project], list[tuple[str, ...]]] | None = None) -> tuple[list[tuple[str, ...]], Result]:
    """``setup`` and ``before`` set up, ``run`` applied by guard, ``since`` done after; (catalog
    before the run as ``read`` reads it, the undo's result)."""
    assert project.guard("init").code == 0
    project.query(setup + before)
    was = (read or raw)(project)
    project.add("20240101000000_p.sql", ADD + run + "\n")
    ran = project.guard("run")
    assert ran.code == 0, ran.output
    if since:
        project.query(since)
    return was, project.guard("undo", "--yes")


CASES = {
    # name -> (before the run, the run)
    "owner change with a column grant": (
        f"create table public.t (id int, c int); grant select (c) on public.t to {ROLE};",
        f"alter table public.t owner to {OTHER};"),
    "owner change of a serial table": (
        "create table public.t (id serial primary key);", f"alter table public.t owner to {OTHER};"),
    "language usage": ("", f"grant usage on language plpgsql to {ROLE};"),
    "language revoke": ("", "revoke usage on language sql from public;"),
    "uppercase role": ('create role "Upper"; create table public.t (id int);', 'grant select on public.t to "Upper";'),
    "role named like an acl item": ('create role "a=r/b"; create table public.t (id int);',
                                    'grant select on public.t to "a=r/b";'),
    "role with comma and quote": ('create role "x,y""z"; create table public.t (id int);',
                                  'grant select, insert on public.t to "x,y""z" with grant option;'),
    "owner with spaces and items": (
        'create role "o x=r/o"; create table public.t (id int); alter table public.t owner to "o x=r/o";',
        f"grant select on public.t to {ROLE};"),
    "owner change to such a role": (
        'create role "o x=r/o, y"; create table public.t (id int);', 'alter table public.t owner to "o x=r/o, y";'),
    "role named PUBLIC": ('create role "PUBLIC"; create table public.t (id int);',
                          'grant select on public.t to "PUBLIC";'),
    "unicode names": ('create role "rôle ü"; create schema "Schéma"; create table "Schéma"."Tâble" ("côl" int);',
                      'grant select ("côl") on "Schéma"."Tâble" to "rôle ü"; grant usage on schema "Schéma" to "rôle ü";'),
    "variadic function": ("create function public.v(variadic a int[]) returns int language sql as 'select 1';",
                          f"grant execute on function public.v(variadic int[]) to {ROLE};"),
    "function with out args": ("create function public.o(a int, out b int, out c text) language sql as 'select 1, ''x''';",
                               "revoke execute on function public.o(int) from public;"),
    "procedure with out args": ("create procedure public.p(a int, out b int) language sql as 'select 1';",
                                "revoke execute on procedure public.p(int, int) from public;"),
    "aggregate": ("create aggregate public.agg(int) (sfunc = int4pl, stype = int);",
                  "revoke execute on function public.agg(int) from public;"),
    "ordered-set aggregate": (
        "create aggregate public.osa(float8 order by float8) (sfunc = array_append, stype = float8[]);",
        "revoke execute on function public.osa(float8, float8) from public;"),
    "partitioned table": ("create table public.pt (id int) partition by range (id);"
                          "create table public.pt1 partition of public.pt for values from (0) to (10);",
                          f"grant select on public.pt to {ROLE}; alter table public.pt1 owner to {OTHER};"),
    "materialized view": ("create materialized view public.mv as select 1 as x;",
                          f"grant select on public.mv to {ROLE}; alter materialized view public.mv owner to {OTHER};"),
    "composite type": ("create type public.comp as (a int);", f"grant usage on type public.comp to {ROLE};"),
    "database owner": ("", f"do $$ begin execute format('alter database %I owner to {OTHER}', current_database()); end $$;"),
    "owner to a role then grants to it": (
        "create table public.t (id int);",
        f"grant select on public.t to {ROLE}; alter table public.t owner to {ROLE}; grant select on public.t to {OTHER};"),
    "owner revokes all from itself then changes owner": (
        "create table public.t (id int);",
        f"revoke all on public.t from current_user; alter table public.t owner to {ROLE};"),
    "run only grants": ("create table public.t (id int);", f"grant all on public.t to {ROLE};"),
    "grant option passed on, then revoked by the run": (
        f"create table public.t (id int); grant select on public.t to {ROLE} with grant option;",
        f"set role {ROLE}; grant select on public.t to {OTHER}; reset role;"
        f"revoke select on public.t from {ROLE} cascade;"),
    "foreign table": ("create foreign data wrapper brk_w; create server brk_s foreign data wrapper brk_w;"
                      "create foreign table public.ft (id int) server brk_s;",
                      f"grant select (id) on public.ft to {ROLE}; alter foreign table public.ft owner to {OTHER};"),
    "odd types in a function's arguments": (
        'create schema "Odd S"; create type "Odd S"."T y" as enum (\'a\');'
        'create function public.g(x "Odd S"."T y", "in" int default 1) returns int language sql as \'select 1\';',
        f'revoke execute on function public.g("Odd S"."T y", int) from public; alter type "Odd S"."T y" owner to {OTHER};'
        f'grant execute on function public.g("Odd S"."T y", int) to {ROLE} with grant option;'),
    "view and materialized view columns": (
        "create view public.v as select 1 as x; create materialized view public.mv as select 1 as y;",
        f"grant select (x) on public.v to {ROLE}; grant select (y) on public.mv to {OTHER};"
        f"alter view public.v owner to {OTHER};"),
    "database connect and temporary from public": (
        "", "do $$ begin execute format('revoke connect, temporary on database %I from public', current_database());"
            f"execute format('grant all on database %I to {ROLE} with grant option', current_database()); end $$;"),
    "foreign server usage": ("create foreign data wrapper brk_w; create server brk_s foreign data wrapper brk_w;",
                             f"grant usage on foreign server brk_s to {ROLE}; alter server brk_s owner to {OTHER};"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_owner_and_acl_is_back_after_the_undo(ready: Project, case: str) -> None:
    """Found failing (2026-11-30): "owner change with a column grant" (the undo REVOKEs the
    column grant the owner change moved, then moves the owner back: the grant before the run is
    lost, exit 4); "ordered-set aggregate" (GRANT ON FUNCTION
    osa(double precision ORDER BY double precision): a syntax error); exit 0 with the
    difference left, none of them in the fingerprint: "role membership" (GRANT role TO role),
    "language usage"/"language revoke" (pg_language ACL), "composite type" (typtype 'c'),
    "foreign server usage" (pg_foreign_server), "large object" (now left out: large objects are
    data, a database may hold millions; README says so). Memberships: their own test below."""
    before, run = CASES[case]
    was, undone = undo_after(ready, before, run)
    assert "Traceback" not in undone.output, undone.output
    now = raw(ready)
    assert (undone.code, now) == (0, was), (undone.code, sorted(set(now) ^ set(was)), undone.output)


def test_the_undo_of_the_undo_gives_back_the_runs_grants_owners_and_revokes(ready: Project) -> None:
    """`guard undo UNDO_ID` takes the run's state back: its grant, revoke and owner change."""
    before = (f"create table public.t (id int, c int); grant insert on public.t to {OTHER};"
              "create function public.f() returns int language sql as 'select 1';")
    run = (f"grant select on public.t to {ROLE} with grant option; revoke insert on public.t from {OTHER};"
           f"grant update (c) on public.t to {ROLE}; revoke execute on function public.f() from public;"
           f"alter function public.f() owner to {OTHER};")
    assert ready.guard("init").code == 0
    ready.query(ROLES + before)
    ready.add("20240101000000_p.sql", ADD + run + "\n")
    assert ready.guard("run").code == 0
    left = raw(ready)
    undo_then_undo_the_undo(ready)
    assert raw(ready) == left


COLLIDING = 'create schema a; create table a."b.c" (id int); create schema "a.b"; create table "a.b".c (id int);'


def test_two_tables_of_one_dotted_name_hide_a_grant_from_the_undo(ready: Project) -> None:
    """a."b.c" and "a.b".c are both "a.b.c" in the fingerprint, the last row read wins (the one
    whose pg_class row was written last). The run grants on one and touches the other (a grant
    the owner already has): the undo saw no change, kept the grant and said exit 0. Which of
    the two an entry is cannot be known: the name is named (exit 4), nothing acted on."""
    was, undone = undo_after(ready, COLLIDING, f'grant select on "a.b".c to {ROLE}; '
                             'grant select on a."b.c" to current_user;')
    assert raw(ready) != was and undone.code == 4, undone.output
    assert "table privileges a.b.c: more than one object has this name" in undone.output, undone.output


def test_two_tables_of_one_dotted_name_make_the_undo_grant_on_the_wrong_one(ready: Project) -> None:
    """Before the run a."b.c" is readable by ROLE, "a.b".c is not; the run only touches "a.b".c's
    catalog row (a no-op grant to its owner). The undo reads a."b.c"'s ACL as the "before" of
    "a.b.c", "a.b".c's as its "after", and GRANTs SELECT on "a.b".c to ROLE: a table that never
    was readable by ROLE became so, and the undo said exit 0. Now named (exit 4), untouched."""
    was, undone = undo_after(ready, COLLIDING + f'grant select on a."b.c" to {ROLE};',
                             'grant select on "a.b".c to current_user;')
    assert "Traceback" not in undone.output
    assert ready.query(f"SELECT has_table_privilege('{ROLE}', '\"a.b\".c', 'SELECT')") == [(False,)], \
        undone.output
    assert undone.code == 4 and "table privileges a.b.c: more than one object has this name" in undone.output


def test_a_statement_that_failed_is_not_also_listed_as_done(ready: Project) -> None:
    """REVOKE of a grant others' grants depend on fails; the undo names it ("not done,
    dependent privileges exist") and must not also list it under "did:"."""
    was, undone = undo_after(ready, "create table public.t (id int);",
                             f"grant select on public.t to {ROLE} with grant option; set role {ROLE};"
                             f"grant select on public.t to {OTHER}; reset role;")
    assert undone.code == 4, undone.output
    assert "dependent privileges exist" in undone.output
    did = [line for line in undone.output.splitlines() if line.strip().startswith("did: revoke SELECT")]
    assert did == [], undone.output


def test_the_owner_of_an_aggregate_without_arguments_is_put_back(ready: Project) -> None:
    """ALTER AGGREGATE public.cnt() is a syntax error (an aggregate of no argument is cnt(*))."""
    was, undone = undo_after(ready, "create aggregate public.cnt(*) (sfunc = int8inc, stype = int8, initcond = '0');",
                             f"alter aggregate public.cnt(*) owner to {OTHER};")
    assert undone.code == 0, undone.output
    assert raw(ready) == was


def test_a_column_item_another_role_granted_is_named_not_revoked_as_the_owner(ready: Project) -> None:
    """ROLE holds SELECT (c) with grant option and passes it on in the run: the item's grantor
    is ROLE, which guard (granting as the owner) cannot be. Named as a table's item is, not a
    REVOKE that leaves it in place listed as done."""
    was, undone = undo_after(ready, f"create table public.t (id int, c int); "
                             f"grant select (c) on public.t to {ROLE} with grant option;",
                             f"set role {ROLE}; grant select (c) on public.t to {OTHER}; reset role;")
    assert undone.code == 4, undone.output
    assert f"privileges of {OTHER} granted by {ROLE}: guard grants as the owner" in undone.output, undone.output
    assert "did: revoke SELECT on column" not in undone.output, undone.output


def test_a_role_the_run_renamed_keeps_its_grants(ready: Project) -> None:
    """The run renames a role holding SELECT: its ACL items now read the new name. The undo
    REVOKEd SELECT from the new name, then failed to GRANT it to the old one (no such role):
    the role lost a privilege the run never took. Named now, the ACL untouched."""
    roles = ("DO $$ BEGIN DROP ROLE IF EXISTS undo_brk_renamed; DROP ROLE IF EXISTS undo_brk_torename; "
             "CREATE ROLE undo_brk_torename; END $$;")
    was, undone = undo_after(ready, roles + "create table public.t (id int); grant select on public.t to undo_brk_torename;",
                             "alter role undo_brk_torename rename to undo_brk_renamed;")
    try:
        assert undone.code == 4, undone.output
        assert ready.query("SELECT has_table_privilege('undo_brk_renamed', 'public.t', 'SELECT')") == [(True,)], \
            undone.output
        assert "name undo_brk_torename, a role that is no more (dropped or renamed)" in undone.output, undone.output
    finally:
        ready.query("REVOKE ALL ON public.t FROM undo_brk_renamed; DROP ROLE undo_brk_renamed")


def test_a_column_of_a_table_whose_owner_changed_again_since_is_named(ready: Project) -> None:
    """The run gives the table to OTHER (its column item moves to OTHER as grantor), a DBA then
    grants on the table: the table is left as it is, so is its column, both named."""
    was, undone = undo_after(ready, f"create table public.t (id int, c int); grant select (c) on public.t to {ROLE};",
                             f"alter table public.t owner to {OTHER};", f"grant insert on public.t to {ROLE};")
    assert undone.code == 4, undone.output
    assert "column privileges public.t.c: its table's owner is not put back" in undone.output, undone.output
    assert ready.query("SELECT attacl::text FROM pg_attribute WHERE attrelid = 'public.t'::regclass AND attname = 'c'") \
        == [(f"{{{ROLE}=r/{OTHER}}}",)]


def test_a_default_privilege_grantee_the_run_renamed_keeps_it(ready: Project) -> None:
    """As for an object's ACL: the run renames a role a default privilege names; the undo
    must not REVOKE from the new name what it cannot GRANT back to the old."""
    roles = ("DO $$ BEGIN DROP ROLE IF EXISTS undo_brk_dflt_new; DROP ROLE IF EXISTS undo_brk_dflt_old; "
             "CREATE ROLE undo_brk_dflt_old; END $$;")
    was, undone = undo_after(ready, roles + "alter default privileges in schema public grant select on tables "
                             "to undo_brk_dflt_old;", "alter role undo_brk_dflt_old rename to undo_brk_dflt_new;")
    try:
        assert undone.code == 4, undone.output
        assert ready.query("SELECT defaclacl::text FROM pg_default_acl") == [("{undo_brk_dflt_new=r/postgres}",)], \
            undone.output
    finally:
        ready.query("ALTER DEFAULT PRIVILEGES IN SCHEMA public REVOKE ALL ON TABLES FROM undo_brk_dflt_new;"
                    "DROP ROLE undo_brk_dflt_new")


MEMBERS = ("undo_brkm_api", "undo_brkm_admin", "undo_brkm_reader")
MEMBERSHIPS = """SELECT m.roleid::regrole::text, m.member::regrole::text, m.admin_option FROM pg_auth_members m
 WHERE m.member::regrole::text LIKE 'undo\\_brkm\\_%%' ORDER BY 1, 2"""


@pytest.mark.parametrize("run", [
    "grant undo_brkm_admin to undo_brkm_api;",
    "revoke undo_brkm_reader from undo_brkm_api;",
    "grant undo_brkm_reader to undo_brkm_api with admin option;",
    "revoke admin option for undo_brkm_admin from undo_brkm_reader;",
    "grant undo_brkm_admin to undo_brkm_api; revoke undo_brkm_reader from undo_brkm_api;",
])
def test_a_role_membership_the_run_changed_is_put_back(ready: Project, run: str) -> None:
    """GRANT role TO role (on Supabase, `grant service_role to anon`): kept by the cluster, read
    for the roles this database grants to or is owned by. The roles are this test's own, so no
    other test's database sees them change."""
    setup = "".join(f"DO $$ BEGIN CREATE ROLE {r} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
                    for r in MEMBERS)
    ready.query(setup + "CREATE TABLE public.api_t (id int);"
                + "".join(f"GRANT SELECT ON public.api_t TO {r};" for r in MEMBERS)
                + "GRANT undo_brkm_reader TO undo_brkm_api;"
                + "GRANT undo_brkm_admin TO undo_brkm_reader WITH ADMIN OPTION;")
    try:
        was = ready.query(MEMBERSHIPS)
        assert ready.guard("init").code == 0
        ready.add("20240101000000_p.sql", ADD + run + "\n")
        assert ready.guard("run").code == 0
        assert ready.query(MEMBERSHIPS) != was
        undone = ready.guard("undo", "--yes")
        assert undone.code == 0, undone.output
        assert ready.query(MEMBERSHIPS) == was
    finally:
        ready.query("DROP TABLE IF EXISTS public.api_t;" + "".join(f"DROP ROLE IF EXISTS {r};" for r in MEMBERS))
