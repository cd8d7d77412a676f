"""The Backups page with hostile or damaged inputs: a drills.json with numbers no float holds,
a journal with more runs than a page can show."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.report.backup_facts import MAX_RUNS, read_drills
from tests.support import Project

JUNK_SECONDS = ["1" + "0" * 400, "1e999", "-1e999", "-5", "true", '"12"', "null", "[1]", "NaN"]


@pytest.mark.parametrize("junk", JUNK_SECONDS)
def test_a_drill_with_a_restore_time_no_float_holds_shows_no_time(tmp_path: Path, junk: str) -> None:
    (tmp_path / "drills.json").write_text(
        f'[{{"drill_id": "d1", "finished_at": "2026-11-29T00:00:00Z", "ok": true, "restore_seconds": {junk}}},'
        ' {"drill_id": "d2", "finished_at": "2026-11-30T00:00:00Z", "ok": true, "restore_seconds": 12.5}]')
    drills = read_drills(None, tmp_path)
    assert [(d.drill_id, d.restore_seconds) for d in drills] == [("d1", None), ("d2", 12.5)]


def test_a_journal_with_more_runs_than_a_page_shows_is_cut_and_says_so(project: Project, tmp_path: Path) -> None:
    assert project.guard("init").code == 0
    project.log_automated_backup()
    project.query("INSERT INTO guard.runs (run_id, command, started_at, finished_at, status, exit_code, report) "
                  "SELECT 'r-' || g, 'run', now() - (g || ' seconds')::interval, now(), 'applied', 0, "
                  "'{}'::jsonb FROM generate_series(1, %s) g", (MAX_RUNS + 50,))
    page_path = tmp_path / "page.html"
    result = project.guard("backup", "status", "--html", str(page_path))
    assert result.code == 0, result.output
    page = page_path.read_text(encoding="utf-8")
    assert f"only the newest {MAX_RUNS} guarded runs are on the timeline" in page
    assert page.count("<title>run applied (exit 0): run r-") == MAX_RUNS
    assert "run r-1," in page and f"run r-{MAX_RUNS + 1}," not in page
    assert page.count("<article") == 20
