"""Internal errors (issue #16, item 10): an unexpected exception inside the guarded run ends
with the truth. Before the first migration statement: exit 3, the journal entry closed (the
next run is not blocked), one line. After: what the journal says committed (exit 1 when
nothing did, 4 when something did or cannot be known). Never a bare traceback; -v shows it.

The non-UTF-8 file name is the issue's own example, through a real process. The other
exceptions stand for bugs, so they are injected (monkeypatch) at each step of a real run on
a real database, through the real command line in this process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guard.cli import cli
from tests.support import Project


def _runs(project: Project) -> list[tuple[str, str]]:
    if not project.table_exists("guard.runs"):
        return []
    return [(r[0], r[1]) for r in project.query("SELECT run_id, status FROM guard.runs ORDER BY started_at")]


def _ready(project: Project, *files: str) -> None:
    project.init_backup_log()
    project.log_automated_backup()
    for index, name in enumerate(files or ("a",)):
        project.add(f"2024010{index + 1}000000_{name}.sql", f"create table public.{name} (id int);\n")


def _guard(project: Project, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> tuple[int, str]:
    for name in list(os.environ):
        if name.startswith(("GUARD_", "GITHUB_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(project.root)
    result = CliRunner().invoke(cli, list(args), env={"GUARD_DATABASE_URL": project.db_url, **env})
    return result.exit_code, result.output + (result.stderr if result.stderr != result.output else "")


def _raise(*_args: Any, **_kwargs: Any) -> Any:
    raise RuntimeError("injected bug\nsecond line")


@pytest.mark.parametrize("encoding", ["", "utf-8:strict"])
def test_a_file_name_that_is_not_utf8_is_exit_3_and_leaves_no_running_entry(project: Project, encoding: str) -> None:
    _ready(project)
    os.rename(project.migrations / "20240101000000_a.sql",
              os.fsencode(project.migrations) + b"/20240101000000_\xff.sql")
    env = project.env(**({"PYTHONIOENCODING": encoding, "GITHUB_ACTIONS": "true"} if encoding else {}))
    proc = subprocess.run([sys.executable, "-m", "guard", "run"], cwd=project.root, env=env,
                          capture_output=True, timeout=120)
    err = proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == 3, err
    assert "Traceback" not in err and "outcome unknown" not in err.lower()
    assert project.history() == []
    assert all(status != "running" for _id, status in _runs(project))
    # The next run is not blocked by it.
    os.remove(os.fsencode(project.migrations) + b"/20240101000000_\xff.sql")
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    again = project.guard("run")
    assert again.code == 0, again.output


@pytest.mark.parametrize("target", [
    "guard.run.lint_gate.lint",
    "guard.run.backup_gate.confirm_backup",
    "guard.run.restore_point.mark",
    "guard.run.protect.take_snapshot_if_due",
    "guard.run.apply.apply_pending",
])
def test_an_unexpected_error_before_any_statement_is_exit_3_nothing_changed(
    project: Project, monkeypatch: pytest.MonkeyPatch, target: str
) -> None:
    _ready(project, "a", "b")
    monkeypatch.setattr(target, _raise)
    code, output = _guard(project, monkeypatch, "run")
    # apply_pending is step 11 itself: nothing committed, so the truth is "rolled back".
    assert code == (1 if target.endswith("apply_pending") else 3), output
    assert "Traceback" not in output and "injected bug" in output and "second line" not in output
    assert project.history() == []
    assert all(status in ("blocked", "failed_rolled_back") for _id, status in _runs(project)), _runs(project)
    assert project.guard("run").code == 0  # not blocked by an open entry


def _second_journal_row_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """An injected bug: building the second file's journal row raises."""
    import guard.journal

    real = guard.journal.committed_row
    calls: list[str] = []

    def second_fails(run_id: str, version: str) -> Any:
        if version not in calls:  # a file's row is built more than once (its records, its check)
            calls.append(version)
        if len(calls) == 2:
            raise RuntimeError("injected bug in the second file")
        return real(run_id, version)

    monkeypatch.setattr(guard.journal, "committed_row", second_fails)


def test_an_unexpected_error_after_a_file_committed_is_exit_4_with_the_truth(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready(project, "a", "b", "c")
    _second_journal_row_fails(monkeypatch)
    # One file at a time (lock retries keep files out of a stream), so the bug strikes after
    # the first file committed.
    code, output = _guard(project, monkeypatch, "run", GUARD_MIGRATIONS_LOCK_RETRIES="1")
    assert code == 4, output
    assert "Traceback" not in output and "outcome unknown" not in output.lower()
    assert project.history() == ["20240101000000"]
    assert [status for _id, status in _runs(project)] == ["failed_partially_applied"]
    committed = project.query("SELECT committed FROM guard.runs")[0][0]
    assert committed == ["20240101000000"]


def test_an_unexpected_error_while_a_stream_is_built_changes_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Streamed files (migrations/pipeline.py) are all written out before any is sent: a bug
    while the second file's journal row is built leaves every file unsent, exit 1."""
    _ready(project, "a", "b", "c")
    _second_journal_row_fails(monkeypatch)
    code, output = _guard(project, monkeypatch, "run")
    assert "Traceback" not in output and "outcome unknown" not in output.lower()
    assert project.history() == []
    assert code == 1, output


def test_an_unexpected_error_with_the_connection_gone_is_outcome_unknown(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready(project, "a")
    import guard.run.apply

    real = guard.run.apply.apply_pending

    def then_lose_the_connection(conn: Any, *args: Any, **kwargs: Any) -> Any:
        real(conn, *args, **kwargs)
        conn.close()
        raise RuntimeError("injected bug after apply")

    monkeypatch.setattr(guard.run.apply, "apply_pending", then_lose_the_connection)
    code, output = _guard(project, monkeypatch, "run")
    assert code == 4, output
    assert "outcome unknown" in output.lower() and "Traceback" not in output


def test_verbose_shows_the_traceback(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    _ready(project)
    monkeypatch.setattr("guard.run.protect.take_snapshot_if_due", _raise)
    code, output = _guard(project, monkeypatch, "-v", "run")
    assert code == 3 and "Traceback" in output and "RuntimeError: injected bug" in output


def test_in_github_actions_an_internal_error_is_an_annotation(
    project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _ready(project)
    monkeypatch.setattr("guard.run.protect.take_snapshot_if_due", _raise)
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    code, output = _guard(project, monkeypatch, "run", GITHUB_ACTIONS="true",
                          GITHUB_STEP_SUMMARY=str(summary), GITHUB_OUTPUT=str(outputs))
    assert code == 3, output
    assert "Traceback" not in output
    assert any(line.startswith("::error") and "injected bug" in line for line in output.splitlines()), output


@pytest.mark.parametrize("github", ["", "true"])
def test_other_commands_give_one_line_for_an_unexpected_error(
    project: Project, monkeypatch: pytest.MonkeyPatch, github: str
) -> None:
    _ready(project)
    monkeypatch.setattr("guard.commands.backup.backup_status_command", _raise)
    code, output = _guard(project, monkeypatch, "backup", "status", **({"GITHUB_ACTIONS": github} if github else {}))
    assert code == 3, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and "injected bug" in lines[0] and "Traceback" not in output
    assert lines[0].startswith("::error") == bool(github)

