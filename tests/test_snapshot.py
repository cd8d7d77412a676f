"""Snapshots and restore drills against a real database, through the real CLI."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import psycopg
import pytest

from tests.conftest import TEST_PASSWORD
from tests.support import Project

KEY = "correct horse battery staple 42"
MARKER = "PLAINTEXT-MARKER-7f3a9c"
CHECKSUM = "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM public.{table} t"


@pytest.fixture
def data(project: Project) -> Project:
    project.query(
        "CREATE TYPE mood AS ENUM ('ok', 'meh');"
        "CREATE TABLE public.people (id int PRIMARY KEY, name text, mood mood, tags text[], meta jsonb,"
        " balance numeric(12,2), seen timestamptz, photo bytea);"
        "INSERT INTO public.people SELECT g, 'person ' || g, CASE WHEN g % 2 = 0 THEN 'ok' ELSE 'meh' END::mood,"
        f" ARRAY['a', 'b' || g], jsonb_build_object('n', g, 'note', '{MARKER}'), g * 1.25,"
        " '2026-01-01'::timestamptz + g * interval '1 minute', decode(md5(g::text), 'hex')"
        " FROM generate_series(1, 3000) g;"
        "CREATE TABLE public.orders (id int PRIMARY KEY, person int REFERENCES public.people, total int);"
        "INSERT INTO public.orders SELECT g, 1 + g % 3000, g FROM generate_series(1, 2000) g;"
    )
    return project


def _snapshot(project: Project, out: Path, *args: str, key: str | None = KEY) -> dict:  # type: ignore[type-arg]
    env = {"GUARD_SNAPSHOT_KEY": key} if key else {}
    result = project.guard("snapshot", "--out", str(out), *args, **env)
    assert result.code == 0, result.output
    manifest = json.loads(next(out.glob("*.manifest.json")).read_text())
    return manifest


def test_snapshot_and_drill_round_trip(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    manifest = _snapshot(data, out)
    assert manifest["encryption"]["algorithm"] == "AES-256-GCM"
    assert manifest["tables"]["public.people"] == 3000 and manifest["tables"]["public.orders"] == 2000
    assert TEST_PASSWORD not in json.dumps(manifest) and KEY not in json.dumps(manifest)
    encrypted = (out / manifest["file"]).read_bytes()
    assert MARKER.encode() not in encrypted
    assert "guard decrypt" in manifest["restore_command"]

    drill = data.guard("drill", "--dir", str(out), "--json", GUARD_SNAPSHOT_KEY=KEY)
    assert drill.code == 0, drill.output
    result = json.loads(drill.stdout)
    assert result["ok"] is True and result["tables"] >= 2 and result["restore_seconds"] > 0
    log = json.loads((out / "drills.json").read_text())
    assert log[-1]["ok"] is True
    (data.root / "guard.yml").write_text(f"snapshot:\n  dir: {out}\n")
    status = data.guard("backup", "status", "--json")
    assert json.loads(status.stdout)["last_drill"]["restore_seconds"] == result["restore_seconds"]

    # Content, not just counts: decrypt and restore into a scratch database, compare checksums.
    plain = tmp_path / "plain.dump"
    assert data.guard("decrypt", str(out / manifest["file"]), str(plain), GUARD_SNAPSHOT_KEY=KEY).code == 0
    base, name = data.db_url.rsplit("/", 1)

    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}_r"')
    try:
        restored = Project(tmp_path / "r", f"{base}/{name}_r")
        proc = subprocess.run(["pg_restore", "--no-owner", "-d", f"{base}/{name}_r".replace(f":{TEST_PASSWORD}", ""),
                               str(plain)], capture_output=True, text=True, env={"PGPASSWORD": TEST_PASSWORD, "PATH": "/usr/bin:/bin"})
        assert proc.returncode == 0, proc.stderr
        for table in ("people", "orders"):
            assert restored.query(CHECKSUM.format(table=table)) == data.query(CHECKSUM.format(table=table))
    finally:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}_r" WITH (FORCE)')


def test_schema_only_snapshot(data: Project, tmp_path: Path) -> None:
    manifest = _snapshot(data, tmp_path / "s", "--schema-only", key=None)
    assert manifest["mode"] == "schema" and manifest["encryption"] is None
    assert manifest["tables"]["public.people"] is None
    drill = data.guard("drill", "--dir", str(tmp_path / "s"))
    assert drill.code == 0, drill.output


def test_full_snapshot_without_key_is_refused(data: Project, tmp_path: Path) -> None:
    result = data.guard("snapshot", "--out", str(tmp_path / "s"))
    assert result.code == 2 and "GUARD_SNAPSHOT_KEY" in result.stderr
    assert not (tmp_path / "s").exists() or not list((tmp_path / "s").glob("*.dump*"))


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_snapshot_fails_the_drill(data: Project, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "snaps"
    manifest = _snapshot(data, out)
    path = out / manifest["file"]
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) - 100:]
    path.write_bytes(bytes(blob))
    result = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY)
    assert result.code == 1
    assert "SHA-256" in result.stdout


def test_wrong_key_and_damage_behind_a_matching_checksum(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    manifest = _snapshot(data, out)
    wrong = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY="not the key at all")
    assert wrong.code == 1 and "wrong key" in wrong.stdout
    missing = data.guard("drill", "--dir", str(out))
    assert missing.code == 2 and "GUARD_SNAPSHOT_KEY" in missing.stderr
    # Truncation that also fixes up the manifest's checksum is still caught by the framing.
    from guard.snapshot import sha256

    path = out / manifest["file"]
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    manifest["sha256"] = sha256(path)
    (out / f"{manifest['file']}.manifest.json").write_text(json.dumps(manifest))
    truncated = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY)
    assert truncated.code == 1 and "truncated" in truncated.stdout


def test_drill_refuses_production_as_target(data: Project, tmp_path: Path) -> None:
    _snapshot(data, tmp_path / "s", "--schema-only", key=None)
    result = data.guard("drill", "--dir", str(tmp_path / "s"), "--target", data.db_url)
    assert result.code == 2 and "production" in result.stderr


def test_client_older_than_server_is_a_clear_error(data: Project, tmp_path: Path) -> None:
    fake_bin = tmp_path / "oldbin"
    fake_bin.mkdir()
    for tool in ("pg_dump", "pg_config"):
        script = fake_bin / tool
        script.write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n" if tool == "pg_dump"
                          else f"#!/bin/sh\necho {fake_bin}\n")
        script.chmod(0o755)
    from guard.snapshot import find_client

    old = dict(os.environ)
    try:
        os.environ["PG_BIN"] = str(fake_bin)
        os.environ["PATH"] = f"{fake_bin}:/nonexistent"
        with pytest.raises(Exception) as info:
            find_client("pg_dump", 99)
        assert "PostgreSQL 99" in str(info.value) and "9" in str(info.value)
    finally:
        os.environ.clear()
        os.environ.update(old)


def test_guarded_run_takes_a_snapshot_before_a_destructive_release(ready: Project, tmp_path: Path) -> None:
    (ready.root / "guard.yml").write_text(f"snapshot:\n  mode: full\n  when: destructive\n  dir: {tmp_path / 'snaps'}\n")
    ready.query("CREATE TABLE public.old (id int PRIMARY KEY)")
    ready.add("20240101000000_safe.sql", "create table public.a (id int);\n")
    assert ready.guard("run", GUARD_SNAPSHOT_KEY=KEY).code == 0
    assert not (tmp_path / "snaps").exists()  # nothing destructive, no snapshot
    ready.add("20240102000000_drop.sql", "drop table public.old;\n")
    ready.add("20240103000000_fail.sql", "select 1/0;\n")
    result = ready.guard("run", GUARD_SNAPSHOT_KEY=KEY)
    assert result.code == 4, result.output
    assert result.report is not None and result.report["snapshot"]["encrypted"] is True
    commands = "\n".join(c for s in result.report["restore_plan"]["steps"] for c in s["commands"])
    assert "guard decrypt" in commands and "pg_restore" in commands
    assert KEY not in result.output


def test_drill_checks_pass_and_fail(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "s"
    _snapshot(data, out)
    (data.root / "guard.yml").write_text(
        "drill:\n  checks:\n    - sql: select count(*) from public.people where mood = 'ok'\n      expect: 1500\n"
    )
    assert data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY).code == 0
    (data.root / "guard.yml").write_text(
        "drill:\n  checks:\n    - sql: select max(id) from public.orders\n      expect: 1\n"
    )
    failed = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY)
    assert failed.code == 1 and "gave '2000', expected '1'" in failed.stdout
