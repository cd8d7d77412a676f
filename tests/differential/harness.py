"""Apply a migration set three ways and read back what each database holds.

psql is the reference: a session per file, ``-1`` unless the file manages its own
transactions or holds a statement PostgreSQL refuses in a transaction block, stopping at the
first file that fails (``ON_ERROR_STOP``). guard runs through its real command line, in this
process. The Supabase CLI runs ``db push``. Each database is then read the same way: the
catalog (guard.fingerprint plus owners, privileges and publications), the data of every user
table (row count and a checksum over the columns that do not hold clock or random values),
sequences, and the migration history.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from guard import fingerprint

MIGRATION = re.compile(r"^([0-9]+)_(.*)\.sql$")
# The harness's own reading of a file, independent of guard's: psql gets no -1 when the file
# has a top-level transaction command or a statement that cannot run in a transaction block.
OWN_TRANSACTION = re.compile(r"^\s*(begin|start\s+transaction|commit|end|rollback|abort)\b\s*(;|isolation|$)",
                             re.IGNORECASE | re.MULTILINE)
NOT_IN_TRANSACTION = re.compile(r"\bconcurrently\b|^\s*vacuum\b", re.IGNORECASE | re.MULTILINE)
IGNORED_TABLES = ("supabase_migrations.", "public.backup_logs")

EXTRA_CATALOG = """
SELECT 'relation', n.nspname || '.' || c.relname,
       pg_get_userbyid(c.relowner) || ' ' || COALESCE(c.relacl::text, '') || ' ' || c.relreplident::text
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S') AND n.nspname NOT IN ('pg_catalog', 'information_schema',
       'pg_toast', 'guard', 'guard_backup', 'supabase_migrations') AND n.nspname NOT LIKE 'pg_temp_%'
       AND n.nspname NOT LIKE 'pg_toast_temp_%' AND c.relname <> 'backup_logs'
       AND c.relname NOT LIKE 'backup_logs%'
UNION ALL
SELECT 'schema', n.nspname, pg_get_userbyid(n.nspowner) || ' ' || COALESCE(n.nspacl::text, '')
  FROM pg_namespace n WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard',
       'guard_backup', 'supabase_migrations') AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
UNION ALL
SELECT 'routine', p.oid::regprocedure::text, pg_get_userbyid(p.proowner) || ' ' || COALESCE(p.proacl::text, '')
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'guard', 'guard_backup')
UNION ALL
SELECT 'publication', p.pubname, p.puballtables::text || ' ' || COALESCE((SELECT string_agg(
       t.schemaname || '.' || t.tablename, ',' ORDER BY t.schemaname, t.tablename)
       FROM pg_publication_tables t WHERE t.pubname = p.pubname), '')
  FROM pg_publication p
UNION ALL
SELECT 'default privileges', COALESCE(d.defaclnamespace::regnamespace::text, '') || ' ' || d.defaclobjtype::text,
       d.defaclacl::text
  FROM pg_default_acl d
UNION ALL
SELECT 'comment', d.objoid::regclass::text || ' ' || d.objsubid::text, md5(d.description)
  FROM pg_description d JOIN pg_class c ON c.oid = d.objoid AND d.classoid = 'pg_class'::regclass
  JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
USER_TABLES = """
SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast', 'guard',
       'guard_backup') AND n.nspname NOT LIKE 'pg_temp_%' AND n.nspname NOT LIKE 'pg_toast_temp_%'
 ORDER BY 1, 2
"""
# Columns whose values are the clock's or random: they differ between any two applications.
STABLE_COLUMNS = """
SELECT a.attname FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped
   AND a.atttypid NOT IN ('timestamptz'::regtype, 'timestamp'::regtype)
   AND COALESCE(pg_get_expr(d.adbin, d.adrelid), '') !~ '(random|uuid|now|clock)'
 ORDER BY a.attnum
"""
SEQUENCES = ("SELECT schemaname || '.' || sequencename, last_value::text FROM pg_sequences "
             "WHERE schemaname NOT IN ('guard', 'guard_backup') ORDER BY 1")
HISTORY = """
SELECT version, name, statements FROM supabase_migrations.schema_migrations ORDER BY version
"""


@dataclass
class State:
    """What one database holds after a set was applied."""

    catalog: dict[tuple[str, str], str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)
    history: list[tuple[str, str, list[str] | None]] = field(default_factory=list)


@dataclass
class Applied:
    """How a tool's application ended: the files it applied and the one it stopped at."""

    applied: list[str]
    failed: str | None
    output: str = ""
    code: int = 0


def migration_files(directory: Path) -> list[Path]:
    return sorted((p for p in directory.iterdir() if MIGRATION.match(p.name)), key=lambda p: p.name)


