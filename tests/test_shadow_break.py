"""The shadow against what real Supabase projects contain: statements that apply on Supabase
pass the dry run, those Supabase refuses fail it, and a shared shadow server keeps nothing."""

from __future__ import annotations

import psycopg
import pytest

from tests.support import Project, clean_env, run_guard
from tests.test_shadow import SETS, _leftovers, _supabase_project, server_url  # noqa: F401 - fixture

# Each applies on Supabase (where `postgres` has CREATEROLE and supautils' privileged extensions);
# the check in the second file proves the first one's effect is there for what follows.
APPLY_ON_SUPABASE: dict[str, tuple[str, str]] = {
    # Supabase's docs: updated_at columns kept by the moddatetime extension.
    "moddatetime_trigger": ("""
create extension if not exists moddatetime schema extensions;
create table public.profiles (id bigint primary key, name text, updated_at timestamptz);
create trigger handle_updated_at before update on public.profiles
  for each row execute procedure moddatetime (updated_at);
""", """
do $$ begin
  insert into public.profiles values (1, 'a', null);
  update public.profiles set name = 'b';
  if (select updated_at from public.profiles) is null then raise exception 'moddatetime did not run'; end if;
end $$;
"""),
    "spi_triggers_without_schema": ("""
create extension if not exists insert_username;
create extension autoinc;
create table public.notes (id int, who text);
create trigger who before insert on public.notes for each row execute procedure insert_username (who);
""", "insert into public.notes (id) values (1);\n"),
    # Supabase's docs on timeouts, and PostgREST's exposed schemas.
    "role_settings_of_api_roles": ("""
alter role authenticated set statement_timeout = '8s';
alter role anon set statement_timeout to '3s';
alter role authenticator set pgrst.db_schemas = 'public, api';
alter role service_role in database postgres set search_path = public, extensions;
alter role anon reset idle_in_transaction_session_timeout;
notify pgrst, 'reload config';
""", """
do $$ begin
  if not exists (select 1 from pg_db_role_setting s join pg_roles r on r.oid = s.setrole
                  where r.rolname = 'authenticated' and s.setdatabase = (select oid from pg_database
                  where datname = current_database()) and 'statement_timeout=8s' = any (s.setconfig)) then
    raise exception 'the role setting is not there';
  end if;
end $$;
"""),
    "membership_of_api_roles": ("""
create role reporting nologin;
grant authenticated to reporting;
grant anon, service_role to reporting with admin option;
""", "select 1 from pg_roles where pg_has_role('reporting', 'authenticated', 'member');\n"),
    "managing_its_own_roles": ("""
drop role if exists old_reporting;
create role reporting nologin;
alter role reporting with login password 'not-a-real-password' connection limit 5;
comment on role reporting is 'read-only BI access';
create role staging nologin;
create table public.t (id int);
grant select on public.t to staging;
alter role staging rename to staging_old;
grant insert on public.t to staging_old;
revoke all on public.t from staging, staging_old;
drop role staging_old;
""", "select 1 from pg_roles where rolname = 'reporting' and rolconnlimit = 5;\n"),
    # pg_cron's schema named on its own: left out with the extension, never a failure.
    "cron_schema_grants": ("""
create extension if not exists pg_cron with schema pg_catalog;
grant usage on schema cron to postgres;
alter default privileges in schema "cron" grant all on tables to postgres;
select cron.schedule('nightly', '0 3 * * *', $$select 1$$);
""", "select 1;\n"),
    "net_schema_grants": ("""
create extension if not exists pg_net;
grant usage on schema net to service_role;
""", "select 1;\n"),
}

# Each fails on Supabase too: the dry run must fail at the statement, with PostgreSQL's reason.
REFUSED_ON_SUPABASE: dict[str, tuple[str, str]] = {
    "superuser_only_parameter": ("alter role authenticated set session_preload_libraries = 'auto_explain';\n",
                                 "permission denied"),
    "a_superuser_role": ("alter role supabase_admin set statement_timeout = '1s';\n", "superuser"),
    "an_invalid_value": ("alter role authenticated set statement_timeout = 'banana';\n",
                         'invalid value for parameter "statement_timeout"'),
    "a_missing_role": ("alter role nobody_here set statement_timeout = '1s';\n", 'role "nobody_here" does not exist'),
    "a_predefined_role": ("create role reporting nologin;\ngrant pg_execute_server_program to reporting;\n",
                          "pg_execute_server_program"),
    "dropping_a_platform_role": ("drop role anon;\n", "permission denied"),
    "a_superuser_option": ("create role reporting nologin;\nalter role reporting superuser;\n", "superuser"),
    "granting_a_superuser": ("create role reporting nologin;\ngrant supabase_admin to reporting;\n", "superuser"),
}


@pytest.mark.parametrize("name", sorted(APPLY_ON_SUPABASE))
def test_what_applies_on_supabase_passes_the_dry_run(project: Project, name: str) -> None:
    first, second = APPLY_ON_SUPABASE[name]
    _supabase_project(project, [("20240101000000_first.sql", first.lstrip()),
                                ("20240102000000_second.sql", second.lstrip())])
    result = run_guard("check", "--shadow", "embedded", cwd=project.root, env=clean_env())
    assert result.code == 0, result.output
    assert result.report is not None and result.report["shadow"]["applied"] == ["20240101000000", "20240102000000"]


@pytest.mark.parametrize("name", sorted(REFUSED_ON_SUPABASE))
def test_what_supabase_refuses_fails_the_dry_run(project: Project, name: str) -> None:
    text, reason = REFUSED_ON_SUPABASE[name]
    _supabase_project(project, [("20240101000000_roles.sql", text)])
    result = run_guard("check", "--shadow", "embedded", cwd=project.root, env=clean_env())
    assert result.code == 1, result.output
    assert result.report is not None and result.report["status"] == "dry_run_failed"
    message = result.report["message"]
    assert reason in message and "20240101000000_roles.sql:" in message, message
    assert "Traceback" not in result.output


