"""Providers that ask a backup tool: a real pgBackRest stanza, and WAL-G / Barman / any command
through stand-in executables that print each tool's documented JSON."""

from __future__ import annotations

import datetime as dt
import json
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from guard.backups import ProviderContext, check_backups
from guard.backups.external import Barman, GenericCommand, PgBackRest, WalG
from guard.config import Config, PluginConfig
from guard.embedded import Cluster
from tests.support import Project


def _verdict(provider: Any, max_age: float = 26 * 3600) -> Any:
    ctx = ProviderContext(conn=None, config=Config(), now=dt.datetime.now(dt.timezone.utc))  # type: ignore[arg-type]
    return check_backups([provider], [PluginConfig("x", {}, "test", max_age=max_age)], ctx).providers[0]


# ------------------------------------------------------------------ pgBackRest, for real


@dataclass
class Stanza:
    cluster: Cluster
    conf: Path
    name: str

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self.cluster.run_as_server_user(["pgbackrest", f"--config={self.conf}", f"--stanza={self.name}", *args])


@pytest.fixture(scope="module")
def stanza() -> Iterator[Stanza]:
    if shutil.which("pgbackrest") is None:
        pytest.fail("pgBackRest is not installed (apt-get install pgbackrest; .ci/run does it)")
    work = Path(tempfile.mkdtemp(prefix="guard-pgbr-"))
    for sub in ("repo", "log", "lock"):
        (work / sub).mkdir()
    conf = work / "pgbackrest.conf"
    cluster = Cluster(settings={
        "archive_mode": "on",
        "archive_command": f"pgbackrest --config={conf} --stanza=guard archive-push %p",
    })
    cluster.start()
    try:
        conf.write_text(
            "[global]\n"
            f"repo1-path={work}/repo\nrepo1-retention-full=2\nstart-fast=y\ncompress-type=none\n"
            f"log-level-console=warn\nlog-level-file=off\nlock-path={work}/lock\nlog-path={work}/log\n"
            "[guard]\n"
            f"pg1-path={cluster.data_dir}\npg1-port={cluster.port}\npg1-socket-path={cluster.data_dir.parent / 'run'}\n"
        )
        if os.geteuid() == 0:
            owner = pwd.getpwuid(cluster.data_dir.stat().st_uid)
            for path in (work, *work.rglob("*")):
                os.chown(path, owner.pw_uid, owner.pw_gid)
        result = Stanza(cluster, conf, "guard")
        created = result.run("stanza-create")
        assert created.returncode == 0, created.stderr
        yield result
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


def test_pgbackrest_fresh_full_backup_passes_then_a_lost_repository_blocks(stanza: Stanza, project: Project) -> None:
    provider = PgBackRest.from_config(
        PluginConfig("pgbackrest", {"stanza": "guard", "config": str(stanza.conf)}, "test"), Config())
    assert _verdict(provider).status == "missing"  # a stanza without backups

    backup = stanza.run("backup", "--type=full")
    assert backup.returncode == 0, backup.stderr
    verdict = _verdict(provider)
    assert verdict.status == "ok" and verdict.details["type"] == "full"
    assert verdict.pitr is not None and verdict.age_seconds < 600

    # guard run, end to end, gated by this stanza.
    project.init_backup_log()
    (project.root / "guard.yml").write_text(
        f"backups:\n  providers:\n    - type: pgbackrest\n      stanza: guard\n      config: {stanza.conf}\n"
    )
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    project.add("20240102000000_b.sql", "select 1/0;\n")
    result = project.guard("run")
    assert result.code == 4, result.output
    assert "pgbackrest --stanza=guard --delta --type=time" in result.stdout

    # The repository loses its backups (pgBackRest will not expire the only full backup;
    # a wiped or lost repository is the case that matters): the gate must close.
    repo_backups = stanza.conf.parent / "repo" / "backup" / "guard"
    for child in repo_backups.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    assert _verdict(provider).status in ("missing", "error")
    project.add("20240102000000_b.sql", "create table public.b (id int);\n")
    blocked = project.guard("run")
    assert blocked.code == 3, blocked.output
    assert project.history() == ["20240101000000"]


