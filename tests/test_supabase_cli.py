"""Compatibility with the real Supabase CLI (npm supabase@2.117.0) on the same database:
whichever tool applies a migration, the other agrees it is applied and never applies it twice."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support import REPO, Project, once_at_a_time

SUPABASE_VERSION = "2.117.0"
TOOLS = REPO / ".tools" / "supabase"


@pytest.fixture(scope="session")
def supabase_cli() -> Path:
    """The Supabase CLI binary: $SUPABASE_CLI, or installed once from npm into .tools/."""
    explicit = os.environ.get("SUPABASE_CLI")
    if explicit:
        return Path(explicit)
    binary = TOOLS / "node_modules" / ".bin" / "supabase"
    with once_at_a_time("supabase-cli"):
        if not binary.exists():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("the Supabase CLI tests need npm (Node.js) to install supabase@" + SUPABASE_VERSION)
            TOOLS.mkdir(parents=True, exist_ok=True)
            proc = subprocess.run(
                [npm, "install", "--no-audit", "--no-fund", "-E", f"supabase@{SUPABASE_VERSION}", "--prefix", str(TOOLS)],
                capture_output=True, text=True, timeout=600,
            )
            if proc.returncode != 0 or not binary.exists():
                pytest.fail(f"npm install supabase@{SUPABASE_VERSION} failed: {proc.stderr.strip()[-500:]}")
    version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=60)
    assert version.stdout.strip() == SUPABASE_VERSION, version.stdout + version.stderr
    return binary


def _supabase(cli: Path, project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    url = project.db_url + ("&" if "?" in project.db_url else "?") + "sslmode=disable"
    return subprocess.run(
        [str(cli), *args, "--db-url", url, "--workdir", str(project.root)],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        env={**os.environ, "SUPABASE_TELEMETRY_DISABLED": "1", "DO_NOT_TRACK": "1"},
    )


def _listed(cli: Path, project: Project) -> dict[str, tuple[bool, bool]]:
    """`supabase migration list`: version -> (local, remote)."""
    proc = _supabase(cli, project, "migration", "list")
    assert proc.returncode == 0, proc.stderr
    rows: dict[str, tuple[bool, bool]] = {}
    for line in proc.stdout.splitlines():
        cells = [c.strip().strip("`").strip() for c in line.split("|")]
        if len(cells) >= 3 and (cells[0].isdigit() or cells[1].isdigit()):
            version = cells[0] or cells[1]
            rows[version] = (cells[0] == version, cells[1] == version)
    return rows


TRICKY = """\
-- Comments, dollar quotes and nested comments: both tools must split these alike.
create table public.notes (id int primary key, body text default 'a;b');
/* block /* nested; */ comment */
create function public.note_count() returns bigint language sql as $$
  select count(*) from public.notes; -- ; inside
$$;
do $body$ begin perform 1; end $body$;
insert into public.notes values (1, E'tab\\there; fine');
select 1 -- a trailing comment stays with its statement
;
;
-- a comment after the last statement is kept as one more "statement" by the CLI
"""
# Note: the Supabase CLI's splitter takes the backslash in E'it\'s; x' for the end of the
# string and cuts the file in the wrong place; guard's parser does not (see test_files.py).


@pytest.fixture
def project(ready: Project) -> Project:
    return ready


def test_guard_applies_and_supabase_cli_agrees(supabase_cli: Path, project: Project) -> None:
    project.add("20240101000000_notes.sql", TRICKY)
    project.add("20240102000000_more.sql", "alter table public.notes add column tag text;\n")

    assert project.guard("run").code == 0

    assert _listed(supabase_cli, project) == {
        "20240101000000": (True, True),
        "20240102000000": (True, True),
    }
    push = _supabase(supabase_cli, project, "db", "push", "--yes")
    assert push.returncode == 0, push.stderr
    assert "up to date" in (push.stdout + push.stderr).lower()
    assert project.history() == ["20240101000000", "20240102000000"]


def test_supabase_cli_applies_and_guard_continues(supabase_cli: Path, project: Project) -> None:
    project.add("20240101000000_notes.sql", TRICKY)
    push = _supabase(supabase_cli, project, "db", "push", "--yes")
    assert push.returncode == 0, push.stderr

    # Same file, applied by the CLI: guard sees it applied and unchanged (no drift), nothing pending.
    again = project.guard("run")
    assert again.code == 0, again.output
    assert again.report is not None and again.report["status"] == "nothing_pending"

    project.add("20240102000000_more.sql", "alter table public.notes add column tag text;\n")
    result = project.guard("run")
    assert result.code == 0, result.output
    assert [m["version"] for m in result.report["migrations"]] == ["20240102000000"]  # type: ignore[index]
    assert _listed(supabase_cli, project)["20240102000000"] == (True, True)


def test_history_rows_match_the_supabase_cli_exactly(supabase_cli: Path, tmp_path: Path, db_url: str, pg_cluster: object) -> None:
    import psycopg

    # Two databases: the CLI applies to one, guard to the other; their history rows must match.
    cli_db = Project(tmp_path / "cli", db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        name = conn.execute("SELECT current_database()").fetchone()[0]  # type: ignore[index]
        conn.execute(f'CREATE DATABASE "{name}_g" TEMPLATE "{name}"')
    guard_db = Project(tmp_path / "guard", db_url.rsplit("/", 1)[0] + f"/{name}_g")
    try:
        for p in (cli_db, guard_db):
            p.add("20240101000000_notes.sql", TRICKY)
        guard_db.init_backup_log()
        guard_db.log_automated_backup()
        assert _supabase(supabase_cli, cli_db, "db", "push", "--yes").returncode == 0
        assert guard_db.guard("run").code == 0
        query = "SELECT version, name, statements FROM supabase_migrations.schema_migrations"
        assert guard_db.query(query) == cli_db.query(query)
    finally:
        with psycopg.connect(db_url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_g" WITH (FORCE)')


def test_failed_file_leaves_history_both_tools_read_alike(supabase_cli: Path, project: Project) -> None:
    project.add("20240101000000_notes.sql", TRICKY)
    project.add("20240102000000_broken.sql", "select 1/0;\n")
    result = project.guard("run")
    assert result.code == 4
    assert _listed(supabase_cli, project) == {
        "20240101000000": (True, True),
        "20240102000000": (True, False),
    }
