"""Snapshots and restore drills against a real database, through the real CLI where it is
about exit codes; the encryption framing and the client search also as units."""

from __future__ import annotations

import io
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from guard import snapshot as snap
from guard.db import same_database
from guard.drill import last_drill
from guard.errors import Blocked
from guard.snapshot import SnapshotError, decrypt_chunks, encrypt_chunks
from tests.conftest import TEST_PASSWORD
from tests.support import Project, Result

KEY = "correct horse battery staple 42"
MARKER = "PLAINTEXT-MARKER-7f3a9c"
CHECKSUM = "SELECT md5(string_agg(t::text, '|' ORDER BY t.id)) FROM public.{table} t"
TABLES = ("people", "orders", "events")


@pytest.fixture
def data(project: Project) -> Project:
    """Three tables, enum/jsonb/array/numeric/timestamptz/bytea columns, 6,000 rows, and a
    row-level security policy for a role a throw-away cluster does not have."""
    project.query(
        "DO $$ BEGIN CREATE ROLE drill_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;"
    )
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
        "CREATE SCHEMA app;"
        "CREATE TABLE app.events (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at timestamptz,"
        " scores int[], payload jsonb);"
        "INSERT INTO app.events (at, scores, payload) SELECT now(), ARRAY[g, g * 2], jsonb_build_array(g)"
        " FROM generate_series(1, 1000) g;"
        "ALTER TABLE public.people ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY readers ON public.people FOR SELECT TO drill_reader USING (mood = 'ok');"
    )
    return project


def _snapshot(project: Project, out: Path, *args: str, key: str | None = KEY) -> tuple[dict[str, Any], Result]:
    env = {"GUARD_SNAPSHOT_KEY": key} if key else {}
    result = project.guard("snapshot", "--out", str(out), *args, **env)
    assert result.code == 0, result.output
    manifests = sorted(out.glob("*.manifest.json"))
    return json.loads(manifests[-1].read_text()), result


def _error_line(result: Result) -> str:
    """The one error line guard printed (exactly one)."""
    errors = [line for line in result.stderr.splitlines() if line.startswith("guard: error:")]
    assert len(errors) == 1, result.output
    return errors[0]


def _scratch(project: Project, suffix: str) -> tuple[str, Any]:
    base, name = project.db_url.rsplit("/", 1)
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name + suffix)))

    def drop() -> None:
        with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name + suffix)))

    return f"{base}/{name}{suffix}", drop


def _checksum(url: str, table: str) -> str:
    schema = "app" if table == "events" else "public"
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(CHECKSUM.replace("public.", f"{schema}.").format(table=table)).fetchone()
    assert row is not None and row[0]
    return str(row[0])


# ---------------------------------------------------------------------- the round trip


