"""The Backups page (`guard backup status --html`): its DOM from a real database with 40 days
of backups, and the page in a real headless Chromium (no console error, not blank)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from guard.drill import DrillResult, record_drill
from tests.browser import console_errors, print_to_pdf, screenshot
from tests.conftest import TEST_PASSWORD
from tests.support import Project

HOSTILE = '<script>alert("x")</script> & <b>bold</b> "quoted" \'single\''
GAP_NIGHTS = (10, 11, 12)  # nights (days ago) without an automated backup
FAILED_NIGHT = 20  # the 02:00 attempt failed; a retry completed at 04:00


# ---------------------------------------------------------------------- a small DOM


@dataclass
class Node:
    tag: str
    attrs: dict[str, str]
    parent: Node | None = None
    children: list[Node] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def all(self, tag: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for child in self.children:
            if (tag is None or child.tag == tag) and all(child.attrs.get(k.rstrip("_").replace("_", "-")) == v for k, v in attrs.items()):
                found.append(child)
            found.extend(child.all(tag, **attrs))
        return found

    def one(self, tag: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, **attrs)
        assert len(found) == 1, f"expected one <{tag} {attrs}>, found {len(found)}"
        return found[0]

    def content(self) -> str:
        return "".join(self.text) + "".join(c.content() for c in self.children)

    def ancestors(self) -> list[Node]:
        node, out = self.parent, []
        while node is not None:
            out.append(node)
            node = node.parent
        return out


VOID = {"meta", "link", "br", "img", "input", "hr", "area", "base", "col", "source", "wbr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#document", {})
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"stray </{tag}>"
        self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.text.append(data)


def parse(page: str) -> Node:
    builder = _Builder()
    builder.feed(page)
    builder.close()
    assert builder.current is builder.root, f"unclosed <{builder.current.tag}>"
    return builder.root


# ---------------------------------------------------------------------- 40 days of history


@dataclass
class History:
    project: Project
    now: dt.datetime
    gap_start: dt.datetime
    gap_end: dt.datetime
    ok_run: str
    failed_run: str


def _night(now: dt.datetime, days_ago: int, hours: int = 0) -> dt.datetime:
    """The nightly backup ``days_ago`` days back (an hour before "now"'s time of day)."""
    return now - dt.timedelta(days=days_ago, hours=1) + dt.timedelta(hours=hours)


def _log(project: Project, kind: str, at: dt.datetime, reason: str, status: str = "completed") -> None:
    project.query("INSERT INTO public.backup_logs (kind, reason, created_by, created_at, metadata) "
                  "VALUES (%s, %s, 'cron', %s, jsonb_build_object('status', %s::text))", (kind, reason, at, status))


def _drill(project: Project, snapshots: Path, days_ago: int, seconds: float, ok: bool, now: dt.datetime) -> None:
    at = (now - dt.timedelta(days=days_ago)).isoformat()
    result = DrillResult(snapshot=f"prod-{days_ago}d-full.dump.enc", manifest="m.json", started_at=at, ok=ok,
                         restore_seconds=seconds, finished_at=at, reason=None if ok else "row count differs")
    record_drill(result, snapshot_dir=snapshots, production_url=project.db_url, progress=lambda _l: None)


def build_history(project: Project, tmp_path: Path) -> History:
    assert project.guard("init").code == 0
    now = project.query("SELECT now()")[0][0]
    for days_ago in range(40, -1, -1):
        if days_ago in GAP_NIGHTS:
            continue
        if days_ago == FAILED_NIGHT:
            _log(project, "automated", _night(now, days_ago), "Nightly backup", "failed")
            _log(project, "automated", _night(now, days_ago, 2), "Nightly backup (retry)")
            continue
        _log(project, "automated", _night(now, days_ago), "Nightly backup")
    # Untrusted text and a secret in a reason: the page escapes the first, masks the second.
    _log(project, "manual", now - dt.timedelta(days=7), HOSTILE)
    _log(project, "manual", now - dt.timedelta(days=6), f"key was {TEST_PASSWORD} oops")
    snapshots = tmp_path / "snapshots"
    _drill(project, snapshots, 25, 12.5, True, now)
    _drill(project, snapshots, 4, 18.25, False, now)
    project.add("20250101000000_create_things.sql", "create table public.things (id int primary key);\n")
    ok = project.guard("run", "--reason", "release 1")
    assert ok.code == 0, ok.output
    project.add("20250102000000_bad.sql", "insert into public.things values (1);\ninsert into public.things values (1);\n")
    failed = project.guard("run", "--reason", "release 2")
    assert failed.code == 1, failed.output
    assert ok.report is not None and failed.report is not None
    return History(project, now, gap_start=_night(now, GAP_NIGHTS[-1] + 1), gap_end=_night(now, GAP_NIGHTS[0] - 1),
                   ok_run=ok.report["run_id"], failed_run=failed.report["run_id"])


@pytest.fixture
def history(project: Project, tmp_path: Path) -> History:
    return build_history(project, tmp_path / "data")


def _write_page(history: History, tmp_path: Path) -> tuple[str, Any]:
    page_path = tmp_path / "out" / "backups.html"
    result = history.project.guard("backup", "status", "--html", str(page_path),
                                   GUARD_SNAPSHOT_DIR=str(tmp_path / "data" / "snapshots"))
    assert result.code == 0, result.output
    assert str(page_path) in result.stderr
    return page_path.read_text(encoding="utf-8"), result


# ---------------------------------------------------------------------- the DOM


def test_page_shows_the_databases_facts(history: History, tmp_path: Path) -> None:
    page, _result = _write_page(history, tmp_path)
    dom = parse(page)
    stats = history.project.query("SELECT public.get_backup_stats()")[0][0]
    for key in ("total_backups", "automated_backups", "manual_backups"):
        assert dom.one(data_stat=key).content() == str(stats[key]), key
    # The gap: marked in the chart (at the last backup before the missing nights) and listed.
    marks = dom.all("g", **{"class": "gap-mark"})
    assert [dt.datetime.fromisoformat(m.attrs["data-gap-start"]) for m in marks] == [history.gap_start]
    assert dom.one("ul", id="gaps").content().count("No completed automated backup for 4d 0h") == 1
    # The failed run's mark links to its restore plan, which is on the page (collapsed).
    links = {a.attrs["href"] for a in dom.all("a") if a.attrs.get("href", "").startswith("#")}
    failed_plan = f"#run-{history.failed_run}-plan"
    assert failed_plan in links
    plan = dom.one(id=failed_plan[1:])
    details = [n for n in plan.ancestors() if n.tag == "details"]
    assert details and "open" not in details[0].attrs
    assert "nothing was committed" in plan.content().lower() or "no restore needed" in plan.content().lower()
    article = dom.one("article", id=f"run-{history.failed_run}")
    assert article.attrs["data-outcome"] == "failed" and plan in article.all()
    assert dom.one("article", id=f"run-{history.ok_run}").attrs["data-outcome"] == "ok"
    assert f"#run-{history.ok_run}" in links
    # Drills: both, newest first, with their restore times.
    rows = dom.one("table", id="drills").all("tr")[1:]
    assert len(rows) == 2 and "18.2" in rows[0].content() and "FAIL" in rows[0].content()
    assert "12.5" in rows[1].content() and "pass" in rows[1].content()


def test_page_escapes_and_masks_and_stands_alone(history: History, tmp_path: Path) -> None:
    page, result = _write_page(history, tmp_path)
    dom = parse(page)
    assert TEST_PASSWORD not in page and TEST_PASSWORD not in result.output
    assert "key was *** oops" in dom.content()
    # The hostile reason is text, never markup: no script anywhere, and the words survive.
    assert dom.all("script") == [] and HOSTILE in dom.content()
    assert not [b for b in dom.all("b") if b.content() == "bold"]
    # Self-contained: nothing is fetched (no src, no stylesheet link, no external href).
    assert not [n for n in dom.all() if "src" in n.attrs]
    assert dom.all("link") == []
    assert not [n for n in dom.all() if n.attrs.get("href", "#").split(":")[0] in ("http", "https", "//")]
    # Charts have text alternatives; print layout for A4.
    for svg in dom.all("svg"):
        assert svg.attrs.get("aria-hidden") == "true" or svg.all("title"), svg.attrs
    assert "@media print" in page and "size:A4" in page


def test_step_summary_has_the_mermaid_timeline(history: History, tmp_path: Path) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    result = history.project.guard("backup", "status", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(summary),
                                   GITHUB_OUTPUT=str(outputs))
    assert result.code == 0, result.output
    text = summary.read_text(encoding="utf-8")
    block = text[text.index("```mermaid"):]
    assert "gantt" in block and "section Gaps over max_age" in block
    assert f"gap 4d 0h :crit, {history.gap_start.astimezone(dt.timezone.utc):%Y-%m-%d %H:%M}" in block
    assert block.count("applied :milestone") == 1 and block.count("failed - rolled back :crit, milestone") == 1
    assert "<script>" not in block and TEST_PASSWORD not in text


def test_unwritable_html_path_is_one_clear_line(history: History, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = history.project.guard("backup", "status", "--html", str(blocker / "page.html"))
    assert result.code == 2, result.output
    assert "--html: cannot write" in result.stderr and "Traceback" not in result.output


# ---------------------------------------------------------------------- a real browser


def test_page_renders_in_headless_chromium(history: History, tmp_path: Path) -> None:
    page, _result = _write_page(history, tmp_path)
    path = tmp_path / "out" / "backups.html"
    shot = tmp_path / "page.png"
    log = screenshot(path, shot)
    assert console_errors(log) == [], log
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "the screenshot is (nearly) blank"
    # Printed, it is on A4 (595 x 842 points), whatever the browser's default paper.
    pages = print_to_pdf(path, tmp_path / "page.pdf")
    assert pages and all(abs(w - 595.3) < 1 and abs(h - 841.9) < 1 for w, h in pages), pages


def test_browser_check_catches_console_errors_and_blank_pages(tmp_path: Path) -> None:
    """The two checks above can fail: a page with a script error, and an empty page."""
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><p>x</p><script>missingFunction()</script></body></html>")
    errors = console_errors(screenshot(bad, tmp_path / "bad.png"))
    assert errors and "missingFunction" in errors[0]
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>")
    screenshot(blank, tmp_path / "blank.png")
    from PIL import Image

    with Image.open(tmp_path / "blank.png") as image:
        colours = image.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) <= 2


def test_json_mode_also_writes_the_page(history: History, tmp_path: Path) -> None:
    path = tmp_path / "p.html"
    result = history.project.guard("backup", "status", "--json", "--html", str(path))
    assert result.code == 0, result.output
    assert json.loads(result.stdout)["ok"] is True and path.stat().st_size > 1000


def test_demo_ends_by_writing_the_page(tmp_path: Path) -> None:
    import re
    import shutil

    from tests.support import clean_env, run_guard

    result = run_guard("demo", cwd=tmp_path, env=clean_env(), timeout=240)
    assert result.code == 0, result.output
    match = re.search(r"Backups page \(a month of sample history added\): (\S+)", result.stdout)
    assert match, result.stdout[-2000:]
    page = Path(match.group(1))
    try:
        dom = parse(page.read_text(encoding="utf-8"))
        outcomes = sorted(a.attrs["data-outcome"] for a in dom.all("article"))
        assert outcomes == ["changed", "failed", "ok"]
        assert len(dom.all("g", **{"class": "gap-mark"})) == 1
        assert len(dom.one("table", id="drills").all("tr")) == 1 + 3
    finally:
        shutil.rmtree(page.parent, ignore_errors=True)


def test_empty_log_page_says_not_confirmed_and_marks_the_whole_window(project: Project, tmp_path: Path) -> None:
    assert project.guard("init").code == 0
    project.log_automated_backup(age=dt.timedelta(days=45))  # before the window: the gap starts at its edge
    path = tmp_path / "stale.html"
    result = project.guard("backup", "status", "--html", str(path))
    assert result.code == 3, result.output  # stale, and the page is written all the same
    dom = parse(path.read_text(encoding="utf-8"))
    assert "NOT confirmed" in dom.one(id="verdict").content()
    assert "now (ongoing)" in dom.one("ul", id="gaps").content()
    assert "45d" in dom.one(id="last-automated").content() or "OLDER" in dom.one(id="last-automated").content()
    assert dom.one(id="drills").tag == "p" and dom.all("article") == []


def test_a_journal_row_it_cannot_read_is_named_not_fatal(history: History, tmp_path: Path) -> None:
    history.project.query("UPDATE guard.runs SET report = jsonb_set(report, '{restore_plan}', "
                          "'{\"summary\": \"x\", \"steps\": [\"not an object\"]}') WHERE run_id = %s",
                          (history.failed_run,))
    page, _result = _write_page(history, tmp_path)
    dom = parse(page)
    assert f"run {history.failed_run} in guard.runs not shown" in dom.content()
    assert dom.one("article", id=f"run-{history.ok_run}")
