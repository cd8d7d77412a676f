"""The catalog reads a run makes for undo, as they were made cheaper (issue #20, the fixed start):
the policy fingerprint read from pg_policy is the one earlier guards stored from the
pg_policies view (stored fingerprints must still compare), extensions' objects stay out
whatever catalog their oid also names, `guard init` makes undo's tables, and a run's records
hold the fingerprint before and ``{}`` after."""

from __future__ import annotations

from typing import Any

import psycopg
from support import Project

from guard import fingerprint
from guard.undo import catalog

# What guards before issue #20 read for each policy (guard/fingerprint.py then): the reference.
PG_POLICIES_FORM = """
SELECT 'policy', p.schemaname || '.' || p.tablename || '.' || p.policyname,
       md5(p.cmd || ' ' || p.permissive || ' ' || p.roles::text || ' ' || COALESCE(p.qual, '')
           || ' ' || COALESCE(p.with_check, ''))
  FROM pg_policies p
 WHERE p.schemaname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard', 'guard_backup')
"""

ROLES = ("cat_reads_b", "Cat Reads \"A\"", "cat_reads_c")

POLICIES = '''
CREATE SCHEMA "we.ird ""s""";
CREATE TABLE "we.ird ""s"""."T x" (a int, b text, c text) PARTITION BY LIST (a);
CREATE TABLE "we.ird ""s"""."T x1" PARTITION OF "we.ird ""s"""."T x" FOR VALUES IN (1);
ALTER TABLE "we.ird ""s"""."T x" ENABLE ROW LEVEL SECURITY;
CREATE TABLE public.plain (id int, owner name, note text);
ALTER TABLE public.plain ENABLE ROW LEVEL SECURITY;
CREATE POLICY "po ""q""" ON "we.ird ""s"""."T x" AS PERMISSIVE FOR DELETE
    TO cat_reads_c, "Cat Reads ""A""", cat_reads_b USING (b ~ 'x''y' AND a = ANY('{1,2}'));
CREATE POLICY sel ON public.plain FOR SELECT USING (owner = current_user);
CREATE POLICY ins ON public.plain FOR INSERT TO cat_reads_b WITH CHECK (note IS NOT NULL);
CREATE POLICY upd ON public.plain AS RESTRICTIVE FOR UPDATE TO PUBLIC USING (true) WITH CHECK (id < 100);
CREATE POLICY "all" ON public.plain FOR ALL TO CURRENT_USER USING (id > 0);
CREATE POLICY "Dél" ON public.plain FOR DELETE TO cat_reads_c USING (note <> 'ü');
'''


def _roles(conn: psycopg.Connection[Any]) -> None:
    for role in ROLES:
        quoted = '"' + role.replace('"', '""') + '"'
        conn.execute(f"DO $$ BEGIN CREATE ROLE {quoted} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def test_policy_fingerprints_are_the_ones_earlier_guards_stored(db_conn: psycopg.Connection[Any]) -> None:
    _roles(db_conn)
    db_conn.execute(POLICIES)
    now = {name: value for (kind, name), value in fingerprint.take(db_conn).objects.items() if kind == "policy"}
    before = {r[1]: r[2] for r in db_conn.execute(PG_POLICIES_FORM).fetchall()}
    assert len(before) == 6 and now == before
    # And they change with what they describe: roles, the command's expression, the kind.
    db_conn.execute("ALTER POLICY ins ON public.plain TO cat_reads_b, cat_reads_c")
    db_conn.execute("ALTER POLICY sel ON public.plain USING (owner = session_user)")
    changed = {name: value for (kind, name), value in fingerprint.take(db_conn).objects.items() if kind == "policy"}
    assert {n for n in changed if changed[n] != now[n]} == {"public.plain.ins", "public.plain.sel"}
    assert changed == {r[1]: r[2] for r in db_conn.execute(PG_POLICIES_FORM).fetchall()}


def test_extension_objects_stay_out_and_the_users_own_stay_in(db_conn: psycopg.Connection[Any]) -> None:
    db_conn.execute("CREATE SCHEMA ext; CREATE EXTENSION citext SCHEMA ext")
    db_conn.execute("CREATE FUNCTION ext.mine(x int) RETURNS int LANGUAGE sql AS 'SELECT x'; "
                    "CREATE DOMAIN ext.positive AS int CHECK (VALUE > 0); CREATE SCHEMA owned")
    objects = fingerprint.take(db_conn).objects
    functions = {name for kind, name in objects if kind == "function"}
    assert functions == {"ext.mine(x integer)"}
    assert {name for kind, name in objects if kind == "type"} == {"ext.positive"}
    others = {o["name"] for o in catalog.read(db_conn).others.values()}
    assert others == {"ext.mine(x integer)", "ext.positive", "ext", "owned"}


def test_init_makes_undo_tables_and_a_run_records_the_fingerprint_before(ready: Project) -> None:
    assert ready.guard("init").code == 0
    for table in ("guard.run_catalogs", "guard.run_rows"):
        assert ready.table_exists(table)
        assert ready.query("SELECT has_table_privilege('public', %s, 'SELECT')", (table,)) == [(False,)]
    ready.add("20240101000000_t.sql", "create table public.t (id int);")
    assert ready.guard("run").code == 0
    rows = dict(ready.query("SELECT phase, fingerprint FROM guard.run_catalogs"))
    assert set(rows) == {"before", "after"}
    assert "table public.t" not in rows["before"] and "schema public" in rows["before"]
    # After: the owners and ACLs alone (undo tells the run's grants from later ones by them).
    assert "table privileges public.t" in rows["after"] and "privileges recorded" in rows["after"]
    assert all(" privileges " in key or key.startswith(("privileges recorded", "role membership "))
               for key in rows["after"]), rows["after"]


def test_the_first_run_without_init_makes_both_tables_in_one_go(ready: Project) -> None:
    assert not ready.table_exists("guard.run_catalogs") and not ready.table_exists("guard.run_rows")
    ready.add("20240101000000_t.sql", "create table public.t (id int);")
    assert ready.guard("run").code == 0
    assert ready.table_exists("guard.run_catalogs") and ready.table_exists("guard.run_rows")
    assert ready.query("SELECT count(*) FROM guard.run_catalogs") == [(2,)]


def test_init_that_cannot_make_undos_tables_says_so_and_succeeds(project: Project) -> None:
    # A type of that name (not a relation: to_regclass sees nothing) blocks CREATE TABLE.
    project.query("CREATE SCHEMA guard; CREATE DOMAIN guard.run_catalogs AS int")
    result = project.guard("init")
    assert result.code == 0, result.output
    assert "undo's tables guard.run_catalogs, guard.run_rows not created: type \"run_catalogs\" already exists" \
        in result.stdout
    assert project.table_exists("guard.runs") and not project.table_exists("guard.run_rows")
