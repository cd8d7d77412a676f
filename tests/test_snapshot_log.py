"""`guard snapshot` logs each snapshot as a manual backup in the table and http sinks (never
the restore-point sink), once per snapshot id; get_backup_stats() and the page count it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from guard.config import load_config
from guard.snapshot import Manifest
from guard.snapshot_log import record_snapshot
from tests.fakes import FakeAdmin, FakeSupabase
from tests.support import Project

ADMIN_KEY = "admin-key-Zx81-snapshot-log"
TOKEN = "sbp_snapshot_log_token_0123456789"


@pytest.fixture
def services() -> Iterator[tuple[FakeAdmin, FakeSupabase]]:
    admin, api = FakeAdmin(token=ADMIN_KEY).start(), FakeSupabase(token=TOKEN).start()
    yield admin, api
    admin.stop()
    api.stop()


def _configure(project: Project, admin: FakeAdmin, api: FakeSupabase) -> None:
    (project.root / "guard.yml").write_text(
        "log:\n  sinks:\n    - type: table\n"
        f"    - type: http\n      url: {admin.url}/api/admin/backup\n      token: ${{ADMIN_API_KEY}}\n"
        "    - type: supabase-restore-point\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: {api.url}\n",
        encoding="utf-8",
    )


def _snapshot(project: Project, out: Path, *args: str) -> tuple[Manifest, str]:
    result = project.guard("snapshot", "--no-encrypt", "--out", str(out), *args,
                           ADMIN_API_KEY=ADMIN_KEY, SUPABASE_ACCESS_TOKEN=TOKEN)
    assert result.code == 0, result.output
    manifests = list(out.glob("*.manifest.json"))
    assert len(manifests) == 1
    return Manifest.load(manifests[0]), result.output


def test_snapshot_is_logged_as_a_manual_backup(project: Project, tmp_path: Path,
                                               services: tuple[FakeAdmin, FakeSupabase]) -> None:
    admin, api = services
    assert project.guard("init").code == 0
    _configure(project, admin, api)
    manifest, output = _snapshot(project, tmp_path / "s", "--reason", "quarterly archive <Q4>")
    assert manifest.id and f"snapshot-{manifest.id}" not in output  # the key is not shouted
    rows = project.query("SELECT kind, reason, created_by, metadata FROM public.backup_logs")
    assert len(rows) == 1
    kind, reason, created_by, meta = rows[0]
    assert (kind, reason) == ("manual", "quarterly archive <Q4>") and created_by
    assert meta["method"] == "snapshot" and meta["file"] == manifest.file
    assert meta["sha256"] == manifest.sha256 and meta["bytes"] == manifest.bytes == manifest.path.stat().st_size
    assert meta["run_id"] == f"snapshot-{manifest.id}" and meta["snapshot_id"] == manifest.id
    # The admin endpoint got it with the snapshot's id as idempotency key; no restore point.
    posted = [r for r in admin.requests if r["method"] == "POST"]
    assert len(posted) == 1 and posted[0]["headers"]["Idempotency-Key"] == f"snapshot-{manifest.id}"
    assert posted[0]["body"]["kind"] == "manual" and posted[0]["body"]["guard"]["sha256"] == manifest.sha256
    assert api.requests == []
    assert "logged    manual backup" in output and ADMIN_KEY not in output
    stats = project.query("SELECT public.get_backup_stats()")[0][0]
    assert stats["manual_backups"] == 1 and stats["total_backups"] == 1
    # backup status and the page count it.
    status = project.guard("backup", "status", "--json", "--html", str(tmp_path / "p.html"),
                           ADMIN_API_KEY=ADMIN_KEY, SUPABASE_ACCESS_TOKEN=TOKEN)
    assert json.loads(status.stdout)["stats"]["manual_backups"] == 1
    page = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert manifest.file in page and "quarterly archive &lt;Q4&gt;" in page


def test_logging_the_same_snapshot_twice_leaves_one_entry(project: Project, tmp_path: Path,
                                                          services: tuple[FakeAdmin, FakeSupabase]) -> None:
    admin, api = services
    assert project.guard("init").code == 0
    _configure(project, admin, api)
    manifest, _output = _snapshot(project, tmp_path / "s")
    config = load_config(config_path=str(project.root / "guard.yml"), cwd=project.root,
                         environ=project.env(ADMIN_API_KEY=ADMIN_KEY, SUPABASE_ACCESS_TOKEN=TOKEN))
    again = record_snapshot(manifest, config, reason=None, environ={}, progress=lambda _l: None)
    assert len(again) == 2  # both sinks answered
    assert project.query("SELECT count(*) FROM public.backup_logs")[0][0] == 1
    keys = {r["headers"]["Idempotency-Key"] for r in admin.requests if r["method"] == "POST"}
    assert keys == {f"snapshot-{manifest.id}"} and api.requests == []


def test_snapshot_without_a_backup_log_still_succeeds_and_says_why(project: Project, tmp_path: Path) -> None:
    result = project.guard("snapshot", "--no-encrypt", "--out", str(tmp_path / "s"))
    assert result.code == 0, result.output
    assert list((tmp_path / "s").glob("*.dump"))
    assert "not logged to table public.backup_logs" in result.stderr and "guard init" in result.stderr
    assert "Traceback" not in result.output
