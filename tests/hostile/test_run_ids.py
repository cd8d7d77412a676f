"""Run ids (issue #16, item 5): GUARD_RUN_ID=${{ github.run_id }} repeats when a job is re-run,
and any text can be put in it. Every run stays distinct (the attempt is added; a reused id is
refused before any change), ids are checked, and Supabase restore point names cannot collide
or be taken from another run."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.backups import BackupEntry, SinkContext, SinkError
from guard.backups.http_client import HttpPolicy
from guard.backups.supabase import RestorePointSink, restore_point_name
from guard.cli import cli
from guard.config import Config
from guard.run.report import RUN_ID_MAX, run_id_from
from tests.fakes import FakeSupabase
from tests.support import Project

TOKEN = "sbp_0123456789abcdef0123456789abcdef01234567"
REF = "abcdefghijklmnopqrst"
FAST = HttpPolicy(timeout=1.0, retries=2, backoff=0.05, max_retry_after=1.0, total=10.0)


@pytest.fixture
def api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=TOKEN).start()
    yield fake
    fake.stop()


BAD_IDS = ['a"b', "a'b", "a b", "a\nb", "a\rb", "../etc", "a/b", "a\\b", "x" * (RUN_ID_MAX + 1), "é",
           "-lead", ".hidden", "_x", "a;b", "$(id)", "a`id`", "ab\t", "::error::x", "a%0Ab", "Ⅻ", "１２３"]


@pytest.mark.parametrize("bad", BAD_IDS, ids=[f"id{i}" for i in range(len(BAD_IDS))])
def test_a_run_id_that_cannot_name_things_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bad: str
) -> None:
    for name in list(os.environ):
        if name.startswith(("GUARD_", "GITHUB_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["check"], env={"GUARD_RUN_ID": bad})
    assert result.exit_code == 2, result.output
    assert "GUARD_RUN_ID" in result.output and "Traceback" not in result.output
    assert bad not in result.output or bad.isalnum()


@pytest.mark.parametrize("given,attempt,expected", [
    ("12345678", "", "12345678"),
    ("12345678", "1", "12345678"),
    ("12345678", "2", "12345678-a2"),
    ("12345678", "17", "12345678-a17"),
    ("12345678", "x", "12345678"),
    ("a" * RUN_ID_MAX, "", "a" * RUN_ID_MAX),
    ("run.1_x-Y", "", "run.1_x-Y"),
])
def test_run_ids_accepted_and_each_attempt_distinct(given: str, attempt: str, expected: str) -> None:
    assert run_id_from({"GUARD_RUN_ID": given, "GITHUB_RUN_ATTEMPT": attempt}) == expected


def test_the_attempt_may_not_push_an_id_past_its_bound() -> None:
    from guard.errors import ConfigError

    with pytest.raises(ConfigError, match="GUARD_RUN_ID"):
        run_id_from({"GUARD_RUN_ID": "a" * RUN_ID_MAX, "GITHUB_RUN_ATTEMPT": "2"})
    assert len(run_id_from({})) == 20


def _runs(project: Project) -> list[tuple[str, str]]:
    return [(r[0], r[1]) for r in project.query("SELECT run_id, status FROM guard.runs ORDER BY started_at")]


def test_a_reused_run_id_is_refused_before_any_change(project: Project) -> None:
    project.init_backup_log()
    project.log_automated_backup()
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    first = project.guard("run", GUARD_RUN_ID="9876543210")
    assert first.code == 0, first.output
    project.add("20240102000000_b.sql", "create table public.b (id int);\n")
    second = project.guard("run", GUARD_RUN_ID="9876543210")
    assert second.code == 2, second.output
    assert "GUARD_RUN_ID" in second.stderr and "Traceback" not in second.output
    assert project.history() == ["20240101000000"]
    # The first run's records are untouched and not claimed by the second.
    assert _runs(project) == [("9876543210", "applied")]
    assert [e["metadata"]["pending_versions"] for e in project.manual_entries()] == [["20240101000000"]]


def test_a_re_run_job_is_its_own_run_with_its_own_backup_log_entry(project: Project) -> None:
    project.init_backup_log()
    project.log_automated_backup()
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    first = project.guard("run", GUARD_RUN_ID="555", GITHUB_RUN_ATTEMPT="1")
    assert first.code == 0, first.output
    project.add("20240102000000_b.sql", "create table public.b (id int);\n")
    second = project.guard("run", GUARD_RUN_ID="555", GITHUB_RUN_ATTEMPT="2")
    assert second.code == 0, second.output
    assert second.report is not None and second.report["run_id"] == "555-a2"
    assert _runs(project) == [("555", "applied"), ("555-a2", "applied")]
    entries = project.manual_entries()
    assert [(e["metadata"]["run_id"], e["metadata"]["pending_versions"]) for e in entries] == [
        ("555", ["20240101000000"]), ("555-a2", ["20240102000000"])]


def _guard_yml(project: Project, api_url: str) -> None:
    (project.root / "guard.yml").write_text(
        "backups:\n  providers:\n    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: {api_url}\n"
        "log:\n  sinks:\n    - type: supabase-restore-point\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: {api_url}\n      poll: 100ms\n"
        "    - type: table\n")


def test_ids_sharing_20_characters_get_their_own_restore_points(project: Project, api: FakeSupabase) -> None:
    project.init_backup_log()
    api.backup_at(dt.timedelta(hours=2))
    _guard_yml(project, api.url)
    ids = ["release-2026-11-30-main-1", "release-2026-11-30-main-2"]
    for index, run_id in enumerate(ids):
        project.add(f"2024010{index + 1}000000_t{index}.sql", f"create table public.t{index} (id int);\n")
        result = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN, GUARD_RUN_ID=run_id)
        assert result.code == 0, result.output
    names = [e["metadata"]["supabase_restore_point"] for e in project.manual_entries()]
    assert len(set(names)) == 2 and all(len(n) <= 20 for n in names)
    assert set(names) == set(api.restore_points) == {restore_point_name(i) for i in ids}


def test_a_restore_point_of_that_name_from_before_blocks_the_run(project: Project, api: FakeSupabase) -> None:
    project.init_backup_log()
    api.backup_at(dt.timedelta(hours=2))
    api.restore_points["20261130-older"] = {"polls": 0}  # another run's, or an operator's
    _guard_yml(project, api.url)
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN, GUARD_RUN_ID="20261130-older")
    assert result.code == 3, result.output
    assert "already exists" in result.stderr and "Traceback" not in result.output
    assert project.history() == []
    assert _runs(project) == [("20261130-older", "blocked")]


def test_a_lost_answer_then_409_is_this_runs_own_restore_point(api: FakeSupabase) -> None:
    api.fault("/database/backups/restore-point", "lost")
    sink = RestorePointSink(REF, TOKEN, api.url, FAST, wait=5.0, poll=0.05, label="rp")
    entry = BackupEntry("20261125013000-a1b2c", "manual", "Before migration", "guard (ci)", {})
    name = sink.record(entry, SinkContext(conn=None, config=Config()))  # type: ignore[arg-type]
    assert name == "20261125013000-a1b2c" and list(api.restore_points) == [name]
    posts = [r for r in api.requests if r["method"] == "POST"]
    assert len(posts) == 2  # the first was handled, its answer lost; the retry met 409


def test_a_409_on_the_first_request_is_never_taken_as_success(api: FakeSupabase) -> None:
    api.restore_points["short"] = {"polls": 0}
    sink = RestorePointSink(REF, TOKEN, api.url, FAST, wait=5.0, poll=0.05, label="rp")
    with pytest.raises(SinkError, match="not created by this run"):
        sink.record(BackupEntry("short", "manual", "r", "g", {}), SinkContext(conn=None, config=Config()))  # type: ignore[arg-type]


def test_another_runs_backup_log_entry_is_never_taken_as_this_runs(project: Project) -> None:
    """Even with the journal row gone (an operator cleaned guard.runs), the backup log's entry
    under the same id belongs to the earlier run: the sink refuses, nothing is applied."""
    project.init_backup_log()
    project.log_automated_backup()
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    assert project.guard("run", GUARD_RUN_ID="reused-1").code == 0
    project.query("DELETE FROM guard.runs")
    project.add("20240102000000_b.sql", "create table public.b (id int);\n")
    second = project.guard("run", GUARD_RUN_ID="reused-1")
    assert second.code == 3, second.output
    assert "not this run's" in second.stderr and "Traceback" not in second.output
    assert project.history() == ["20240101000000"]
    assert [e["metadata"]["pending_versions"] for e in project.manual_entries()] == [["20240101000000"]]
    assert _runs(project) == [("reused-1", "blocked")]
