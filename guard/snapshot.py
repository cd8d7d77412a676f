"""Portable snapshots: a `pg_dump` (custom format) with a manifest, encrypted when full.

The dump and the manifest's per-table row counts come from one exported snapshot
(``pg_export_snapshot()`` + ``pg_dump --snapshot``), so they agree. A full snapshot leaving
the database is encrypted by default with AES-256-GCM, streamed in 1 MiB chunks:

    header  = b"GUARDENC1" | salt (16 bytes) | chunk size (4 bytes, big-endian)
    chunk   = length (4 bytes) | nonce (12 bytes) | ciphertext+tag
    AAD     = header | chunk index (8 bytes) | last-chunk flag (1 byte)

A reordered, dropped, truncated or altered chunk fails authentication. The key is derived
from GUARD_SNAPSHOT_KEY (a passphrase) with scrypt (n=2^15, r=8, p=1) and the random salt.
The manifest records the algorithm, never the key. Documented in docs/snapshots.md.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import re
import shutil
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from guard.db import connect, describe_url, url_password
from guard.errors import Blocked, GuardError, UsageError

MAGIC = b"GUARDENC1"
CHUNK = 1 << 20
SCRYPT = {"n": 1 << 15, "r": 8, "p": 1}
Progress = Callable[[str], None]

TABLE_COUNTS = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
   AND n.nspname NOT LIKE 'pg_toast%'
 ORDER BY 1
"""


class SnapshotError(GuardError):
    """A snapshot that cannot be made, read or trusted: exit 1 in a drill."""

    exit_code = 1


# ---------------------------------------------------------------------- clients


def client_version(path: Path) -> int:
    out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    return int(match.group(1)) if match else 0


def find_client(tool: str, server_major: int) -> Path:
    """A pg_dump/pg_restore whose major version is at least the server's."""
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]) / tool)
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=30).stdout.strip()
        if out:
            candidates.append(Path(out) / tool)
    candidates += sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{tool}"), reverse=True,
                         key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    from guard.embedded import _pgserver_bin_dir  # the bundled build, when installed

    bundled = _pgserver_bin_dir()
    if bundled is not None:
        candidates.append(bundled / tool)
    seen = []
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            major = client_version(path)
            seen.append(f"{path} ({major})")
            if major >= server_major:
                return path
    raise Blocked(
        f"no {tool} of PostgreSQL {server_major} or newer for a server of version {server_major}"
        + (f" (found: {', '.join(seen)})" if seen else ""),
        hint=f"apt-get install postgresql-client-{server_major}, or set PG_BIN to its bin directory",
    )


def _env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG") or k == "PG_BIN"}
    password = url_password(url)
    if password:
        env["PGPASSWORD"] = password
    return env


def _dsn_without_password(url: str) -> str:
    from guard.shadow import _no_password

    return _no_password(url)


# ---------------------------------------------------------------------- encryption


def derive_key(passphrase: str, salt: bytes) -> bytes:
    from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

    return Scrypt(salt=salt, length=32, **SCRYPT).derive(passphrase.encode())


def encrypt_file(source: Path, target: Path, passphrase: str) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt = os.urandom(16)
    header = MAGIC + salt + struct.pack(">I", CHUNK)
    aead = AESGCM(derive_key(passphrase, salt))
    with source.open("rb") as src, target.open("wb") as out:
        out.write(header)
        index = 0
        chunk = src.read(CHUNK)
        while True:
            following = src.read(CHUNK)
            last = not following
            nonce = os.urandom(12)
            sealed = aead.encrypt(nonce, chunk, header + struct.pack(">QB", index, last))
            out.write(struct.pack(">I", len(sealed)) + nonce + sealed)
            if last:
                break
            chunk, index = following, index + 1


