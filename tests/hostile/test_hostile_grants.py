"""Items 11 and 12 of issue #16: every object guard creates is closed to PUBLIC and Supabase's
API roles whatever default privileges say; guard's own schema is versioned and upgrades."""

from __future__ import annotations

import psycopg
import pytest

from guard.guard_schema import CURRENT_VERSION
from tests.support import Project

# The schema this release started with (guard/journal.py and guard/protect.py before
# versioning), frozen here: the upgrade must start from exactly this.
V1_SCHEMA = """
CREATE SCHEMA IF NOT EXISTS guard;
REVOKE ALL ON SCHEMA guard FROM PUBLIC;
CREATE TABLE IF NOT EXISTS guard.runs (
    run_id text PRIMARY KEY, command text NOT NULL,
    started_at timestamptz NOT NULL DEFAULT clock_timestamp(), finished_at timestamptz,
    status text NOT NULL, exit_code integer, pending text[] NOT NULL DEFAULT '{}',
    committed text[] NOT NULL DEFAULT '{}', restore_target jsonb, actor text, reason text,
    report jsonb, acknowledged_at timestamptz, acknowledged_by text, acknowledgement text);
REVOKE ALL ON TABLE guard.runs FROM PUBLIC;
CREATE TABLE IF NOT EXISTS guard.run_commits (
    run_id text NOT NULL, version text NOT NULL,
    committed_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    seq bigint GENERATED ALWAYS AS IDENTITY, PRIMARY KEY (run_id, version));
REVOKE ALL ON TABLE guard.run_commits FROM PUBLIC;
CREATE TABLE IF NOT EXISTS guard.copies (
    copy text PRIMARY KEY, run_id text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(), source text NOT NULL,
    kind text NOT NULL, statement text, rows bigint, bytes bigint, restore_sql text);
REVOKE ALL ON TABLE guard.copies FROM PUBLIC;
"""
API_ROLES = ("anon", "authenticated")
DEFAULT_PRIVILEGES = {
    "supabase": [
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON TABLES TO anon, authenticated",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON SEQUENCES TO anon, authenticated",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT ALL ON FUNCTIONS TO anon, authenticated",
        "GRANT USAGE ON SCHEMA public TO anon, authenticated",
    ],
    "global": [
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON TABLES TO anon, authenticated, PUBLIC",
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO anon, authenticated, PUBLIC",
        "ALTER DEFAULT PRIVILEGES GRANT ALL ON FUNCTIONS TO anon, authenticated",
        "ALTER DEFAULT PRIVILEGES GRANT USAGE ON SCHEMAS TO anon, authenticated",
        "GRANT USAGE ON SCHEMA public TO anon, authenticated",
    ],
}
# Every object guard creates, and what an API role must not be able to do with it.
OBJECTS = """
SELECT c.oid::regclass::text, c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE (n.nspname IN ('guard', 'supabase_migrations') OR c.relname LIKE 'backup_logs%%')
   AND c.relkind IN ('r', 'S', 'v', 'p')
"""
PRIVILEGES = {"r": ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE"), "p": ("SELECT", "INSERT"),
              "v": ("SELECT",), "S": ("USAGE", "SELECT", "UPDATE")}


def _roles(project: Project) -> None:
    for role in API_ROLES:
        project.query(f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') "
                      f"THEN CREATE ROLE {role} NOLOGIN; END IF; END $$")


def _open_privileges(project: Project) -> list[str]:
    found = []
    for name, kind in project.query(OBJECTS):
        for role in (*API_ROLES, "public"):
            for privilege in PRIVILEGES[kind]:
                check = "has_sequence_privilege" if kind == "S" else "has_table_privilege"
                if project.query(f"SELECT {check}(%s, %s, %s)", (role, name, privilege))[0][0]:
                    found.append(f"{role} {privilege} {name}")
    for role in (*API_ROLES, "public"):
        for schema in ("guard", "supabase_migrations"):
            if project.query("SELECT has_schema_privilege(%s, %s, 'USAGE')", (role, schema))[0][0]:
                found.append(f"{role} USAGE {schema}")
        if project.query("SELECT has_function_privilege(%s, 'public.get_backup_stats()', 'EXECUTE')",
                         (role,))[0][0]:
            found.append(f"{role} EXECUTE get_backup_stats")
    return found


@pytest.mark.parametrize("defaults", sorted(DEFAULT_PRIVILEGES))
def test_every_object_guard_creates_is_closed_under_default_privileges(
        tmp_path: object, db_url: str, defaults: str) -> None:
    project = Project(tmp_path, db_url)  # type: ignore[arg-type]
    _roles(project)
    for statement in DEFAULT_PRIVILEGES[defaults]:
        project.query(statement)
    assert project.guard("init").code == 0
    project.log_automated_backup()
    project.add("20240101000000_a.sql", "create table public.items (id int primary key);\n"
                "insert into public.items values (1);\n")
    project.add("20240102000000_b.sql", "drop table public.items;\n")
    result = project.guard("run")
    assert result.code == 0, result.output
    assert project.query("SELECT count(*) FROM guard.copies")[0][0] >= 1  # a protective copy exists
    assert _open_privileges(project) == []
    # The attack itself: anon moving backup_logs' sequence would make later inserts collide.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("SET ROLE anon")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT setval(pg_get_serial_sequence('public.backup_logs', 'id'), 1000000)")


def test_schema_upgrades_in_place_from_the_first_release(ready: Project) -> None:
    _roles(ready)
    ready.query("ALTER DEFAULT PRIVILEGES GRANT ALL ON SEQUENCES TO anon")
    with psycopg.connect(ready.db_url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)
        conn.execute("GRANT ALL ON SEQUENCE guard.run_commits_seq_seq TO anon")  # as v1 left it
        conn.execute("INSERT INTO guard.runs (run_id, command, status, finished_at, exit_code) "
                     "VALUES ('20230101000000-old01', 'run', 'applied', now(), 0)")
    result = ready.guard("init")
    assert result.code == 0, result.output
    assert f"upgraded from version 1 to {CURRENT_VERSION}" in result.stdout
    assert ready.query("SELECT max(version) FROM guard.schema_version") == [(CURRENT_VERSION,)]
    assert ready.query("SELECT run_id FROM guard.runs") == [("20230101000000-old01",)]
    assert _open_privileges(ready) == []
    again = ready.guard("init")
    assert f"guard's schema at version {CURRENT_VERSION}" in again.stdout
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0


def test_a_guard_run_upgrades_the_schema_too(ready: Project) -> None:
    with psycopg.connect(ready.db_url, autocommit=True) as conn:
        conn.execute(V1_SCHEMA)
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert ready.guard("run").code == 0
    assert ready.query("SELECT max(version) FROM guard.schema_version") == [(CURRENT_VERSION,)]


@pytest.mark.parametrize("command", [("init",), ("run",)])
def test_an_older_guard_refuses_a_newer_schema(ready: Project, command: tuple[str, ...]) -> None:
    assert ready.guard("init").code == 0
    ready.query("INSERT INTO guard.schema_version (version, guard_version) VALUES (%s, '99.0')",
                (CURRENT_VERSION + 1,))
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = ready.guard(*command)
    assert result.code == 3, result.output
    assert f"version {CURRENT_VERSION + 1}, newer than this guard" in result.stderr
    assert ready.history() == []
    assert ready.query("SELECT count(*) FROM guard.runs") == [(0,)]
