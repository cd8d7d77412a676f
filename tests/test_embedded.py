"""guard.embedded: throw-away clusters start fast, authenticate, clean up, and keep secrets."""

from __future__ import annotations

import importlib.util
import os
import socket
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import psycopg
import pytest

from guard import embedded
from guard.embedded import Cluster, EmbeddedError, find_bin_dir, server_major
from tests.conftest import TEST_PASSWORD


def _pgserver_bin_dir() -> Path:
    spec = importlib.util.find_spec("pgserver")
    assert spec is not None and spec.origin, "pgserver is a test dependency: pip install '.[test]'"
    return Path(spec.origin).parent / "pginstall" / "bin"


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_session_cluster_takes_the_password_over_tcp_on_loopback_only(pg_cluster: Cluster) -> None:
    assert TEST_PASSWORD in pg_cluster.url()
    with psycopg.connect(pg_cluster.url(), autocommit=True) as conn:
        row = conn.execute(
            "SELECT inet_server_addr()::text, current_user, current_setting('listen_addresses'),"
            " current_setting('wal_level'), current_setting('fsync'),"
            " current_setting('unix_socket_directories')"
        ).fetchone()
    assert row is not None
    addr, user, listen, wal_level, fsync, socket_dir = row
    assert (addr, user, listen) == ("127.0.0.1/32", pg_cluster.superuser, "127.0.0.1")
    assert (wal_level, fsync) == ("replica", "off")
    # The unix socket sits in a private directory, next to the data directory.
    assert Path(socket_dir).parent == pg_cluster.data_dir.parent
    assert stat.S_IMODE(Path(socket_dir).stat().st_mode) == 0o700


def test_wrong_or_missing_password_is_rejected(pg_cluster: Cluster) -> None:
    wrong = pg_cluster.url().replace(TEST_PASSWORD, "not-the-password")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=10)
    bare = f"postgresql://{pg_cluster.superuser}@127.0.0.1:{pg_cluster.port}/postgres"
    with pytest.raises(psycopg.OperationalError, match="password"):
        psycopg.connect(bare, connect_timeout=10, passfile=os.devnull)


def test_restore_point_works_as_superuser(db_conn: psycopg.Connection) -> None:
    row = db_conn.execute("SELECT pg_create_restore_point('x')::text").fetchone()
    assert row is not None and "/" in row[0]  # an LSN such as 0/1A2B3C8


def test_no_secret_on_disk_after_start(pg_cluster: Cluster) -> None:
    root = pg_cluster.data_dir.parent
    assert not (root / "pwfile").exists()
    for path in (root / "server.log", pg_cluster.data_dir / "postgresql.conf"):
        assert TEST_PASSWORD not in path.read_text(errors="replace")


def test_url_quotes_the_password_and_omits_it_when_none() -> None:
    cluster = Cluster(password="a b/c@d:e", port=5999)
    assert cluster.url("x y") == "postgresql://postgres:a%20b%2Fc%40d%3Ae@127.0.0.1:5999/x%20y"
    assert Cluster(port=5999).url() == "postgresql://postgres@127.0.0.1:5999/postgres"


def test_find_bin_dir_honours_min_major() -> None:
    assert find_bin_dir(min_major=99) is None
    found = find_bin_dir()
    assert found is not None and server_major(found) >= 10


def test_pre_10_servers_count_as_older_than_any_10_plus(tmp_path: Path) -> None:
    """9.6 is major 9, not 96: it must never pass for newer than 15."""
    for name, says, major in (("old", "9.6.24", 9), ("new", "16.2 (Debian 16.2-1)", 16)):
        bin_dir = tmp_path / name
        bin_dir.mkdir()
        (bin_dir / "postgres").write_text(f"#!/bin/sh\necho 'postgres (PostgreSQL) {says}'\n")
        (bin_dir / "postgres").chmod(0o755)
        assert server_major(bin_dir) == major


def test_missing_binaries_say_what_to_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(embedded, "find_bin_dir", lambda min_major=None: None)
    with pytest.raises(EmbeddedError, match=r"install postgresql .*pgserver.*PG_BIN"):
        Cluster(password=TEST_PASSWORD)
    with pytest.raises(EmbeddedError, match="does not hold initdb, pg_ctl and postgres"):
        Cluster(bin_dir=tmp_path)


def test_failed_start_says_why_in_one_line_without_the_password(pg_cluster: Cluster) -> None:
    # The session cluster holds the port: initdb succeeds, the server cannot bind.
    cluster = Cluster(password=TEST_PASSWORD, port=pg_cluster.port)
    with pytest.raises(EmbeddedError) as caught:
        cluster.start()
    message = str(caught.value)
    assert "could not create any TCP/IP sockets" in message or "already in use" in message
    assert "\n" not in message
    assert TEST_PASSWORD not in message
    assert not cluster.running
    assert not cluster.data_dir.parent.exists()  # nothing left behind
    cluster.stop()  # harmless after a failed start


def test_pgserver_binaries_work_as_whoever_we_are() -> None:
    bin_dir = _pgserver_bin_dir()
    with Cluster(bin_dir=bin_dir, password=TEST_PASSWORD) as cluster:
        assert cluster.major == server_major(bin_dir) >= 16
        data_dir, port = cluster.data_dir, cluster.port
        if os.geteuid() == 0:  # PostgreSQL refuses root: it must run as an unprivileged user
            assert data_dir.stat().st_uid != 0
        cluster.start()  # already running: a no-op
        assert (cluster.data_dir, cluster.port) == (data_dir, port)
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("SELECT pg_create_restore_point('x')")
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(cluster.url().replace(TEST_PASSWORD, "nope"), connect_timeout=10)
        # Fault injection later relies on this: a crash-restart, and the server comes back.
        cluster.pg_ctl("restart", "-m", "immediate")
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
    assert not data_dir.exists() and not data_dir.parent.exists()
    assert _refused(port)
    cluster.stop()  # twice is fine


def test_exit_without_stop_still_cleans_up(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        from guard.embedded import Cluster
        cluster = Cluster(password="x")
        cluster.start()
        print(cluster.data_dir, cluster.port, flush=True)
        """
    )
    repo = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=repo, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert done.returncode == 0, done.stderr
    data_dir, port = done.stdout.split()
    assert not Path(data_dir).parent.exists()
    assert _refused(int(port))