def test_pgbackrest_unknown_stanza_is_an_error(stanza: Stanza) -> None:
    provider = PgBackRest.from_config(
        PluginConfig("pgbackrest", {"stanza": "nope", "config": str(stanza.conf)}, "test"), Config())
    verdict = _verdict(provider)
    assert verdict.status == "error" and "pgbackrest nope" in verdict.message


# ------------------------------------------------------------------ stand-in executables


def _tool(tmp_path: Path, name: str, output: Any, *, code: int = 0, sleep: float = 0) -> str:
    path = tmp_path / name
    text = output if isinstance(output, str) else json.dumps(output)
    path.write_text(f"#!/bin/sh\nsleep {sleep}\ncat <<'EOF'\n{text}\nEOF\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def _iso(hours: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=hours)).isoformat()


def test_walg_detail_json(tmp_path: Path) -> None:
    out = [{"backup_name": "base_0001", "finish_time": _iso(30)}, {"backup_name": "base_0002", "finish_time": _iso(2)}]
    tool = _tool(tmp_path, "wal-g", out)
    verdict = _verdict(WalG.from_config(PluginConfig("wal-g", {"command": tool}, "t"), Config()))
    assert verdict.status == "ok" and verdict.details["backup_name"] == "base_0002"
    stale = _tool(tmp_path, "wal-g-old", [{"backup_name": "b", "time": _iso(50)}])
    assert _verdict(WalG.from_config(PluginConfig("wal-g", {"command": stale}, "t"), Config())).status == "stale"


def test_barman_json(tmp_path: Path) -> None:
    out = {"pg": [{"backup_id": "20261124T030000", "status": "FAILED", "end_time": None},
                  {"backup_id": "20261123T030000", "status": "DONE", "end_time": _iso(20)}]}
    tool = _tool(tmp_path, "barman", out)
    verdict = _verdict(Barman.from_config(PluginConfig("barman", {"server": "pg", "command": tool}, "t"), Config()))
    assert verdict.status == "failed"  # the newest attempt failed


@pytest.mark.parametrize(
    ("output", "code", "status", "message"),
    [
        ({"completed_at": "NOW-2"}, 0, "ok", "newest backup"),
        ({"completed_at": "NOW-50"}, 0, "stale", "more than max_age"),
        ({"completed_at": "NOW-2", "status": "failed"}, 0, "failed", "failed"),
        ("not json", 0, "error", "did not print JSON"),
        ({"completed_at": "yesterday"}, 0, "error", "not a timestamp"),
        ({"completed_at": "NOW-2"}, 7, "error", "exited 7"),
    ],
)
def test_command_provider_contract(tmp_path: Path, output: Any, code: int, status: str, message: str) -> None:
    if isinstance(output, dict):
        output = {k: (_iso(float(v[4:])) if isinstance(v, str) and v.startswith("NOW-") else v) for k, v in output.items()}
    tool = _tool(tmp_path, "newest-backup", output, code=code)
    verdict = _verdict(GenericCommand.from_config(PluginConfig("command", {"run": [tool]}, "t"), Config()))
    assert verdict.status == status and message in verdict.message


def test_command_timeout_and_missing_binary(tmp_path: Path) -> None:
    slow = _tool(tmp_path, "slow", {"completed_at": _iso(1)}, sleep=5)
    verdict = _verdict(GenericCommand.from_config(PluginConfig("command", {"run": [slow], "timeout": "1s"}, "t"), Config()))
    assert verdict.status == "error" and "did not finish within 1s" in verdict.message
    missing = _verdict(GenericCommand.from_config(PluginConfig("command", {"run": "no-such-backup-tool --json"}, "t"), Config()))
    assert missing.status == "error" and "not found" in missing.message


def test_command_provider_through_guard_run(tmp_path: Path, project: Project) -> None:
    project.init_backup_log()
    tool = _tool(tmp_path, "newest", {"completed_at": _iso(3), "details": {"location": "s3://b/x"}})
    (project.root / "guard.yml").write_text(f"backups:\n  providers:\n    - type: command\n      run: [{tool}]\n")
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = project.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["backups"]["providers"][0]["details"]["location"] == "s3://b/x"