def decrypt_file(source: Path, target: Path, passphrase: str) -> None:
    """Raises SnapshotError for a wrong key or any damage (altered, reordered, truncated)."""
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    with source.open("rb") as src, target.open("wb") as out:
        header = src.read(len(MAGIC) + 20)
        if not header.startswith(MAGIC) or len(header) < len(MAGIC) + 20:
            raise SnapshotError(f"{source.name} is not a guard-encrypted snapshot")
        aead = AESGCM(derive_key(passphrase, header[len(MAGIC):len(MAGIC) + 16]))
        index = 0
        while True:
            size_bytes = src.read(4)
            if len(size_bytes) < 4:
                raise SnapshotError(f"{source.name} is truncated (no final chunk)")
            (size,) = struct.unpack(">I", size_bytes)
            nonce = src.read(12)
            sealed = src.read(size)
            if len(nonce) < 12 or len(sealed) < size:
                raise SnapshotError(f"{source.name} is truncated in chunk {index}")
            plain = None
            for last in (False, True):
                try:
                    plain = aead.decrypt(nonce, sealed, header + struct.pack(">QB", index, last))
                except InvalidTag:
                    continue
                out.write(plain)
                if last:
                    if src.read(1):
                        raise SnapshotError(f"{source.name} has data after its final chunk")
                    return
                break
            if plain is None:
                raise SnapshotError(f"cannot decrypt {source.name}: wrong key, or the file is damaged (chunk {index})")
            index += 1


# ---------------------------------------------------------------------- taking one


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def take_snapshot(
    url: str, *, mode: str, out_dir: Path, encrypt: bool, key: str | None, progress: Progress
) -> dict[str, Any]:
    """Dump the database (mode "full" or "schema") into out_dir; returns the manifest."""
    if mode == "full" and encrypt and not key:
        raise UsageError(
            "a full snapshot is encrypted by default and no key is set",
            hint="export GUARD_SNAPSHOT_KEY=..., or pass --no-encrypt (snapshot.encrypt: false)",
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    started = dt.datetime.now(dt.timezone.utc)
    stamp = f"{started:%Y%m%dT%H%M%SZ}"
    conn = connect(url, application_name="guard snapshot", autocommit=False)
    try:
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        row = conn.execute("SELECT pg_export_snapshot(), current_setting('server_version'), "
                           "current_setting('server_version_num')::int / 10000, current_database()").fetchone()
        assert row is not None
        snapshot_id, version, major, database = row
        counts = {}
        from psycopg import sql

        for (table,) in conn.execute(TABLE_COUNTS).fetchall():
            counted = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.SQL(table))).fetchone()
            counts[table] = int(counted[0]) if counted else 0
        pg_dump = find_client("pg_dump", major)
        plain = out_dir / f"{database}-{stamp}-{mode}.dump"
        argv = [str(pg_dump), "-Fc", f"--snapshot={snapshot_id}", "-f", str(plain), "-d", _dsn_without_password(url)]
        if mode == "schema":
            argv.insert(1, "--schema-only")
        proc = subprocess.Popen(argv, env=_env(url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        began = time.monotonic()
        while proc.poll() is None:
            time.sleep(0.2)
            if time.monotonic() - began > 1:
                size = plain.stat().st_size if plain.exists() else 0
                progress(f"pg_dump: {size / 1048576:.1f} MB written")
                began = time.monotonic()
        if proc.returncode != 0:
            err = proc.stderr.read() if proc.stderr else ""
            plain.unlink(missing_ok=True)
            raise Blocked(f"pg_dump of {describe_url(url)} failed: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}")
    finally:
        conn.rollback()
        conn.close()
    file = plain
    encryption = None
    if encrypt and key:
        file = plain.with_suffix(".dump.enc")
        encrypt_file(plain, file, key)
        plain.unlink()
        encryption = {"algorithm": "AES-256-GCM", "kdf": "scrypt", "kdf_params": SCRYPT, "chunk_bytes": CHUNK,
                      "format": "docs/snapshots.md"}
    restore = f"pg_restore --no-owner --dbname=<target database> {file.name}"
    if encryption:
        restore = (f"GUARD_SNAPSHOT_KEY=... guard decrypt {file.name} {plain.name} && "
                   + restore.replace(file.name, plain.name))
    manifest = {
        "format": 1,
        "database": describe_url(url),
        "server_version": version,
        "mode": mode,
        "started_at": started.isoformat(),
        "finished_at": dt.datetime.now(dt.timezone.utc).isoformat(),
        "file": file.name,
        "bytes": file.stat().st_size,
        "sha256": sha256(file),
        "encryption": encryption,
        "tables": counts if mode == "full" else {t: None for t in counts},
        "restore_command": restore,
    }
    (out_dir / f"{file.name}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest
