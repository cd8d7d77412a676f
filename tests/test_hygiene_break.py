"""Small trust holes in what guard shows: a damaged backup-log row that blocked every run with no
way out named, a backup dated in the future shown as "age 0s", run ids echoed at any length.
Real CLI, real PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest

from tests.support import Project, cover

# Damage a database writer (or a bad restore) can leave in backup_logs, as SQL SET clauses.
DAMAGE = {
    "metadata-string": ("metadata = '\"x\"'", "metadata is a JSON string, not an object"),
    "metadata-array": ("metadata = '[1, 2]'", "metadata is a JSON array, not an object"),
    "metadata-number": ("metadata = '42'", "metadata is a JSON number, not an object"),
    "metadata-null": ("metadata = 'null'", "metadata is a JSON null, not an object"),
    "infinity": ("created_at = 'infinity'", "created_at is infinity"),
    "year-20000": ("created_at = '20000-01-01'", "is outside the years 1 to 9999"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_row_is_named_with_the_command_that_clears_it(ready: Project, damage: str) -> None:
    setting, what = DAMAGE[damage]
    (row_id,) = ready.query(f"UPDATE public.backup_logs SET {setting} RETURNING id")[0]
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    command = f"guard backup remove {row_id}"
    for args in (("run",), ("backup", "status"), ("backup", "status", "--json")):
        blocked = ready.guard(*args)
        assert blocked.code == 3, blocked.output
        assert "Traceback" not in blocked.output and "internal error" not in blocked.output
        assert f"entry {row_id} of public.backup_logs is damaged" in blocked.output and what in blocked.output
        assert command in blocked.output
    assert not ready.table_exists("a")
    removed = ready.guard("backup", "remove", str(row_id))
    assert removed.code == 0, removed.output
    assert f"removed automated entry {row_id} of public.backup_logs" in removed.stdout
    assert ready.query("SELECT count(*) FROM public.backup_logs WHERE id = %s", (row_id,)) == [(0,)]
    ready.log_automated_backup(age=dt.timedelta(hours=1))
    assert ready.guard("run").code == 0


def test_an_old_damaged_row_behind_a_good_one_blocks_nothing(ready: Project) -> None:
    ready.query("INSERT INTO public.backup_logs (kind, reason, created_at, metadata)"
                " VALUES ('automated', 'old', '-infinity', '{}'), ('automated', 'bad', now() - interval '3 days', '[]')")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    status = ready.guard("backup", "status")
    assert status.code == 0, status.output
    assert "damaged metadata" in status.stdout  # the recent entries list it as it is
    assert ready.guard("run").code == 0


@pytest.mark.parametrize("arg", ["0", "-1", "abc", "99999999999999999999", "1.5"])
def test_backup_remove_refuses_what_is_not_an_entry_id(ready: Project, arg: str) -> None:
    result = ready.guard("backup", "remove", "--", arg)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 4
    assert ready.query("SELECT count(*) FROM public.backup_logs") == [(1,)]


def test_backup_remove_of_a_missing_entry_says_so(ready: Project) -> None:
    result = ready.guard("backup", "remove", "987654")
    assert result.code == 2, result.output
    assert "no entry 987654 in public.backup_logs" in result.stderr
    assert ready.query("SELECT count(*) FROM public.backup_logs") == [(1,)]


@pytest.mark.parametrize(("ahead", "shown", "counted"), [
    (dt.timedelta(hours=2), "2h 00min in the future", False),
    (dt.timedelta(days=400), "400d 0h in the future", False),
    (dt.timedelta(minutes=3), "3min in the future", True),
])
def test_a_backup_dated_in_the_future_is_shown_so_everywhere(ready: Project, tmp_path: Path, ahead: dt.timedelta,
                                                             shown: str, counted: bool) -> None:
    """Not "age 0s": the text, the JSON, the step summary and the page say how far ahead."""
    ready.query("DELETE FROM public.backup_logs")
    ready.log_automated_backup(age=-ahead - dt.timedelta(seconds=20))
    page, summary = tmp_path / "backups.html", tmp_path / "summary.md"
    text = ready.guard("backup", "status", "--html", str(page), GITHUB_ACTIONS="true",
                       GITHUB_STEP_SUMMARY=str(summary))
    assert text.code == (0 if counted else 3), text.output
    as_json = json.loads(ready.guard("backup", "status", "--json").stdout)["providers"][0]
    assert as_json["age"] == shown and as_json["age_seconds"] < 0
    html = page.read_text()
    assert re.search(rf"<td>{re.escape(shown)}</td>", html), html
    assert f"dated {shown}" in html and ">0s<" not in html and "0s ago" not in html
    assert f"| {shown} |" in summary.read_text()
    if not counted:
        assert "in the future" in text.stdout and "not counted" in html


LONG = "20261125013000-a1b2c" + "X" * 100_000
ODD_IDS = [LONG, "a\nb::error::x", "\x1b[31mred\x1b[0m", "../../etc/passwd", "x" * 41, "run id", "é" * 5, "-dash"]


COMMANDS = [("restore-plan",), ("restore-plan", "--format", "json"), ("restore-plan", "--format", "markdown"),
            ("undo",), ("undo", "--json"), ("undo", "--yes")]
ID_COMMANDS = cover(ODD_IDS, COMMANDS)


@pytest.mark.parametrize(("run_id", "command"), ID_COMMANDS,
                         ids=[f"{ODD_IDS.index(i)}-{'_'.join(c)}" for i, c in ID_COMMANDS])
def test_a_run_id_guard_never_issued_is_refused_in_one_short_line(ready: Project, run_id: str,
                                                                 command: tuple[str, ...]) -> None:
    result = ready.guard(*command, "--", run_id)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output and len(result.output) < 600, result.output[:800]
    assert "is not a run id guard issues" in result.output
    assert len(result.stderr.strip().splitlines()) == (0 if "--json" in command else 1)
    assert "\x1b" not in result.output and "\n::error" not in result.output
    if len(run_id) > 24:
        assert run_id[:25] not in result.output
        assert "…" in result.output or "\\u2026" in result.output  # JSON escapes it
    if "json" in command or "--json" in command:
        payload = json.loads(result.stdout)
        assert payload["run_id"] is None or len(payload["run_id"]) <= 30


@pytest.mark.parametrize("run_id", ["20261125013000-a1b2c", "12345678", "a" * 40, "run.2-x_y"])
def test_a_run_id_of_guards_shape_is_looked_up(ready: Project, run_id: str) -> None:
    assert ready.guard("init").code == 0
    plan = ready.guard("restore-plan", run_id)
    assert plan.code != 0, plan.output
    assert f"no run {run_id} in the journal" in plan.stderr
    undo = ready.guard("undo", run_id)
    assert undo.code == 3, undo.output
    assert f"no guarded run {run_id} in the journal" in undo.stderr


def test_acknowledge_refuses_a_run_id_guard_never_issued(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = ready.guard("run", "--acknowledge", LONG, "--reason", "checked")
    assert result.code == 2, result.output
    assert "--acknowledge '20261125013000-a1b2cXXXX…' is not a run id guard issues" in result.stderr
    assert len(result.output) < 1000 and not ready.table_exists("a")


def test_backup_remove_without_the_backup_log_says_run_init(project: Project) -> None:
    result = project.guard("backup", "remove", "1")
    assert result.code == 2, result.output
    assert "backup log table public.backup_logs does not exist (run `guard init`)" in result.stderr
