"""Destructive statements under a file's own role (issue #13): ``SET ROLE``, ``SET SESSION
AUTHORIZATION``, ``SET LOCAL ROLE``, a role set earlier in the file, row level security. psql
applies them as that role; guard does too, copies exactly what the role destroyed (checksum
before, run, restore with the report's SQL, same checksum), and leaves the role no grant on
guard's copies and no way to read them."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

import pytest

from tests.safety_support import data, restore, run_with_copies
from tests.support import Project

ITEMS = (
    # Roles belong to the cluster, which every test's database shares.
    "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app NOLOGIN; END IF;"
    "  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'stranger') THEN CREATE ROLE stranger NOLOGIN; END IF;"
    "END $$;"
    "CREATE TABLE public.items (id int PRIMARY KEY, owner text NOT NULL, v text);"
    "INSERT INTO public.items SELECT g, CASE WHEN g % 3 = 0 THEN 'app' ELSE 'other' END, 'v' || g "
    "  FROM generate_series(1, 120) g;"
    "GRANT SELECT, INSERT, DELETE, UPDATE, TRUNCATE ON public.items TO app;"
)
# What a role may do with guard's copies and schemas after the run: nothing.
LEFT_TO = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname IN ('guard_backup', 'guard')
   AND (has_table_privilege(%(r)s, c.oid, 'SELECT') OR has_table_privilege(%(r)s, c.oid, 'INSERT')
        OR coalesce(c.relacl::text, '') LIKE '%%' || %(r)s || '=%%')
"""
SCHEMA_LEFT_TO = "SELECT has_schema_privilege(%(r)s, 'guard_backup', 'USAGE')"


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    return ready


def _round_trip(project: Project, sql: str, *, role: str = "app") -> dict:  # type: ignore[type-arg]
    before = data(project, "public.items")
    report = run_with_copies(project, "20240101000000_as_role.sql", sql)
    assert data(project, "public.items") != before
    assert project.query(LEFT_TO, {"r": role})[0][0] == 0
    assert project.query(SCHEMA_LEFT_TO, {"r": role})[0][0] is False
    restore(project, report)
    assert data(project, "public.items") == before
    return report


@pytest.mark.parametrize("sql", [
    "set role app;\ndelete from items where id < 10;\n",
    "set session authorization app;\ndelete from items where id % 7 = 0;\n",
    "begin;\nset local role app;\ndelete from items where id in (select id from items order by random() limit 9);\ncommit;\n",
    "set role app;\ncreate temp table scratch (i int);\nupdate items set v = 'changed' where id < 20;\n",
    "set role app;\ndelete from items where id < 5;\nupdate items set v = 'x' where id > 100;\n",
    "set role app;\ntruncate items;\n",
    "set session authorization app;\nset role app;\nwith d as (select id from items limit 4) delete from items i using d where i.id = d.id;\n",
])
def test_a_statement_under_a_role_is_copied_and_restored(items: Project, sql: str) -> None:
    _round_trip(items, sql)


def test_the_role_stays_the_files_after_the_copy(items: Project) -> None:
    """The statements after the destructive one still run as the role (psql would), and
    a SET LOCAL ROLE ends with its transaction."""
    items.query("CREATE TABLE public.who (n int, by_role text DEFAULT current_user); GRANT INSERT ON public.who TO app")
    _round_trip(items, "set role app;\ndelete from items where id = 3;\ninsert into who (n) values (1);\n"
                       "begin;\nset local role app;\ndelete from items where id = 6;\ncommit;\n"
                       "reset role;\ninsert into who (n) values (2);\n")
    assert items.query("SELECT n, by_role FROM public.who ORDER BY n") == [(1, "app"), (2, "postgres")]


def test_row_level_security_copies_exactly_the_visible_rows(items: Project) -> None:
    """A DELETE under RLS removes only the rows the role's policies let it see: the copy holds
    exactly those, and the other rows were never touched."""
    items.query("ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;"
                "CREATE POLICY mine ON public.items FOR ALL TO app USING (owner = current_user)")
    others = data(items, "(SELECT * FROM public.items WHERE owner <> 'app')")
    report = _round_trip(items, "set role app;\ndelete from items;\n")
    assert [c["rows"] for c in report["protective_copies"]] == [40]
    assert data(items, "(SELECT * FROM public.items WHERE owner <> 'app')") == others


