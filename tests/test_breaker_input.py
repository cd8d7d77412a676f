"""A breaker's bad inputs (answers of remote services, files, flags) and the secrets they carry:
one clear line, a non-zero exit or an error naming the culprit, never a hang, never a secret."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from guard.backups.http_client import MAX_ANSWER_BYTES, HttpError, HttpPolicy, request
from guard.snapshot import encrypt_chunks
from tests.conftest import TEST_PASSWORD
from tests.support import Project, clean_env, run_guard

TOKEN = "sbp_breaker0123456789abcdef0123456789abcd"


def _raw_server(answer: Callable[[socket.socket], None]) -> Iterator[str]:
    """A loopback TCP server that reads a request and lets ``answer`` write whatever it likes."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.recv(65536)
            threading.Thread(target=_answer, args=(conn,), daemon=True).start()

    def _answer(conn: socket.socket) -> None:
        try:
            answer(conn)
        except OSError:
            pass
        finally:
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}"
    stop.set()
    server.close()


def _drip_body(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
    for _ in range(200):
        conn.sendall(b" ")
        time.sleep(0.3)


def _drip_headers(conn: socket.socket) -> None:
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    for _ in range(200):
        conn.sendall(b"X-A: b\r\n")
        time.sleep(0.3)


def _endless_body(conn: socket.socket) -> None:
    conn.sendall(b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n{"backups": ["')
    chunk = b"x" * (1 << 20)
    for _ in range(MAX_ANSWER_BYTES // len(chunk) * 4):
        conn.sendall(chunk)


def _error_echoing_token(conn: socket.socket) -> None:
    request_line = f'{{"message": "invalid token {TOKEN[:-3]}... (Bearer {TOKEN})"}}'.encode()
    conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(request_line)).encode() + b"\r\n\r\n" + request_line)


@pytest.mark.parametrize("answer", [_drip_body, _drip_headers], ids=["body", "headers"])
def test_a_server_that_sends_a_byte_at_a_time_is_given_up_on_at_the_deadline(answer: Callable[[socket.socket], None]) -> None:
    # httpx's read timeout bounds each read: a byte every 0.3 s never trips a 1 s timeout,
    # and 100 kB of body (or 16 kB of headers) at that pace is hours.
    for url in _raw_server(answer):
        started = time.monotonic()
        with pytest.raises(HttpError) as caught:
            request("GET", url + "/v1/x", service="supabase x", token=TOKEN,
                    policy=HttpPolicy(timeout=1.0, retries=2, backoff=0.05, total=3.0))
        assert time.monotonic() - started < 6
        assert "no complete answer within 3s" in str(caught.value)
        assert TOKEN not in str(caught.value)


def test_an_endless_answer_is_refused_before_it_fills_the_memory() -> None:
    for url in _raw_server(_endless_body):
        with pytest.raises(HttpError) as caught:
            request("GET", url + "/v1/x", service="supabase x", token=TOKEN,
                    policy=HttpPolicy(timeout=2.0, retries=0, total=20.0))
        assert "larger than 16 MiB" in str(caught.value)


def test_an_error_body_echoing_the_token_is_masked() -> None:
    for url in _raw_server(_error_echoing_token):
        with pytest.raises(HttpError) as caught:
            request("GET", url + "/v1/x", service="supabase x", token=TOKEN, policy=HttpPolicy(retries=0))
        message = str(caught.value)
        assert "HTTP 400" in message and TOKEN not in message
        # ... nor its first 37 characters (the server's "invalid token sbp_...", cut short).
        assert TOKEN[:12] not in message and "quotes part of a secret" in message



SNAPSHOT_KEY = "snap-breaker-Key-7f3a9c1e"


@pytest.mark.parametrize(("log2_n", "r", "p"), [(22, 32, 1), (20, 8, 16), (22, 8, 2), (21, 16, 1)])
def test_a_snapshot_header_asking_scrypt_for_gigabytes_or_minutes_is_refused_at_once(
        tmp_path: Path, log2_n: int, r: int, p: int) -> None:
    # Each within its own range, together 16 GiB of memory (a MemoryError, exit 3 "internal
    # error", or the machine's memory) or ~50 s of CPU before "wrong key".
    blob = bytearray(b"".join(encrypt_chunks([b"rows"], SNAPSHOT_KEY)))
    blob[9:12] = bytes([log2_n, r, p])
    (tmp_path / "x.dump.enc").write_bytes(bytes(blob))
    started = time.monotonic()
    result = run_guard("decrypt", "x.dump.enc", "x.dump", cwd=tmp_path,
                       env=clean_env(GUARD_SNAPSHOT_KEY=SNAPSHOT_KEY), timeout=30)
    assert time.monotonic() - started < 10
    assert result.code == 1, result.output
    assert "key derivation parameters are damaged" in result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert SNAPSHOT_KEY not in result.output and not (tmp_path / "x.dump").exists()


def test_the_header_guard_writes_still_decrypts(tmp_path: Path) -> None:
    (tmp_path / "x.dump.enc").write_bytes(b"".join(encrypt_chunks([b"rows"], SNAPSHOT_KEY)))
    result = run_guard("decrypt", "x.dump.enc", "x.dump", cwd=tmp_path, env=clean_env(GUARD_SNAPSHOT_KEY=SNAPSHOT_KEY))
    assert result.code == 0, result.output
    assert (tmp_path / "x.dump").read_bytes() == b"rows"


# A wrapped tool printing a Basic Authorization header, or its credentials base64-encoded:
# base64 of "user:password" puts the password at any of the 3 alignments in the encoding.
_BASE64_PRINTS = """
import base64, os, urllib.parse
password = urllib.parse.unquote(urllib.parse.urlsplit(os.environ["DATABASE_URL"]).password)
for prefix in ("", "u", "us", "user:", "postgres:", "ab:"):
    for suffix in ("", "\\n", "x"):
        raw = (prefix + password + suffix).encode()
        print("Authorization: Basic", base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode())
"""


def test_a_wrapped_tools_base64_of_the_password_is_masked_at_every_alignment(ready: Project) -> None:
    import base64
    import sys

    result = ready.guard("run", "--summary", "summary.md", "--", sys.executable, "-c", _BASE64_PRINTS)
    assert result.code == 0, result.output
    printed = [line.split()[2:] for line in result.stderr.splitlines() if line.startswith("Authorization: Basic")]
    assert len(printed) == 18
    for words in printed:
        for word in words:
            # What is left of each encoding around the mask cannot spell the password.
            for piece in word.split("***"):
                standard = piece.replace("-", "+").replace("_", "/")
                for shift in range(4):
                    body = standard[shift:]
                    body = body[:len(body) - len(body) % 4]
                    decoded = base64.b64decode(body.replace("=", "A"))
                    assert TEST_PASSWORD[:8].encode() not in decoded, (word, shift)
            assert "***" in word
    assert TEST_PASSWORD not in result.output + (ready.root / "summary.md").read_text()


@pytest.mark.parametrize("timeout", ["30d", "25d", "99999999999d", "0s", "0.0001s"])
def test_a_verify_timeout_postgresql_cannot_take_is_refused_before_any_change(ready: Project, timeout: str) -> None:
    # It becomes the check's statement_timeout: above INT_MAX ms PostgreSQL refused it only
    # after the release had committed (verify_failed, the database changed).
    (ready.root / "guard.yml").write_text(f"verify:\n  - {{name: v, sql: select true, timeout: {timeout}}}\n")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = ready.guard("run", "--reason", "t")
    assert result.code == 2, result.output
    assert "guard.yml:1: verify: v: timeout: must be from 1ms to 24d 20h" in result.stderr
    assert ready.history() == [] and ready.manual_entries() == []


def test_a_verify_timeout_within_range_still_runs(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("verify:\n  - {name: v, sql: select true, timeout: 24d}\n")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = ready.guard("run", "--reason", "t")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["status"] == "applied"


@pytest.mark.parametrize("older_than", ["99999999999d", "40000d", "9999999999999w"])
def test_prune_older_than_beyond_any_interval_is_a_usage_error(ready: Project, older_than: str) -> None:
    result = ready.guard("backup", "prune", "--older-than", older_than)
    assert result.code == 2, result.output
    assert "--older-than: must be from 0s to 36600d" in result.stderr


SHADOW_PASSWORD = "Shadow-Pass%2Fword-991"


def _other_url(db_url: str, password: str, dbname: str) -> str:
    """``db_url``'s server with another password and database (libpq URI)."""
    from urllib.parse import urlsplit

    parts = urlsplit(db_url)
    return f"postgresql://postgres:{password}@{parts.hostname}:{parts.port}/{dbname}"


def test_a_shadow_or_drill_target_that_refuses_the_login_is_named_not_database_url(ready: Project) -> None:
    # The hint said "check database_url" for a bad --shadow or --target: the wrong culprit.
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    shadow = ready.guard("check", "--shadow", _other_url(ready.db_url, SHADOW_PASSWORD, "postgres"))
    assert shadow.code == 3, shadow.output
    assert "password authentication failed" in shadow.stderr and "(check --shadow and" in shadow.stderr
    snapshot = ready.guard("snapshot", "--schema-only", "--out", "snaps")
    assert snapshot.code == 0, snapshot.output
    dump = next(p.name for p in (ready.root / "snaps").iterdir() if p.name.endswith(".dump"))
    drill = ready.guard("drill", f"snaps/{dump}", "--target", _other_url(ready.db_url, SHADOW_PASSWORD, "postgres"))
    assert drill.code != 0, drill.output
    assert "(check --target and" in drill.stderr
    for result in (shadow, drill):
        assert "Shadow-Pass" not in result.output and "Pass/word" not in result.output
        assert TEST_PASSWORD not in result.output


@pytest.mark.parametrize("run_id", ["x\nguard: forged line", "x\r::error::forged", "x\u2028y\x1b[31m"])
def test_an_error_echoing_a_run_id_with_line_breaks_stays_one_line(ready: Project, run_id: str) -> None:
    # restore-plan and undo echo the run id asked for: its line break made two lines, the
    # second under the attacker's control (a forged 'guard:' line).
    ready.guard("init")
    for command in ("restore-plan", "undo"):
        result = ready.guard(command, run_id)
        assert result.code in (2, 3), result.output
        assert len(result.stderr.splitlines()) == 1, result.stderr
        # Refused for its shape (not one guard issues), named escaped, before any lookup.
        assert result.stderr.startswith("guard: error: RUN_ID ") and "\x1b" not in result.stderr
        assert "is not a run id guard issues" in result.stderr, result.stderr


NESTED = "[" * 100_000 + "]" * 100_000  # valid JSON; Python's decoder recurses once a level


def _nested_api(conn: socket.socket) -> None:
    body = ('{"region": "eu", "backups": ' + NESTED + "}").encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                 + str(len(body)).encode() + b"\r\n\r\n" + body)


def test_json_nested_deeper_than_python_recurses_is_a_named_error_everywhere(ready: Project) -> None:
    # json.loads raises RecursionError, not ValueError: each reader let it through to
    # 'internal error' (exit 3) or, for a manifest, past the drill's own verdict.
    tool = ready.root / "nested-tool"
    tool.write_text(f"#!/bin/sh\nprintf '%s' '{NESTED}'\n")
    tool.chmod(0o755)
    for url in _raw_server(_nested_api):
        (ready.root / "guard.yml").write_text(
            "backups:\n  require: all\n  providers:\n"
            f"    - {{type: command, run: [{tool}]}}\n"
            "    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
            f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: '{url}'\n      retries: 0\n")
        result = ready.guard("backup", "status", SUPABASE_ACCESS_TOKEN=TOKEN)
        assert result.code == 3, result.output
        assert "internal error" not in result.output and "Recursion" not in result.output
        assert "did not print JSON" in result.output and "not valid JSON" in result.output
        assert TOKEN not in result.output
    (ready.root / "guard.yml").unlink()
    snaps = ready.root / "snaps"
    snaps.mkdir()
    (snaps / "x.dump").write_bytes(b"PGDMP")
    (snaps / "x.dump.manifest.json").write_text(NESTED)
    drill = ready.guard("drill", "snaps/x.dump")
    assert drill.code == 1, drill.output
    assert "is not a guard snapshot manifest" in drill.output and "internal error" not in drill.output


def test_a_backup_dated_in_the_future_does_not_open_the_gate(project: Project, tmp_path: Path) -> None:
    # Its age was negative, within any max_age: a stopped backup job went unnoticed until then.
    import datetime as dt

    from tests.fakes import FakeSupabase

    project.init_backup_log()
    project.log_automated_backup(age=dt.timedelta(days=-400))
    api = FakeSupabase(token=TOKEN).start()
    api.backup_at(dt.timedelta(days=-30))
    tool = tmp_path / "tool"
    future = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat()
    tool.write_text(f"#!/bin/sh\necho '{json.dumps({'completed_at': future})}'\n")
    tool.chmod(0o755)
    try:
        (project.root / "guard.yml").write_text(
            "backups:\n  providers:\n    - type: table\n"
            f"    - {{type: command, run: ['{tool}']}}\n"
            "    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
            f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: '{api.url}'\n      retries: 0\n")
        project.add("20240101000000_a.sql", "create table public.a (id int);\n")
        result = project.guard("run", "--reason", "t", SUPABASE_ACCESS_TOKEN=TOKEN)
    finally:
        api.stop()
    assert result.code == 3, result.output
    assert result.output.count("in the future") >= 3 and project.history() == []
    assert TOKEN not in result.output


def test_backup_log_refuses_a_time_in_the_future(ready: Project) -> None:
    result = ready.guard("backup", "log", "--kind", "automated", "--reason", "x", "--at", "2999-01-01T00:00:00Z")
    assert result.code == 2, result.output
    assert "--at: '2999-01-01T00:00:00Z' is in the future" in result.stderr
    assert ready.query("select count(*) from public.backup_logs where created_at > now()") == [(0,)]


@pytest.mark.parametrize("completed_at", ["1e300", "-1e300", "NaN", "99999999999999999999"])
def test_a_command_providers_time_no_datetime_holds_is_named(project: Project, tmp_path: Path, completed_at: str) -> None:
    tool = tmp_path / "tool"
    tool.write_text(f"#!/bin/sh\necho '{{\"completed_at\": {completed_at}}}'\n")
    tool.chmod(0o755)
    (project.root / "guard.yml").write_text(f"backups:\n  providers:\n    - {{type: command, run: ['{tool}']}}\n")
    result = project.guard("backup", "status")
    assert result.code == 3, result.output
    assert "completed_at is not a time" in result.output and "internal error" not in result.output


@pytest.mark.parametrize("damaged", ['[{"ok": true, "snapshot": "a"}, {"ok": tr', NESTED, "\x00\x01"])
def test_a_drill_log_that_is_not_json_is_kept_aside_not_overwritten(ready: Project, damaged: str) -> None:
    # A drills.json cut short (a full disk) was replaced by the new drill alone: every drill
    # recorded before was lost without a word.
    snaps = ready.root / "snaps"
    snaps.mkdir()
    (snaps / "x.dump").write_bytes(b"PGDMP")
    (snaps / "x.dump.manifest.json").write_text("{}")
    (snaps / "drills.json").write_text(damaged)
    result = ready.guard("drill", "snaps/x.dump", "--dir", "snaps")
    assert result.code == 1, result.output
    aside = [p for p in snaps.iterdir() if p.name.startswith("drills.json.unreadable-")]
    assert len(aside) == 1 and aside[0].read_text() == damaged
    assert f"kept as {aside[0].name}" in result.stderr
    assert len(json.loads((snaps / "drills.json").read_text())) == 1


def test_lint_names_a_fifo_or_device_given_by_name_for_what_it_is(tmp_path: Path) -> None:
    import os

    os.mkfifo(tmp_path / "f.sql")
    for name in ("f.sql", "/dev/null"):
        result = run_guard("lint", name, cwd=tmp_path, timeout=30)
        assert result.code == 2, result.output
        assert result.stderr == f"guard: error: {name}: not a regular file or a directory\n"
    missing = run_guard("lint", "nope.sql", cwd=tmp_path)
    assert missing.code == 2 and "nope.sql: no such file or directory" in missing.stderr