def test_a_shared_shadow_server_keeps_none_of_the_checks_roles(project: Project, server_url: str) -> None:  # noqa: F811
    _supabase_project(project, [("20240101000000_reporting.sql", """
create role reporting_shadow_probe nologin;
grant authenticated to reporting_shadow_probe;
alter role reporting_shadow_probe set statement_timeout = '5s';
alter role reporting_shadow_probe connection limit 3;
comment on role reporting_shadow_probe is 'bi';
alter role authenticated set statement_timeout = '8s';
create table public.sales (id bigint primary key);
grant select on public.sales to reporting_shadow_probe;
""".lstrip())])
    for _ in range(2):  # the second check finds no role left by the first
        result = run_guard("check", "--shadow", server_url, cwd=project.root, env=clean_env())
        assert result.code == 0, result.output
        assert _leftovers(server_url) == ([], [])
        with psycopg.connect(server_url) as conn:
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'reporting_shadow_probe'").fetchone() is None
            # The platform role's setting stayed in the shadow database, dropped with it.
            assert conn.execute("SELECT count(*) FROM pg_db_role_setting s JOIN pg_roles r ON r.oid = s.setrole"
                                " WHERE r.rolname = 'authenticated'").fetchone() == (0,)


def test_a_shadow_database_the_server_cannot_create_leaves_no_role(project: Project, server_url: str) -> None:  # noqa: F811
    _supabase_project(project, [("20240101000000_notes.sql", "create table public.notes (id int);\n")])
    template = server_url.rsplit("/", 1)[0] + "/template1"
    with psycopg.connect(template):  # CREATE DATABASE copies template1: refused while in use
        result = run_guard("check", "--shadow", server_url, cwd=project.root, env=clean_env())
    assert result.code != 0, result.output
    assert "Traceback" not in result.output and "template1" in result.output, result.output
    assert _leftovers(server_url) == ([], [])


# What the `postgres` of Supabase has, checked as the dry-run role on either kind of shadow.
POSTGRES_ON_SUPABASE = """
create table public.later (id int);
create function public.later_count() returns bigint language sql as 'select count(*) from public.later';
do $$ begin
  if (select tableowner from pg_tables where schemaname = 'public' and tablename = 'countries') <> current_user then
    raise exception 'OWNER TO postgres did not make the dry-run role the owner';
  end if;
  if not has_table_privilege('anon', 'public.later', 'select')
     or not has_function_privilege('authenticated', 'public.later_count()', 'execute') then
    raise exception 'the default privileges of postgres are missing';
  end if;
end $$;
"""


@pytest.mark.parametrize("shadow", ["embedded", "url"])
def test_a_supabase_dump_passes_on_either_shadow(project: Project, server_url: str, shadow: str) -> None:  # noqa: F811
    # `supabase db pull`'s remote_schema.sql names `postgres` (OWNER TO, FOR ROLE, GRANT ... TO):
    # on a shared server the dry run's postgres is the check's own role.
    _supabase_project(project, [*SETS["db_pull_dump"], ("20240102000000_later.sql", POSTGRES_ON_SUPABASE.lstrip())])
    result = run_guard("check", "--shadow", "embedded" if shadow == "embedded" else server_url,
                       cwd=project.root, env=clean_env())
    assert result.code == 0, result.output
    assert _leftovers(server_url) == ([], [])


def test_the_lock_trace_runs_what_the_dry_run_runs(project: Project) -> None:
    # A statement the dry run leaves out (an extension the shadow lacks) or runs itself (a role
    # setting) is not traced as a failure, and the trace goes on past it, as the dry run does.
    _supabase_project(project, [
        ("20240101000000_items.sql", "create table public.items (id int primary key, name text);\n"),
        ("20240102000000_change.sql", "create extension if not exists pg_net with schema extensions;\n"
                                      "alter role authenticated set statement_timeout = '8s';\n"
                                      "alter table public.items alter column name type varchar(10);\n"),
    ])
    result = run_guard("check", "--shadow", "embedded", cwd=project.root, env=clean_env())
    assert result.code == 0, result.output
    assert result.report is not None
    rows = {row["line"]: row for row in result.report["shadow"]["trace"] if row["file"].endswith("_change.sql")}
    assert rows[1]["verdict"] == rows[2]["verdict"] == "not traced", rows
    assert "public.items" in rows[3]["locks"] and rows[3]["verdict"] != "failed", rows[3]


def test_guard_grants_no_role_that_reaches_the_server(project: Project, server_url: str) -> None:  # noqa: F811
    # A role of the shared server that may run programs: guard never grants it for a migration,
    # so the grant is the dry-run role's own, and PostgreSQL refuses it.
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("DROP ROLE IF EXISTS shadow_probe_exec")
        conn.execute("CREATE ROLE shadow_probe_exec NOLOGIN")
        conn.execute("GRANT pg_execute_server_program TO shadow_probe_exec")
    try:
        _supabase_project(project, [("20240101000000_exec.sql",
                                     "create role probe_grantee nologin;\ngrant shadow_probe_exec to probe_grantee;\n")])
        result = run_guard("check", "--shadow", server_url, cwd=project.root, env=clean_env())
        assert result.code == 1, result.output
        assert result.report is not None and "20240101000000_exec.sql:2" in result.report["message"]
        assert _leftovers(server_url) == ([], [])
        with psycopg.connect(server_url) as conn:
            assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'probe_grantee'").fetchone() is None
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute("DROP ROLE IF EXISTS shadow_probe_exec")
