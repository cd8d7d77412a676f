"""Restore drills: prove a snapshot restores, and how long it takes.

Verify the SHA-256 against the manifest, decrypt, `pg_restore` into a throw-away PostgreSQL
(or a scratch database that is not the production one), compare per-table row counts with
the manifest. The outcome is appended to ``drills.json`` beside the snapshots, where
`guard backup status` shows the last drill.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guard.db import connect
from guard.errors import UsageError
from guard.snapshot import SnapshotError, decrypt_file, find_client, sha256

Progress = Callable[[str], None]
DRILL_LOG = "drills.json"


def newest_manifest(directory: Path) -> Path:
    manifests = sorted(directory.glob("*.manifest.json"), key=lambda p: p.stat().st_mtime)
    if not manifests:
        raise UsageError(f"no snapshot manifest in {directory}", hint="guard snapshot --full --out DIR first")
    return manifests[-1]


def manifest_for(path: Path) -> Path:
    if path.name.endswith(".manifest.json"):
        return path
    candidate = path.with_name(path.name + ".manifest.json")
    if not candidate.exists():
        raise UsageError(f"{path}: no manifest beside it ({candidate.name})")
    return candidate


def run_drill(
    snapshot: Path | None,
    *,
    directory: Path,
    key: str | None,
    target_url: str | None,
    production_url: str | None,
    progress: Progress,
    checks: tuple[tuple[str, str], ...] = (),
) -> dict[str, Any]:
    """Restore and check; the result dict has ``ok`` and, when not ok, ``reason``."""
    manifest_path = manifest_for(snapshot) if snapshot else newest_manifest(directory)
    manifest = json.loads(manifest_path.read_text())
    file = manifest_path.parent / manifest["file"]
    result: dict[str, Any] = {"snapshot": manifest["file"], "started_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                              "bytes": manifest.get("bytes"), "ok": False}
    if target_url and production_url:
        from guard.shadow import same_database

        if same_database(target_url, production_url):
            raise UsageError("--target is the production database: a drill restores into a scratch database")
    try:
        if not file.exists():
            raise SnapshotError(f"{file.name} is missing")
        if sha256(file) != manifest["sha256"]:
            raise SnapshotError(f"{file.name} does not match its manifest's SHA-256 (corrupted or altered)")
        with tempfile.TemporaryDirectory(prefix="guard-drill-") as tmp:
            dump = file
            if manifest.get("encryption"):
                if not key:
                    raise UsageError("the snapshot is encrypted and no key is set (GUARD_SNAPSHOT_KEY)")
                dump = Path(tmp) / file.name.removesuffix(".enc")
                decrypt_file(file, dump, key)
            started = time.monotonic()
            counts, failures = _restore_and_count(dump, target_url, progress, checks)
            result["restore_seconds"] = round(time.monotonic() - started, 2)
        expected = {t: n for t, n in manifest.get("tables", {}).items() if n is not None}
        mismatched = {t: {"manifest": n, "restored": counts.get(t)} for t, n in expected.items() if counts.get(t) != n}
        result["tables"] = len(counts)
        if mismatched:
            result["mismatched"] = mismatched
            raise SnapshotError(f"row counts differ from the manifest in {len(mismatched)} table(s): "
                                + ", ".join(sorted(mismatched)[:3]))
        result["checks"] = {"run": len(checks), "failed": failures}
        if failures:
            raise SnapshotError(f"{len(failures)} drill check(s) failed: {failures[0]}")
        result["ok"] = True
    except SnapshotError as exc:
        result["reason"] = str(exc)
    result["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
    _record(directory if snapshot is None else manifest_path.parent, result)
    return result


def _restore_and_count(
    dump: Path, target_url: str | None, progress: Progress, checks: tuple[tuple[str, str], ...]
) -> tuple[dict[str, int], list[str]]:
    if target_url:
        return _restore_into(dump, target_url, progress, checks)
    from guard.embedded import Cluster

    progress("starting a throw-away PostgreSQL for the drill")
    with Cluster(password=None) as cluster:
        return _restore_into(dump, cluster.url("postgres"), progress, checks)


def _restore_into(
    dump: Path, url: str, progress: Progress, checks: tuple[tuple[str, str], ...]
) -> tuple[dict[str, int], list[str]]:
    from psycopg import sql

    from guard.snapshot import TABLE_COUNTS, _dsn_without_password, _env

    conn = connect(url, application_name="guard drill")
    try:
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        major = int(row[0]) if row else 0
        pg_restore = find_client("pg_restore", major)
        progress(f"restoring {dump.name} with {pg_restore}")
        proc = subprocess.run([str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error",
                               "-d", _dsn_without_password(url), str(dump)],
                              capture_output=True, text=True, env=_env(url), timeout=3600)
        if proc.returncode != 0:
            last = proc.stderr.strip().splitlines()
            raise SnapshotError(f"pg_restore failed: {last[-1] if last else proc.returncode}")
        counts = {}
        for (table,) in conn.execute(TABLE_COUNTS).fetchall():
            counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
            counts[table] = int(counted[0]) if counted else 0
        failures = []
        for query, expected in checks:
            # The operator's own check, run on the throw-away copy only.
            try:
                row = conn.execute(query.encode()).fetchone()
            except Exception as exc:  # noqa: BLE001 - a check that errors is a failed check
                failures.append(f"{query!r} failed: {str(exc).splitlines()[0]}")
                continue
            got = "" if row is None or row[0] is None else str(row[0])
            if got != expected:
                failures.append(f"{query!r} gave {got!r}, expected {expected!r}")
        return counts, failures
    finally:
        conn.close()


def _record(directory: Path, result: dict[str, Any]) -> None:
    log = directory / DRILL_LOG
    try:
        history = json.loads(log.read_text()) if log.exists() else []
    except ValueError:
        history = []
    history.append(result)
    log.write_text(json.dumps(history[-100:], indent=2) + "\n")


def last_drill(directory: Path) -> dict[str, Any] | None:
    log = directory / DRILL_LOG
    if not log.exists():
        return None
    try:
        history = json.loads(log.read_text())
    except ValueError:
        return None
    return history[-1] if history else None
