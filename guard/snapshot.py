"""Portable snapshots: a `pg_dump` in custom format and a JSON manifest beside it.

`take_snapshot` promises:

- The dump and the manifest's per-table row counts describe the same instant: guard counts
  in a REPEATABLE READ transaction that exports its snapshot (``pg_export_snapshot()``),
  keeps it open, and runs ``pg_dump --snapshot=<id>``.
- The client is a `pg_dump` whose major version is at least the server's; the password
  reaches it through ``PGPASSWORD``, never its command line.
- An encrypted snapshot never touches the disk in plaintext: pg_dump's output is encrypted
  as it streams out of the pipe. A snapshot appears under its final name only when complete
  (written as ``.partial``, synced, renamed), and its manifest only after it.

Encrypted files are AES-256-GCM in guard's framing (guard.snapshot_crypto, docs/snapshots.md);
the manifest records the algorithm and parameters, never the key.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.db import connect, describe_url
from guard.errors import Blocked, UsageError

# The encrypted format and the file helpers live in guard.snapshot_crypto; their names are
# re-exported here, where drills, runs and tests have always found them.
from guard.snapshot_crypto import (  # noqa: F401 - re-exported
    CHUNK,
    ENC_VERSION,
    HEADER_BYTES,
    MAGIC,
    NONCE_BYTES,
    SnapshotError,
    _atomic_write,
    _PartialFile,
    decrypt_chunks,
    decrypt_file,
    encrypt_chunks,
    encrypt_file,
    encryption_info,
    sha256,
)
from guard.structs import asdict

if TYPE_CHECKING:
    import psycopg

Progress = Callable[[str], None]

MANIFEST_FORMAT = 2
MANIFEST_SUFFIX = ".manifest.json"
MIN_KEY_CHARS = 16  # shorter passphrases make the encryption a formality
PROGRESS_AFTER = 1.0  # seconds: quick dumps stay quiet
PROGRESS_EVERY = 5.0

# The SQL guard runs for a snapshot: in one REPEATABLE READ, READ ONLY transaction.
BEGIN_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
# pg_dump reads every row with row_security off (it fails rather than dump a filtered table):
# count the same way, so a count can never silently differ from the dump. The export session
# stays idle while pg_dump works, so a server-side idle timeout must not end it.
SNAPSHOT_SETTINGS = ("SET LOCAL row_security = off", "SET LOCAL idle_in_transaction_session_timeout = 0")
EXPORT_SNAPSHOT = """
SELECT pg_export_snapshot(), current_setting('server_version'),
       current_setting('server_version_num')::int / 10000, current_database(), clock_timestamp()