def test_row_level_security_update_copies_the_old_values_it_changed(items: Project) -> None:
    items.query("ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;"
                "CREATE POLICY mine ON public.items FOR ALL TO app USING (owner = current_user)")
    report = _round_trip(items, "set role app;\nupdate items set v = upper(v) where id < 60;\n")
    assert [c["rows"] for c in report["protective_copies"]] == [19]


def test_a_role_that_may_delete_but_not_read_gets_a_whole_copy(items: Project) -> None:
    """Without SELECT there is no RETURNING: guard copies the whole table as itself first."""
    items.query("REVOKE SELECT ON public.items FROM app")
    report = _round_trip(items, "set role app;\ndelete from items;\n")
    assert report["protective_copies"][0]["kind"] == "table"


def test_a_role_without_the_privilege_fails_as_psql_would(items: Project) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_as_role.sql", "set role stranger;\ndelete from items where id < 10;\n")
    result = items.guard("run")
    assert result.code == 1, result.output
    assert "permission denied for table items" in result.output
    assert data(items, "public.items") == before
    assert items.query(LEFT_TO, {"r": "stranger"})[0][0] == 0


def test_a_do_block_under_a_role_is_still_watched(items: Project) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_as_role.sql", "set role app;\ndo $$ begin delete from items where id < 10; end $$;\n")
    result = items.guard("run")
    assert result.code == 1, result.output
    assert "tripwire: this file deleted 9 row(s) of public.items" in result.output
    assert data(items, "public.items") == before


@pytest.mark.parametrize("tripwire", [True, False])
def test_a_role_statement_outside_a_transaction_block(items: Project, tripwire: bool) -> None:
    """A file with transactions of its own: the statement after its COMMIT, as the role, gets
    its copy in its own (implicit, made explicit) transaction, with the tripwire armed or
    not (lint.destructive: warn disarms it; copies are still made)."""
    if not tripwire:
        (items.root / "guard.yml").write_text("lint:\n  destructive: warn\n")
    _round_trip(items, "begin;\nselect 1;\ncommit;\n"
                       "set role app;\ndelete from items where id < 4;\n")


def test_command_specific_policies_get_a_whole_copy_and_the_statement_is_unchanged(items: Project) -> None:
    """A DELETE policy wider than the SELECT one: RETURNING would add the SELECT policy and
    delete fewer rows than psql does. Guard copies the table whole instead and runs the
    statement as written: psql's rows are deleted, and they come back."""
    items.query("ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;"
                "CREATE POLICY see ON public.items FOR SELECT TO app USING (owner = 'app');"
                "CREATE POLICY remove ON public.items FOR DELETE TO app USING (id <= 60)")
    report = _round_trip(items, "set role app;\ndelete from items;\n")
    assert report["protective_copies"][0]["kind"] == "table"
    assert items.query("SELECT count(*) FROM public.items")[0][0] == 120


def test_a_whole_copy_that_row_level_security_would_cut_fails_instead(ready: Project) -> None:
    """Guard connected as a role its policies limit: a copy of the whole table would hold only
    the rows they show, so the file fails, nothing changed (PostgreSQL's row_security = off)."""
    ready.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'rls_limited') THEN "
        "  CREATE ROLE rls_limited LOGIN; END IF; END $$; ALTER ROLE rls_limited PASSWORD 'limited-pw-1';"
        "GRANT CREATE ON DATABASE " + ready.db_url.rsplit("/", 1)[1].split("?")[0] + " TO rls_limited;"
        "GRANT ALL ON SCHEMA public TO rls_limited; GRANT ALL ON ALL TABLES IN SCHEMA public TO rls_limited;"
        "GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO rls_limited;"
        "CREATE TABLE public.items (id int PRIMARY KEY, owner text);"
        "INSERT INTO public.items SELECT g, CASE WHEN g % 2 = 0 THEN 'rls_limited' END FROM generate_series(1, 20) g;"
        "GRANT ALL ON public.items TO rls_limited; ALTER TABLE public.items ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY mine ON public.items TO rls_limited USING (owner = current_user)")
    before = data(ready, "public.items")
    ready.add("20240101000000_t.sql", "truncate items;\n")
    parts = urlsplit(ready.db_url)
    url = urlunsplit(parts._replace(netloc=f"rls_limited:limited-pw-1@{parts.hostname}:{parts.port}"))
    result = ready.guard("run", "--database-url", url, "--allow-stale-backup", "--reason", "test")
    assert result.code != 0, result.output
    assert "row-level security" in result.output
    assert data(ready, "public.items") == before
