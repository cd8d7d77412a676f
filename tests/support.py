"""Test helpers: a sample project driven through the real `guard` entry point."""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

REPO = Path(__file__).resolve().parent.parent


@contextlib.contextmanager
def once_at_a_time(name: str) -> Iterator[None]:
    """Hold an exclusive lock named ``name`` across test processes: pytest-xdist's workers
    (.ci/test runs two) share .tools/ and the source tree, so an install there (npm into
    .tools/, pip building this checkout in place) must not run in two workers at once. The
    caller checks again, under the lock, whether the other worker already did the work."""
    locks = REPO / ".tools" / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str
    report: dict[str, Any] | None

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def cover(cases: list[Any], variants: list[Any]) -> list[tuple[Any, Any]]:
    """(case, variant) pairs to parametrize a matrix with: every case once, the variants taken
    in turn (each variant tried, on different cases), within the suite's budget; with
    GUARD_TESTS_EXHAUSTIVE=1 every combination (README "Development")."""
    if os.environ.get("GUARD_TESTS_EXHAUSTIVE") == "1":
        return [(c, v) for c in cases for v in variants]
    return [(c, variants[i % len(variants)]) for i, c in enumerate(cases)]


def clean_env(**extra: str) -> dict[str, str]:
    """The test process environment without any GUARD_*/DATABASE_URL/CI variables of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("GUARD_", "GITHUB_", "CI_", "GITLAB_")) and k != "DATABASE_URL"
    }
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_guard(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> Result:
    """`python -m guard ARGS` in ``cwd``: the real entry point, a real process and exit code."""
    proc = subprocess.run(
        [sys.executable, "-m", "guard", *args],
        cwd=cwd,
        env=env if env is not None else clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    report_path = cwd / "guard-report.json"
    report = None
    if report_path.exists():
        report = json.loads(report_path.read_text())
        report_path.unlink()
        check_plan_renders_and_paths(report, cwd)
    return Result(proc.returncode, proc.stdout, proc.stderr, report)


def check_plan_renders_and_paths(report: dict[str, Any], cwd: Path) -> None:
    """Every restore plan any test produces (issue #17): it renders as text and Markdown, and
    each file its commands name resolves from ``cwd``, where guard ran. (Objects in the
    database are checked where the database still exists: tests/test_restore_truth.py.)"""
    import shlex

    from guard.report.model import plan_from_dict
    from guard.report.text import render_plan_markdown, render_plan_text

    if not report.get("restore_plan"):
        return
    plan = plan_from_dict(report["restore_plan"])
    assert render_plan_text(plan) and render_plan_markdown(plan)
    for step in plan.steps:
        for command in step.commands:
            for part in command.split("&&"):
                words = shlex.split(part, comments=True) if part.strip() else []
                if not words or words[0] not in ("pg_restore", "rm") and words[:2] != ["guard", "decrypt"]:
                    continue
                for word in words[1:]:
                    if word.endswith((".dump", ".enc")) and not (word.startswith("<") or "restored" in word):
                        assert (cwd / word).exists() or words[0] == "rm" or word.endswith(".dump") and \
                            (cwd / (word + ".enc")).exists(), f"{step.title}: {word} not found from {cwd}"


class Project:
    """A Supabase-style project directory pointed at one test database."""

    def __init__(self, root: Path, db_url: str) -> None:
        self.root = root
        self.db_url = db_url
        self.migrations = root / "supabase" / "migrations"
        self.migrations.mkdir(parents=True, exist_ok=True)

    def add(self, filename: str, sql: str) -> Path:
        path = self.migrations / filename
        path.write_text(sql, encoding="utf-8")
        return path

    def env(self, **extra: str) -> dict[str, str]:
        return clean_env(GUARD_DATABASE_URL=self.db_url, **extra)

    def guard(self, *args: str, **extra_env: str) -> Result:
        return run_guard(*args, cwd=self.root, env=self.env(**extra_env))

    # --- database helpers -------------------------------------------------------------

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cursor = conn.execute(sql, params or None)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    def history(self) -> list[str]:
        exists = self.query("SELECT to_regclass('supabase_migrations.schema_migrations') IS NOT NULL")
        if not exists[0][0]:
            return []
        return [r[0] for r in self.query("SELECT version FROM supabase_migrations.schema_migrations ORDER BY version")]

    def table_exists(self, name: str) -> bool:
        return bool(self.query("SELECT to_regclass(%s) IS NOT NULL", (name,))[0][0])

    def init_backup_log(self) -> None:
        from guard.backups.table import install
        from guard.config import BackupLogConfig

        with psycopg.connect(self.db_url, autocommit=True) as conn:
            install(conn, BackupLogConfig())

    def log_automated_backup(self, *, age: dt.timedelta = dt.timedelta(hours=1), status: str = "completed") -> None:
        self.query(
            "INSERT INTO public.backup_logs (kind, reason, created_by, created_at, metadata) "
            "VALUES ('automated', 'nightly', 'test', now() - %s, jsonb_build_object('status', %s::text))",
            (age, status),
        )

    def manual_entries(self) -> list[dict[str, Any]]:
        if not self.table_exists("public.backup_logs"):
            return []
        rows = self.query("SELECT reason, created_by, metadata FROM public.backup_logs WHERE kind = 'manual' ORDER BY id")
        return [{"reason": r[0], "created_by": r[1], "metadata": r[2]} for r in rows]


def undo_then_undo_the_undo(project: Project) -> None:
    """`guard undo --yes` on the last run, then `guard undo UNDO_ID --yes` on that undo: both
    exit 0 (the caller compares the database with the state after the run)."""
    first = project.guard("undo", "--yes")
    assert first.code == 0, first.output
    undo_id = project.query("SELECT run_id FROM guard.runs WHERE command = 'undo'")[0][0]
    again = project.guard("undo", undo_id, "--yes")
    assert again.code == 0, again.output


def wrapped_changes(project: Project, sql: str) -> list[str]:
    """`guard run -- SCRIPT` where SCRIPT runs ``sql`` with psql: the changes the report lists,
    as "kind name action"."""
    script = project.root / "wrapped.sh"
    script.write_text(f"#!/bin/sh\npsql -X -q -d \"$GUARD_DATABASE_URL\" -c '{sql}'\n")
    script.chmod(0o755)
    result = project.guard("run", "--reason", "wrapped", "--", str(script))
    assert result.code == 0, result.output
    changes = result.report["wrapped"]["changes"] if result.report else []
    return [f"{c['kind']} {c['name']} {c['action']}" for c in changes]

