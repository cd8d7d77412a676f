"""The Action's html-report input: the page is written, its path is an output, and a run's
own outputs are not disturbed by the page's extra invocation."""

from __future__ import annotations

from pathlib import Path

from tests.support import Project
from tests.test_action import action_bin, installed, run_action  # noqa: F401 - fixtures


def test_backup_status_writes_the_page_and_names_it(ready: Project, installed: Path) -> None:  # noqa: F811
    result = run_action({"command": "backup-status", "database-url": ready.db_url, "html-report": "out/backups.html"},
                        cwd=ready.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    page = Path(result.outputs["html-report"])
    assert page == (ready.root / "out" / "backups.html").resolve() and page.is_file()
    assert "<svg" in page.read_text(encoding="utf-8") and result.outputs["status"] == "ok"
    assert "```mermaid" in result.summary


def test_run_with_html_report_keeps_its_own_outputs(ready: Project, installed: Path) -> None:  # noqa: F811
    ready.add("20240101000000_items.sql", "create table public.items (id int primary key);\n")
    result = run_action({"command": "run", "database-url": ready.db_url, "html-report": "backups.html"},
                        cwd=ready.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs["status"] == "applied" and result.outputs["exit-code"] == "0"
    page = Path(result.outputs["html-report"]).read_text(encoding="utf-8")
    assert 'data-outcome="ok"' in page  # the run just made is on it
    assert "mermaid" not in result.summary  # the page's invocation wrote no summary of its own


def test_no_html_report_no_output(ready: Project, installed: Path) -> None:  # noqa: F811
    result = run_action({"command": "backup-status", "database-url": ready.db_url}, cwd=ready.root, bin_dir=installed)
    assert result.code == 0 and result.outputs["html-report"] == ""