def apply_with_psql(url: str, directory: Path) -> Applied:
    psql = shutil.which("psql")
    if psql is None:
        raise AssertionError("the differential suite needs psql on PATH (postgresql-client)")
    env = {**os.environ, "PGCLIENTENCODING": "UTF8", "PGOPTIONS": "-c client_min_messages=warning"}
    applied: list[str] = []
    output = ""
    for path in migration_files(directory):
        text = path.read_bytes().decode("utf-8", errors="replace")
        single = not (OWN_TRANSACTION.search(text) or NOT_IN_TRANSACTION.search(text))
        args = [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", *(["-1"] if single else []), "-d", url, "-f", str(path)]
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
        output += proc.stderr
        if proc.returncode != 0:
            return Applied(applied, path.name, output, proc.returncode)
        applied.append(path.name)
    return Applied(applied, None, output)


def apply_with_guard(url: str, root: Path) -> Applied:
    """`guard run` through its click command line, in this process (as fast as it gets)."""
    from click.testing import CliRunner

    from guard.cli import cli

    previous = Path.cwd()
    os.chdir(root)
    try:
        result = CliRunner().invoke(cli, ["run"], env={"GUARD_DATABASE_URL": url, "DATABASE_URL": None})
    finally:
        os.chdir(previous)
    report_path = root / "guard-report.json"
    report_path.unlink(missing_ok=True)
    names = {p.name.split("_", 1)[0]: p.name for p in migration_files(root / "supabase" / "migrations")}
    with psycopg.connect(url, autocommit=True) as conn:
        history = _history(conn)
    applied = [names[v] for v, _, _ in history if v in names]
    failed = None
    if result.exit_code != 0:
        pending = [n for n in names.values() if n not in applied]
        failed = pending[0] if pending else "?"
    return Applied(applied, failed, result.output, result.exit_code)


def apply_with_supabase(cli: Path, url: str, root: Path) -> Applied:
    target = url + ("&" if "?" in url else "?") + "sslmode=disable"
    proc = subprocess.run(
        [str(cli), "db", "push", "--db-url", target, "--workdir", str(root), "--yes"],
        capture_output=True, text=True, timeout=180, stdin=subprocess.DEVNULL,
        env={**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"},
    )
    names = {p.name.split("_", 1)[0]: p.name for p in migration_files(root / "supabase" / "migrations")}
    with psycopg.connect(url, autocommit=True) as conn:
        history = _history(conn)
    applied = [names[v] for v, _, _ in history if v in names]
    failed = None
    if proc.returncode != 0:
        pending = [n for n in names.values() if n not in applied]
        failed = pending[0] if pending else "?"
    return Applied(applied, failed, proc.stdout + proc.stderr, proc.returncode)


def _history(conn: psycopg.Connection[Any]) -> list[tuple[str, str, list[str] | None]]:
    exists = conn.execute("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return []
    return [(r[0], r[1], r[2]) for r in conn.execute(HISTORY).fetchall()]


def read_state(url: str) -> State:
    state = State()
    with psycopg.connect(url, autocommit=True) as conn:
        objects = fingerprint.take(conn).objects
        state.catalog = {
            key: value for key, value in objects.items()
            if not key[1].startswith(("supabase_migrations", "public.backup_logs"))
        }
        state.catalog.update({(r[0], r[1]): r[2] for r in conn.execute(EXTRA_CATALOG).fetchall()})
        for schema, table in conn.execute(USER_TABLES).fetchall():
            name = f"{schema}.{table}"
            if name.startswith(IGNORED_TABLES):
                continue
            state.data[name] = _checksum(conn, schema, table)
        for name, value in conn.execute(SEQUENCES).fetchall():
            if not name.startswith(IGNORED_TABLES):
                state.data[f"sequence {name}"] = str(value)
        state.history = _history(conn)
    return state


def _checksum(conn: psycopg.Connection[Any], schema: str, table: str) -> str:
    ident = sql.Identifier(schema, table)
    columns = [r[0] for r in conn.execute(STABLE_COLUMNS, (f"{sql.Identifier(schema).as_string(conn)}."
                                                          f"{sql.Identifier(table).as_string(conn)}",)).fetchall()]
    row = sql.SQL("ROW({})").format(sql.SQL(", ").join(sql.Identifier(c) for c in columns)) if columns else sql.SQL("ROW()")
    query = sql.SQL("SELECT count(*), md5(COALESCE(string_agg({row}::text, '|' ORDER BY {row}::text), '')) FROM {t}").format(
        row=row, t=ident)
    found = conn.execute(query).fetchone()
    assert found is not None
    return f"{found[0]} rows, {found[1]}"


def differences(expected: State, actual: State, *, history: bool = True) -> list[str]:
    """Objects and tables that differ, one line each ("catalog table public.x: missing")."""
    lines: list[str] = []
    for key in sorted(set(expected.catalog) | set(actual.catalog)):
        want, got = expected.catalog.get(key), actual.catalog.get(key)
        if want != got:
            what = "missing" if got is None else "unexpected" if want is None else f"{want!r} != {got!r}"
            lines.append(f"catalog {key[0]} {key[1]}: {what}")
    for name in sorted(set(expected.data) | set(actual.data)):
        want_d, got_d = expected.data.get(name), actual.data.get(name)
        if want_d != got_d:
            lines.append(f"data {name}: {want_d} != {got_d}")
    if history:
        want_h = [(v, n) for v, n, _ in expected.history]
        got_h = [(v, n) for v, n, _ in actual.history]
        if want_h != got_h:
            lines.append(f"history {want_h} != {got_h}")
    return lines


def expected_history(applied: list[str]) -> list[tuple[str, str, list[str] | None]]:
    """The history rows a file list implies: version and name from each file name."""
    rows = []
    for name in applied:
        match = MIGRATION.match(name)
        assert match is not None
        rows.append((match.group(1), match.group(2), None))
    return sorted(rows)