def test_full_snapshot_restores_with_the_same_counts_and_content(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    manifest, taken = _snapshot(data, out)
    assert manifest["mode"] == "full" and manifest["encryption"]["algorithm"] == "AES-256-GCM"
    assert manifest["tables"] == {"app.events": 1000, "public.orders": 2000, "public.people": 3000}
    assert "drill_reader" in manifest["roles"]
    file = out / manifest["file"]
    assert file.stat().st_size == manifest["bytes"] and snap.sha256(file) == manifest["sha256"]
    assert MARKER.encode() not in file.read_bytes()
    assert not list(out.glob("*.partial")) and not list(out.glob("*.dump"))  # no plaintext on disk
    assert manifest["restore_command"].startswith(f"guard decrypt {file.name} ")
    assert "pg_restore --no-owner" in manifest["restore_command"]

    # Into a scratch database, so the content can be compared row by row.
    scratch, drop = _scratch(data, "_r")
    try:
        into_scratch = data.guard("drill", str(file), "--target", scratch, "--json", GUARD_SNAPSHOT_KEY=KEY)
        assert into_scratch.code == 0, into_scratch.output
        result = json.loads(into_scratch.stdout)
        assert result["ok"] is True and result["rows"] == 6000 and result["mismatched"] == {}
        assert result["restore_seconds"] > 0 and result["bytes"] == manifest["bytes"]
        for table in TABLES:
            assert _checksum(scratch, table) == _checksum(data.db_url, table), table
        again = data.guard("drill", str(file), "--target", scratch, GUARD_SNAPSHOT_KEY=KEY)
        assert again.code == 2 and "not empty" in _error_line(again)
    finally:
        drop()

    # By hand, exactly as the manifest says (decrypt, pg_restore, remove the plain dump).
    by_hand, drop = _scratch(data, "_h")
    try:
        tools = snap.find_client("pg_restore", manifest["server_major"]).parent
        path = f"{Path(sys.executable).parent}:{tools}:/usr/bin:/bin"
        proc = subprocess.run(["sh", "-c", manifest["restore_command"]], cwd=out, capture_output=True, text=True,
                              env=data.env(GUARD_SNAPSHOT_KEY=KEY, TARGET_DATABASE_URL=by_hand, PATH=path))
        assert proc.returncode == 0, proc.stderr
        assert _checksum(by_hand, "people") == _checksum(data.db_url, "people")
        assert sorted(p.name for p in out.iterdir()) == [file.name, f"{file.name}.manifest.json"]
    finally:
        drop()

    # The default: the newest snapshot of the directory, into a throw-away PostgreSQL.
    check = '[{sql: "select count(*) from public.people where mood = \'ok\'", expect: 1500}]'
    embedded = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY, GUARD_DRILL_CHECKS=check)
    assert embedded.code == 0, embedded.output
    assert embedded.stdout.startswith(f"drill passed: {file.name} into embedded PostgreSQL")
    assert "restore took" in embedded.stdout and "6000 rows match the manifest" in embedded.stdout
    assert "1 check(s) passed" in embedded.stdout

    # Recorded in the production database and beside the snapshots; backup status shows it.
    with psycopg.connect(data.db_url, autocommit=True) as conn:
        last = last_drill(conn, out)
        assert last is not None and last["ok"] is True and last["target"].startswith("embedded")
        assert conn.execute("SELECT count(*) FROM guard.drills").fetchone() == (2,)
    # A drill of a named snapshot records in the configured snapshot.dir, where status looks.
    assert json.loads((data.root / "snapshots" / "drills.json").read_text())[-1]["target"] != last["target"]
    assert [d["ok"] for d in json.loads((out / "drills.json").read_text())] == [True]
    (data.root / "guard.yml").write_text(f"snapshot:\n  dir: {out}\n")
    status = data.guard("backup", "status", "--json")
    assert json.loads(status.stdout)["last_drill"]["restore_seconds"] == last["restore_seconds"]

    everything = [taken.output, into_scratch.output, again.output, embedded.output,
                  json.dumps(manifest), (out / "drills.json").read_text()]
    for text in everything:
        assert TEST_PASSWORD not in text and KEY not in text


def test_schema_only_snapshot_drills_without_rows(data: Project, tmp_path: Path) -> None:
    manifest, _ = _snapshot(data, tmp_path / "s", "--schema-only", key=None)
    assert manifest["mode"] == "schema" and manifest["encryption"] is None
    assert manifest["tables"] == {"app.events": None, "public.orders": None, "public.people": None}
    assert MARKER.encode() not in (tmp_path / "s" / manifest["file"]).read_bytes()
    drill = data.guard("drill", "--dir", str(tmp_path / "s"))
    assert drill.code == 0, drill.output
    assert "3 tables, schema only" in drill.stdout and "restore took" in drill.stdout


def test_key_can_come_from_the_config_file(data: Project, tmp_path: Path) -> None:
    (data.root / "guard.yml").write_text(f"snapshot:\n  dir: {tmp_path / 's'}\n  key: ${{MY_SNAPSHOT_KEY}}\n")
    result = data.guard("snapshot", MY_SNAPSHOT_KEY=KEY)
    assert result.code == 0, result.output
    manifest = json.loads(next((tmp_path / "s").glob("*.manifest.json")).read_text())
    assert manifest["encryption"] is not None and KEY not in result.output