"""
# Tables whose rows pg_dump writes: ordinary and partitioned tables outside the system
# schemas, except tables that belong to an extension (CREATE EXTENSION makes those).
USER_TABLES = """
SELECT n.nspname, c.relname, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p')
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
   AND NOT EXISTS (SELECT 1 FROM pg_depend d
                    WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 3
"""
COUNT_ROWS = "SELECT count(*) FROM {}"
# Role names the dump may refer to (owners, grants, policies): a drill creates them first.
ROLES = "SELECT rolname FROM pg_roles WHERE rolname !~ '^pg_' AND rolname <> current_user ORDER BY 1"


# ---------------------------------------------------------------------- the manifest


class Manifest(Struct, frozen=True):
    """What `guard snapshot` wrote, as recorded in ``<file>.manifest.json`` beside it.

    ``directory`` is where the files are (not stored: snapshots move).
    """

    file: str
    mode: str  # "full" or "schema"
    database: str  # host:port/dbname, never credentials
    server_version: str
    server_major: int
    pg_dump_version: str
    pg_dump_major: int  # pg_restore must be at least this new to read the file
    started_at: str
    finished_at: str
    taken_at: str  # the server's clock when the dump's snapshot was exported
    bytes: int
    sha256: str  # of the file as written (encrypted bytes when encrypted)
    encryption: dict[str, Any] | None
    tables: dict[str, int | None]  # quoted schema.table -> rows (None: schema-only)
    roles: tuple[str, ...]
    restore_command: str
    format: int = MANIFEST_FORMAT
    id: str = ""  # random, written once: the snapshot's idempotency key in backup logs
    directory: Path | None = None  # where it was read from: not part of what the snapshot is

    def __eq__(self, other: object) -> bool:
        if type(other) is not Manifest:
            return NotImplemented
        names = [name for name in self.__struct_fields__ if name != "directory"]
        return all(getattr(self, name) == getattr(other, name) for name in names)

    def __hash__(self) -> int:
        return hash(self.sha256)

    @property
    def encrypted(self) -> bool:
        return self.encryption is not None

    @property
    def path(self) -> Path:
        """The snapshot file."""
        return (self.directory or Path(".")) / self.file

    @property
    def manifest_path(self) -> Path:
        return (self.directory or Path(".")) / (self.file + MANIFEST_SUFFIX)

    def restore_steps(self, directory: Path | None = None) -> list[str]:
        """Shell commands that restore this snapshot into ``$TARGET_DATABASE_URL``.

        Encrypted: decrypt (needs GUARD_SNAPSHOT_KEY) to a plain dump, pg_restore it, remove
        the plain dump. Paths are bare file names unless ``directory`` is given.
        """
        return _restore_steps(self.file, self.encrypted, directory)

    def to_dict(self) -> dict[str, Any]:
        """The manifest's JSON form."""
        data = asdict(self)
        del data["directory"]
        data["roles"] = list(self.roles)
        return data

    @classmethod
    def load(cls, path: Path) -> Manifest:
        """Read a manifest; SnapshotError when it is missing or not a guard manifest."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(data["file"], str) or Path(data["file"]).name != data["file"] or data["file"] in ("", ".", ".."):
                # The snapshot lies beside its manifest: a path elsewhere is not ours to read.
                raise ValueError(f"file must be a name beside the manifest, got {data['file']!r}")
            return cls(
                file=data["file"], mode=data["mode"], database=data["database"],
                server_version=data["server_version"],
                server_major=int(data.get("server_major") or _major(data["server_version"])),
                pg_dump_version=data.get("pg_dump_version", ""),
                pg_dump_major=int(data.get("pg_dump_major") or 0),
                started_at=data["started_at"], finished_at=data["finished_at"],
                taken_at=data.get("taken_at", data["started_at"]), bytes=int(data["bytes"]),
                sha256=data["sha256"], encryption=data.get("encryption"), tables=dict(data["tables"]),
                roles=tuple(data.get("roles", ())), restore_command=data["restore_command"],
                format=int(data.get("format", 1)), id=str(data.get("id") or data["sha256"]),
                directory=path.parent,
            )
        except OSError as exc:
            raise SnapshotError(f"cannot read manifest {path}: {exc.strerror}") from None
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise SnapshotError(f"{path.name} is not a guard snapshot manifest ({exc.__class__.__name__}: {exc})") from None

    def write(self) -> Path:
        """Write the manifest beside the snapshot (atomically); its path."""
        target = self.manifest_path
        _atomic_write(target, json.dumps(self.to_dict(), indent=2) + "\n")
        return target


def _restore_steps(file: str, encrypted: bool, directory: Path | None) -> list[str]:
    def where(name: str) -> str:
        return shlex.quote(str(directory / name) if directory is not None else name)

    restore = 'pg_restore --no-owner --dbname "$TARGET_DATABASE_URL" '
    if not encrypted:
        return [restore + where(file)]
    plain = file.removesuffix(".enc")
    return [f"guard decrypt {where(file)} {where(plain)}", restore + where(plain), f"rm {where(plain)}"]


def manifests_in(directory: Path) -> list[Path]:
    """Manifest files in ``directory``, oldest first (by the time the snapshot was taken:
    a downloaded artifact's file times say nothing)."""
    found = []
    for path in directory.glob(f"*{MANIFEST_SUFFIX}"):
        try:
            started = str(json.loads(path.read_text(encoding="utf-8")).get("started_at", ""))
        except (OSError, ValueError, AttributeError, RecursionError):
            started = ""
        found.append((started, path.name, path))
    return [p for _s, _n, p in sorted(found)]


# ---------------------------------------------------------------------- clients


def _major(version: str) -> int:
    """15 from "15.18 (Debian ...)", 9 from "9.6.24": pre-10 releases are older than any 10+."""
    match = re.search(r"(\d+)", version)
    return int(match.group(1)) if match else 0


def client_version(path: Path) -> str:
    """The version a client reports ("16.2" from "pg_dump (PostgreSQL) 16.2"), or ""."""
    try:
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    match = re.search(r"\(PostgreSQL\)\s+(\d+(?:\.\d+)*)", out) or re.search(r"(\d+(?:\.\d+)+)", out)
    return match.group(1) if match else ""


def _client_dirs(tool: str) -> list[Path]:
    """Where to look, in order: PG_BIN, pg_config --bindir, /usr/lib/postgresql/<newest first>/bin,
    pgserver's bundled binaries, then PATH."""
    from guard.embedded import _candidate_bin_dirs  # the same search as the embedded server's

    dirs = _candidate_bin_dirs()
    on_path = shutil.which(tool)
    if on_path:
        dirs.append(Path(on_path).parent)
    return dirs


def find_client(tool: str, server_major: int) -> Path:
    """A `pg_dump`/`pg_restore` whose major version is at least ``server_major``.

    Blocked (exit 3) naming the server version, what was found and how to install one.
    """
    seen: list[str] = []
    checked: set[Path] = set()
    for directory in _client_dirs(tool):
        path = directory / tool
        if path in checked or not path.is_file() or not os.access(path, os.X_OK):
            continue
        checked.add(path)
        version = client_version(path)
        if version and _major(version) >= server_major:
            return path
        seen.append(f"{path} {version or 'of unknown version'}")
    raise Blocked(
        f"no {tool} of PostgreSQL {server_major} or newer for a server of version {server_major}"
        + (f"; found only {', '.join(seen)}" if seen else ""),
        hint=f"install postgresql-client-{server_major} (apt.postgresql.org) or set PG_BIN to its bin directory",
    )


def client_dsn(url: str) -> tuple[str, dict[str, str]]:
    """A connection string without the password, and the environment that carries it.

    The password goes to the client as PGPASSWORD (never on its command line, where `ps`
    shows it); the rest of the environment is passed on as is, so the client connects the
    way guard's own connection does.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    try:
        params = {k: str(v) for k, v in conninfo_to_dict(url).items() if v is not None}
    except Exception:  # noqa: BLE001 - psycopg's parse error may quote the URL
        raise UsageError("the database URL cannot be parsed") from None
    # guard's own settings (the snapshot key among them) are none of the client's business.
    env = {k: v for k, v in os.environ.items() if not k.startswith("GUARD_")}
    password = params.pop("password", None)
    if password:
        env["PGPASSWORD"] = password
    return make_conninfo(**params), env


class ProgressMeter:
    """When to print progress for long work: not in the first second, then every few seconds."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.started = clock()
        self._next = self.started + PROGRESS_AFTER

    def elapsed(self) -> float:
        return self._clock() - self.started

    def due(self) -> bool:
        """True when a progress line is due now (and then not again for a while)."""
        now = self._clock()
        if now < self._next:
            return False
        self._next = now + PROGRESS_EVERY
        return True


# ---------------------------------------------------------------------- taking one


def _file_name(database: str, started: dt.datetime, mode: str, encrypted: bool, out_dir: Path) -> str:
    stem = f"{re.sub(r'[^A-Za-z0-9_.-]+', '_', database)}-{started:%Y%m%dT%H%M%SZ}-{mode}"
    suffix = ".dump.enc" if encrypted else ".dump"
    name, n = stem + suffix, 1
    while (out_dir / name).exists() or (out_dir / (name + MANIFEST_SUFFIX)).exists():
        n += 1
        name = f"{stem}-{n}{suffix}"
    return name


def _count_rows(conn: psycopg.Connection[Any], mode: str) -> dict[str, int | None]:
    import psycopg
    from psycopg import sql

    counts: dict[str, int | None] = {}
    for schema, table, quoted in conn.execute(USER_TABLES).fetchall():
        if mode != "full":
            counts[quoted] = None
            continue
        try:
            row = conn.execute(sql.SQL(COUNT_ROWS).format(sql.Identifier(schema, table))).fetchone()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise Blocked(f"cannot read every row of {quoted}: {exc.diag.message_primary}",
                          hint="snapshot with a role that owns the tables or has BYPASSRLS") from None
        counts[quoted] = int(row[0]) if row else 0
    return counts


def take_snapshot(
    url: str, *, mode: str, out_dir: Path, encrypt: bool, key: str | None, progress: Progress
) -> Manifest:
    """Dump the database (``mode`` "full" or "schema") into ``out_dir``; the written manifest.

    Encrypted when ``encrypt`` and a key is given; a full snapshot with ``encrypt`` and no
    key is refused (UsageError, exit 2) before connecting. ConnectError / Blocked (exit 3)
    when the database cannot be reached, no client is new enough, or pg_dump fails.
    """
    if mode not in ("full", "schema"):
        raise UsageError(f"snapshot mode must be full or schema, got {mode!r}")
    if encrypt and not key and mode == "full":
        raise UsageError(
            "a full snapshot is encrypted by default and no key is set",
            hint="set GUARD_SNAPSHOT_KEY (or snapshot.key: ${VAR}), or pass --no-encrypt / snapshot.encrypt: false",
        )
    passphrase = key if encrypt and key else None
    if passphrase is not None and len(passphrase) < MIN_KEY_CHARS:
        raise UsageError(f"the snapshot key is shorter than {MIN_KEY_CHARS} characters",
                         hint="generate one with: openssl rand -base64 32")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create snapshot directory {out_dir}: {exc.strerror}") from None
    import psycopg

    started = dt.datetime.now(dt.timezone.utc)
    what = describe_url(url)
    dsn, env = client_dsn(url)
    conn = connect(url, application_name="guard snapshot", autocommit=False)
    try:
        conn.execute(BEGIN_SNAPSHOT)
        for setting in SNAPSHOT_SETTINGS:
            conn.execute(setting)
        row = conn.execute(EXPORT_SNAPSHOT).fetchone()
        assert row is not None
        snapshot_id, server_version, server_major, database, taken_at = row
        pg_dump = find_client("pg_dump", server_major)
        pg_dump_version = client_version(pg_dump)
        counts = _count_rows(conn, mode)
        roles = tuple(r[0] for r in conn.execute(ROLES).fetchall())
        name = _file_name(database, started, mode, passphrase is not None, out_dir)
        progress(f"pg_dump {pg_dump_version} ({pg_dump}) of {what}, {mode}, "
                 + ("encrypted" if passphrase else "not encrypted"))
        # The exporting transaction stays open until pg_dump is done: the snapshot lives with it.
        size, digest = _dump(pg_dump, dsn, env, snapshot_id, mode, out_dir / name, passphrase, progress, what)
    except psycopg.Error as exc:
        raise Blocked(f"snapshot of {what} failed: {exc.diag.message_primary or exc.__class__.__name__}") from None
    finally:
        _end_quietly(conn)
    manifest = Manifest(
        file=name, mode=mode, database=what, server_version=server_version,
        server_major=int(server_major), pg_dump_version=pg_dump_version, pg_dump_major=_major(pg_dump_version),
        started_at=started.isoformat(), finished_at=dt.datetime.now(dt.timezone.utc).isoformat(),
        taken_at=taken_at.astimezone(dt.timezone.utc).isoformat(), bytes=size, sha256=digest,
        encryption=encryption_info() if passphrase else None, tables=counts, roles=roles,
        restore_command=" && ".join(_restore_steps(name, passphrase is not None, None)), directory=out_dir,
        id=uuid.uuid4().hex,
    )
    manifest.write()
    return manifest


def _end_quietly(conn: psycopg.Connection[Any]) -> None:
    import psycopg

    try:
        conn.rollback()
    except psycopg.Error:
        pass  # the session is going away anyway; the error that matters is already raised
    finally:
        conn.close()


def _dump(
    pg_dump: Path, dsn: str, env: dict[str, str], snapshot_id: str, mode: str, target: Path,
    passphrase: str | None, progress: Progress, what: str,
) -> tuple[int, str]:
    """Run pg_dump into ``target`` (through the encryption when a passphrase is given)."""
    argv = [str(pg_dump), "--format=custom", f"--snapshot={snapshot_id}", "--dbname", dsn]
    if mode == "schema":
        argv.append("--schema-only")
    meter = ProgressMeter()
    with tempfile.TemporaryFile() as errors, _PartialFile(target) as out:
        # stderr goes to a file: a pipe nobody reads while stdout is drained could fill and hang.
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errors)
        stdout = proc.stdout
        assert stdout is not None
        try:
            def chunks() -> Iterator[bytes]:
                read = 0
                for chunk in iter(lambda: stdout.read(CHUNK), b""):
                    read += len(chunk)
                    if meter.due():
                        progress(f"pg_dump: {read / 1048576:.1f} MB dumped, {meter.elapsed():.0f}s")
                    yield chunk

            pieces = encrypt_chunks(chunks(), passphrase) if passphrase else chunks()
            try:
                for piece in pieces:
                    out.write(piece)
            except OSError as exc:
                raise Blocked(f"cannot write {target}: {exc.strerror}") from None
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            stdout.close()
        if code != 0:
            errors.seek(0)
            lines = [ln for ln in errors.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            raise Blocked(f"pg_dump of {what} failed: {lines[-1] if lines else f'exit {code}'}")
        out.commit()
    if meter.elapsed() > PROGRESS_AFTER:
        progress(f"pg_dump: done, {out.size / 1048576:.1f} MB in {meter.elapsed():.1f}s")
    return out.size, out.digest.hexdigest()
