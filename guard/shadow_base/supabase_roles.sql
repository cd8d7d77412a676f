-- migration-guard shadow base: supabase, version 1 — cluster-wide part (roles).
--
-- Written for migration-guard from Supabase's public schema (supabase/postgres
-- migrations/db/init-scripts and migrations/db/migrations, supabase/auth migrations): the roles a
-- Supabase database has, with the attributes user migrations can observe. Roles are shared by
-- every database of a server, so each is created only when missing and an existing role is never
-- altered (a `--shadow URL` server's own `postgres` keeps its attributes). guard runs this file
-- as the server's superuser while holding an advisory lock, so two checks sharing one server do
-- not race. :createrole is CREATEROLE on PostgreSQL 16+ and NOCREATEROLE before: on 15 and older
-- a CREATEROLE role can grant itself pg_execute_server_program, which the shadow must not allow.
DO $guard$
DECLARE
  createrole text := CASE WHEN current_setting('server_version_num')::int >= 160000
                          THEN 'CREATEROLE' ELSE 'NOCREATEROLE' END;
  wanted text[][] := ARRAY[
    -- name, attributes (as on Supabase; `postgres` is not a superuser there)
    ['supabase_admin',             'NOLOGIN'],  -- the platform's superuser; not one here unless initdb made it
    ['postgres',                   'NOSUPERUSER CREATEDB LOGIN REPLICATION BYPASSRLS ' || createrole],
    -- the API roles inherit since 2023 (supabase/postgres alter_api_roles_for_inherit)
    ['anon',                       'NOLOGIN INHERIT'],
    ['authenticated',              'NOLOGIN INHERIT'],
    ['service_role',               'NOLOGIN INHERIT BYPASSRLS'],
    ['authenticator',              'LOGIN NOINHERIT'],
    ['dashboard_user',             'NOSUPERUSER CREATEDB REPLICATION ' || createrole],
    ['supabase_auth_admin',        'LOGIN NOINHERIT NOREPLICATION ' || createrole],
    ['supabase_storage_admin',     'LOGIN NOINHERIT NOREPLICATION ' || createrole],
    ['supabase_functions_admin',   'LOGIN NOINHERIT NOREPLICATION ' || createrole],
    ['supabase_realtime_admin',    'NOLOGIN NOINHERIT'],
    ['supabase_replication_admin', 'LOGIN REPLICATION'],
    ['supabase_read_only_user',    'LOGIN BYPASSRLS'],
    ['pgsodium_keyholder',         'NOLOGIN'],
    ['pgsodium_keyiduser',         'NOLOGIN'],
    ['pgsodium_keymaker',          'NOLOGIN']
  ];
  i int;
BEGIN
  FOR i IN 1 .. array_length(wanted, 1) LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = wanted[i][1]) THEN
      EXECUTE format('CREATE ROLE %I %s', wanted[i][1], wanted[i][2]);
    END IF;
  END LOOP;
END
$guard$;

-- Memberships (GRANT of a membership that exists is a notice, not an error).
GRANT anon, authenticated, service_role TO authenticator;
GRANT anon, authenticated, service_role TO postgres;
GRANT supabase_auth_admin, supabase_storage_admin TO postgres;
GRANT authenticated, anon TO supabase_storage_admin;
GRANT pgsodium_keyholder TO service_role;
GRANT pgsodium_keyiduser TO pgsodium_keyholder;
GRANT pgsodium_keyiduser TO pgsodium_keymaker;
DO $guard$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'pg_read_all_data') THEN  -- PostgreSQL 14+
    GRANT pg_read_all_data TO postgres, supabase_read_only_user;
  END IF;
END
$guard$;