def test_client_gets_the_password_from_the_environment_only(data: Project, tmp_path: Path,
                                                             pg_cluster: Any) -> None:
    real = snap.find_client("pg_dump", pg_cluster.major)
    spy = tmp_path / "bin"
    spy.mkdir()
    (spy / "pg_dump").write_text(
        f'#!/bin/sh\necho "$@" >> {tmp_path}/argv.log\n'
        f'[ -n "$PGPASSWORD" ] && echo PGPASSWORD-set >> {tmp_path}/argv.log\nexec {real} "$@"\n'
    )
    (spy / "pg_dump").chmod(0o755)
    result = data.guard("snapshot", "--out", str(tmp_path / "s"), "--no-encrypt", PG_BIN=str(spy))
    assert result.code == 0, result.output
    log = (tmp_path / "argv.log").read_text()
    assert "--snapshot=" in log and "PGPASSWORD-set" in log and TEST_PASSWORD not in log


# ---------------------------------------------------------------------- what must fail, and how


def test_full_snapshot_without_a_key_is_refused(data: Project, tmp_path: Path) -> None:
    result = data.guard("snapshot", "--out", str(tmp_path / "s"))
    assert result.code == 2 and "GUARD_SNAPSHOT_KEY" in _error_line(result)
    assert not list((tmp_path / "s").glob("*.dump*"))
    short = data.guard("snapshot", "--out", str(tmp_path / "s"), GUARD_SNAPSHOT_KEY="abc")
    assert short.code == 2 and "shorter than 16" in _error_line(short)


def test_unreachable_database_is_exit_3(tmp_path: Path) -> None:
    project = Project(tmp_path, "postgresql://postgres:nope-nope-nope@127.0.0.1:1/app")
    result = project.guard("snapshot", "--out", str(tmp_path / "s"), "--no-encrypt")
    assert result.code == 3 and "cannot connect to 127.0.0.1:1/app" in _error_line(result)
    assert "nope-nope-nope" not in result.output


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damaged_snapshot_fails_the_drill(data: Project, tmp_path: Path, damage: str) -> None:
    out = tmp_path / "snaps"
    manifest, _ = _snapshot(data, out)
    path = out / manifest["file"]
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) - 100:]
    path.write_bytes(bytes(blob))
    result = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY)
    assert result.code == 1, result.output
    expected = "SHA-256" if damage == "flip" else "truncated or altered"
    assert result.stdout.startswith("drill FAILED: ") and expected in result.stdout
    assert len(result.stdout.splitlines()) == 1
    assert json.loads((out / "drills.json").read_text())[-1]["ok"] is False


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_damage_behind_a_matching_checksum_is_caught_by_the_framing(
    data: Project, tmp_path: Path, damage: str
) -> None:
    """Someone "repairs" the manifest after damaging the file: decryption still refuses."""
    out = tmp_path / "snaps"
    manifest, _ = _snapshot(data, out)
    path = out / manifest["file"]
    blob = bytearray(path.read_bytes())
    if damage == "flip":
        blob[len(blob) // 2] ^= 0x01
    else:
        del blob[len(blob) // 2:]
    path.write_bytes(bytes(blob))
    manifest.update(sha256=snap.sha256(path), bytes=path.stat().st_size)
    (out / f"{manifest['file']}.manifest.json").write_text(json.dumps(manifest))
    result = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY=KEY)
    assert result.code == 1
    assert ("fails authentication" if damage == "flip" else "is truncated") in result.stdout


def test_wrong_and_missing_key(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "snaps"
    _snapshot(data, out)
    tmp = tmp_path / "tmp"  # guard's own temporary folder: other runs on the machine drill too
    tmp.mkdir()
    wrong = data.guard("drill", "--dir", str(out), GUARD_SNAPSHOT_KEY="not the key at all, sorry", TMPDIR=str(tmp))
    assert wrong.code == 1 and "wrong key" in wrong.stdout and len(wrong.stdout.splitlines()) == 1
    missing = data.guard("drill", "--dir", str(out), TMPDIR=str(tmp))
    assert missing.code == 2 and "no key is set" in _error_line(missing)
    assert not list(tmp.iterdir())  # no plaintext (nor any folder of it) left behind


def test_drill_refuses_the_production_database_as_target(data: Project, tmp_path: Path) -> None:
    _snapshot(data, tmp_path / "s", "--schema-only", key=None)
    port, name = data.db_url.rsplit(":", 1)[1].split("/")
    spellings = [
        data.db_url,
        data.db_url.replace("127.0.0.1", "localhost"),
        f"host=127.0.0.1 port={port} dbname={name} user=postgres password={TEST_PASSWORD}",
    ]
    for target in spellings:
        result = data.guard("drill", "--dir", str(tmp_path / "s"), "--target", target)
        assert result.code == 2 and "is the production database" in _error_line(result), target
        assert TEST_PASSWORD not in result.output


def test_no_snapshot_is_a_usage_error(data: Project, tmp_path: Path) -> None:
    result = data.guard("drill", "--dir", str(tmp_path))
    assert result.code == 2 and "no snapshot manifest" in _error_line(result)
    with psycopg.connect(data.db_url, autocommit=True) as conn:
        assert last_drill(conn, tmp_path) is None  # no guard.drills, no drills.json: no drill yet


def test_client_older_than_the_server_is_exit_3(data: Project, tmp_path: Path, pg_cluster: Any) -> None:
    """Through the real entry point, with the client search limited to a directory whose
    pg_dump says it is 9.6 (the machine's real clients would otherwise be found)."""
    old = tmp_path / "oldbin"
    old.mkdir()
    (old / "pg_dump").write_text("#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6'\n")
    (old / "pg_dump").chmod(0o755)
    code = (f"import sys; from pathlib import Path; import guard.snapshot as s; "
            f"s._client_dirs = lambda tool: [Path({str(old)!r})]; "
            "from guard.cli import main; main()")
    proc = subprocess.run([sys.executable, "-c", code, "snapshot", "--out", str(tmp_path / "s")],
                          cwd=data.root, env=data.env(GUARD_SNAPSHOT_KEY=KEY), capture_output=True, text=True,
                          timeout=60)
    result = Result(proc.returncode, proc.stdout, proc.stderr, None)
    line = _error_line(result)
    assert result.code == 3, result.output
    assert f"no pg_dump of PostgreSQL {pg_cluster.major} or newer" in line and "9.6" in line
    assert f"postgresql-client-{pg_cluster.major}" in line
    assert not list((tmp_path / "s").glob("*.dump*"))


def test_find_client_skips_old_clients_and_names_them(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for version, folder in (("9.6.24", "a"), ("16.4", "b")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "pg_restore").write_text(f"#!/bin/sh\necho 'pg_restore (PostgreSQL) {version}'\n")
        (tmp_path / folder / "pg_restore").chmod(0o755)
    monkeypatch.setattr(snap, "_client_dirs", lambda tool: [tmp_path / "a", tmp_path / "b"])
    assert snap.find_client("pg_restore", 16) == tmp_path / "b" / "pg_restore"
    with pytest.raises(Blocked) as info:
        snap.find_client("pg_restore", 17)
    assert info.value.exit_code == 3 and "9.6.24" in str(info.value) and "16.4" in str(info.value)


# ---------------------------------------------------------------------- the guarded run, checks


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
    # The plan names the files where they are, not bare names relative to snapshot.dir.
    assert f"{tmp_path / 'snaps'}/{Path(result.report['snapshot']['file']).name}" in commands
    assert Path(result.report["snapshot"]["manifest"]).is_file()
    assert KEY not in result.output


def test_a_failed_drill_check_fails_the_drill(data: Project, tmp_path: Path) -> None:
    out = tmp_path / "s"
    _snapshot(data, out)
    (data.root / "guard.yml").write_text(
        "drill:\n  checks:\n"
        "    - sql: select count(*) from public.people where mood = 'ok'\n      expect: 1500\n"
        "    - sql: select max(id) from public.orders\n      expect: 1\n"
    )
    failed = data.guard("drill", "--dir", str(out), "--json", GUARD_SNAPSHOT_KEY=KEY)
    assert failed.code == 1
    result = json.loads(failed.stdout)
    assert result["checks_run"] == 2 and result["reason"].startswith("1 of 2 drill check(s) failed")
    assert result["checks_failed"] == ["'select max(id) from public.orders' gave '2000', expected '1'"]


# ---------------------------------------------------------------------- units: framing, progress


def _encrypt(*chunks: bytes) -> bytes:
    return b"".join(encrypt_chunks(chunks, KEY))


def _frames(blob: bytes) -> tuple[bytes, list[bytes]]:
    header, rest, frames = blob[:snap.HEADER_BYTES], blob[snap.HEADER_BYTES:], []
    while rest:
        _final, size = struct.unpack(">BI", rest[:5])
        end = 5 + snap.NONCE_BYTES + size
        frames.append(rest[:end])
        rest = rest[end:]
    return header, frames


def _decrypt(blob: bytes, key: str = KEY) -> bytes:
    return b"".join(decrypt_chunks(io.BytesIO(blob), key, "x.dump.enc"))


def test_framing_round_trips_and_detects_every_kind_of_tampering() -> None:
    blob = _encrypt(b"one", b"two", b"three")
    assert _decrypt(blob) == b"onetwothree"
    header, frames = _frames(blob)
    assert len(frames) == 4  # three chunks and the empty final one
    tampered = {
        "fails authentication": header + frames[1] + frames[0] + frames[2] + frames[3],  # reordered
        "without its final chunk": header + b"".join(frames[:3]),  # cut at a frame boundary
        "data after its final chunk": blob + b"\0",
        "is truncated in chunk": blob[:-5],
    }
    duplicated = header + frames[0] + frames[0] + frames[2] + frames[3]
    tampered["fails authentication "] = duplicated
    for expected, damaged in tampered.items():
        with pytest.raises(SnapshotError, match=expected.strip()):
            _decrypt(damaged)
    with pytest.raises(SnapshotError, match="wrong key"):
        _decrypt(blob, "another passphrase entirely")
    with pytest.raises(SnapshotError, match="not a guard-encrypted snapshot"):
        _decrypt(b"PGDMP" + blob)


def test_same_database_compares_host_port_and_name() -> None:
    url = "postgresql://u:p@127.0.0.1:5432/app"
    assert same_database(url, "postgresql://other@localhost/app")
    assert same_database(url, "host=127.0.0.1 dbname=app user=x")
    assert not same_database(url, "postgresql://u:p@127.0.0.1:5432/app_scratch")
    assert not same_database(url, "postgresql://u:p@127.0.0.1:5433/app")
    assert not same_database(url, "postgresql://u:p@db.example.com:5432/app")


def test_progress_is_quiet_for_a_second_then_periodic() -> None:
    now = [0.0]
    meter = snap.ProgressMeter(clock=lambda: now[0])
    due = []
    for t in (0.5, 0.99, 1.0, 2.0, 5.9, 6.0, 6.5):
        now[0] = t
        due.append(meter.due())
    assert due == [False, False, True, False, False, True, False]


def test_failed_decryption_leaves_no_plaintext_and_manifests_name_files_beside_them(tmp_path: Path) -> None:
    damaged = tmp_path / "x.dump.enc"
    damaged.write_bytes(_encrypt(b"secret rows", b"more")[:-5])
    with pytest.raises(SnapshotError, match="truncated"):
        snap.decrypt_file(damaged, tmp_path / "x.dump", KEY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dump.enc"]
    manifest = tmp_path / "evil.manifest.json"
    manifest.write_text(json.dumps({"file": "../../etc/passwd"}))
    with pytest.raises(SnapshotError, match="a name beside the manifest"):
        snap.Manifest.load(manifest)
