"""Restore drills: prove that a snapshot restores, and measure how long it takes.

`run_drill` promises:

- The snapshot file's SHA-256 matches its manifest before anything else is done with it.
- Decrypted plaintext exists only in a private temporary directory, removed afterwards.
- The restore goes into a throw-away embedded PostgreSQL (of the source's major version or
  newer when such server binaries are installed) or into ``target_url``: never the configured
  production database (host, port and database name compared), never a database that
  already holds tables.
- Pass means: pg_restore succeeded; every table in the manifest exists, with the manifest's
  row count for a full snapshot; every `drill.checks` query gave its expected value.
- The outcome (pass or fail, the reason, restore seconds, sizes) is appended to
  ``<snapshot_dir>/drills.json`` and, when a production database URL is given and reachable,
  inserted into ``guard.drills`` there. `last_drill` reads it back for `guard backup status`.

Usage errors (no snapshot found, no key, a refused target) raise UsageError and are not
recorded; a snapshot that does not restore is a result with ``ok`` False, not an exception.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.db import connect, describe_url, same_database
from guard.errors import GuardError, UsageError
from guard.snapshot import (
    COUNT_ROWS,
    MANIFEST_SUFFIX,
    USER_TABLES,
    Manifest,
    ProgressMeter,
    SnapshotError,
    _atomic_write,
    client_dsn,
    decrypt_file,
    find_client,
    manifests_in,
    sha256,
)
from guard.structs import asdict

if TYPE_CHECKING:
    import psycopg

Progress = Callable[[str], None]
DRILL_LOG = "drills.json"
DRILL_LOG_KEEP = 100
DRILL_DATABASE = "guard_drill"
CHECK_TIMEOUT = "10min"

# The SQL a drill runs against the production database: only to record its outcome.
CREATE_DRILLS = (
    "CREATE SCHEMA IF NOT EXISTS guard",
    "REVOKE ALL ON SCHEMA guard FROM PUBLIC",
    """CREATE TABLE IF NOT EXISTS guard.drills (
        drill_id        text PRIMARY KEY,
        finished_at     timestamptz NOT NULL,
        ok              boolean NOT NULL,
        snapshot        text NOT NULL,
        restore_seconds double precision,
        bytes           bigint,
        reason          text,
        result          jsonb NOT NULL
    )""",
    "REVOKE ALL ON TABLE guard.drills FROM PUBLIC",
)
REVOKE_DRILLS_FROM = "REVOKE ALL ON TABLE guard.drills FROM {role}"
RECORD_LOCK_TIMEOUT = "SET LOCAL lock_timeout = '5s'"
INSERT_DRILL = """
INSERT INTO guard.drills (drill_id, finished_at, ok, snapshot, restore_seconds, bytes, reason, result)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (drill_id) DO NOTHING
"""
DRILLS_EXIST = "SELECT to_regclass('guard.drills') IS NOT NULL"
LAST_DRILL = "SELECT result FROM guard.drills ORDER BY finished_at DESC LIMIT 1"
# ... and against the restore target (a throw-away cluster or the operator's scratch database).
SERVER_MAJOR = "SELECT current_setting('server_version_num')::int / 10000"
ROLE_EXISTS = "SELECT 1 FROM pg_roles WHERE rolname = %s"
CREATE_ROLE = "CREATE ROLE {} NOLOGIN"
CREATE_DATABASE = "CREATE DATABASE {}"
CHECK_SETTINGS = f"SET statement_timeout = '{CHECK_TIMEOUT}'"


class DrillResult(Struct):
    """What a drill found: ``ok`` only when everything passed, else ``reason`` says why."""

    snapshot: str  # the snapshot file's name
    manifest: str  # the manifest's path
    started_at: str
    drill_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    ok: bool = False
    reason: str | None = None
    database: str | None = None  # the snapshot's source (host:port/db)
    mode: str | None = None
    bytes: int | None = None  # the snapshot file as stored
    dump_bytes: int | None = None  # the plain dump pg_restore read
    target: str | None = None  # "embedded PostgreSQL 16" or host:port/db
    restore_seconds: float | None = None
    tables: int | None = None  # tables restored
    rows: int | None = None  # rows restored in the manifest's tables (full snapshots)
    mismatched: dict[str, dict[str, int | None]] = field(default_factory=dict)
    checks_run: int = 0
    checks_failed: list[str] = field(default_factory=list)
    finished_at: str | None = None
    recorded: list[str] = field(default_factory=list)  # where the outcome was written

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



# ---------------------------------------------------------------------- finding the snapshot


def locate_manifest(snapshot_path: Path | None, snapshot_dir: Path | None) -> Path:
    """The manifest to drill: of ``snapshot_path`` (a snapshot file, its manifest, or a
    directory: the newest there), else the newest in ``snapshot_dir``. UsageError if none."""
    if snapshot_path is not None and not snapshot_path.is_dir():
        if snapshot_path.name.endswith(MANIFEST_SUFFIX):
            return snapshot_path
        return snapshot_path.with_name(snapshot_path.name + MANIFEST_SUFFIX)
    directory = snapshot_path or snapshot_dir
    if directory is None:
        raise UsageError("no snapshot given and no snapshot directory", hint="guard drill SNAPSHOT or --dir DIR")
    found = manifests_in(directory) if directory.is_dir() else []
    if not found:
        raise UsageError(f"no snapshot manifest (*{MANIFEST_SUFFIX}) in {directory}",
                         hint="take one with: guard snapshot --full --out DIR")
    return found[-1]


# ---------------------------------------------------------------------- the drill


def run_drill(
    snapshot_path: Path | None,
    *,
    snapshot_dir: Path | None = None,
    key: str | None,
    target_url: str | None,
    checks: Sequence[tuple[str, str]] = (),
    progress: Progress,
    production_url: str | None = None,
) -> DrillResult:
    """Verify, decrypt, restore, compare and check one snapshot; record and return the result.

    ``snapshot_path`` None drills the newest snapshot in ``snapshot_dir``. ``production_url``
    (the configured database_url) is never accepted as ``target_url`` and is where the
    outcome is recorded. ``checks`` are (SQL, expected first value as text) pairs.
    """
    manifest_path = locate_manifest(snapshot_path, snapshot_dir)
    if target_url:
        _check_target(target_url, production_url)
    result = DrillResult(snapshot=manifest_path.name.removesuffix(MANIFEST_SUFFIX), manifest=str(manifest_path),
                         started_at=_now())
    try:
        manifest = Manifest.load(manifest_path)
        result.database, result.mode, result.snapshot = manifest.database, manifest.mode, manifest.file
        result.bytes = _verify(manifest, progress)
        if manifest.encrypted and not key:
            raise UsageError(f"{manifest.file} is encrypted and no key is set",
                             hint="set GUARD_SNAPSHOT_KEY (or snapshot.key) to the key it was taken with")
        with tempfile.TemporaryDirectory(prefix="guard-drill-") as tmp:
            dump = manifest.path
            if manifest.encrypted:
                assert key is not None
                dump = Path(tmp) / manifest.file.removesuffix(".enc")
                progress(f"decrypting {manifest.file}")
                decrypt_file(manifest.path, dump, key)
            result.dump_bytes = dump.stat().st_size
            with _restore_target(manifest, target_url, progress) as (url, label):
                result.target = label
                result.restore_seconds = _restore(dump, url, manifest, progress)
                _compare(url, manifest, result)
                _run_checks(url, checks, result)
        result.ok = not result.reason
    except SnapshotError as exc:
        result.reason = str(exc)
    result.finished_at = _now()
    result.recorded = record_drill(result, snapshot_dir=snapshot_dir or manifest_path.parent,
                                   production_url=production_url, progress=progress)
    return result


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def _verify(manifest: Manifest, progress: Progress) -> int:
    path = manifest.path
    if not path.is_file():
        raise SnapshotError(f"{manifest.file} is missing (expected beside {manifest.manifest_path.name})")
    size = path.stat().st_size
    if size != manifest.bytes:
        raise SnapshotError(f"{manifest.file} is {size} bytes, its manifest says {manifest.bytes} "
                            "(truncated or altered; SHA-256 cannot match)")
    progress(f"verifying the SHA-256 of {manifest.file} ({size} bytes)")
    if sha256(path) != manifest.sha256:
        raise SnapshotError(f"{manifest.file} does not match its manifest's SHA-256 (corrupted or altered)")
    return size


def _check_target(target_url: str, production_url: str | None) -> None:
    if production_url and same_database(target_url, production_url):
        raise UsageError(
            f"--target {describe_url(target_url)} is the production database (database_url)",
            hint="a drill restores into a throw-away or scratch database, never production",
        )
    conn = connect(target_url, application_name="guard drill (target)", source="--target")
    try:
        tables = conn.execute(USER_TABLES).fetchall()
    finally:
        conn.close()
    if tables:
        raise UsageError(
            f"--target {describe_url(target_url)} is not empty ({len(tables)} tables, e.g. {tables[0][2]})",
            hint="a drill restores into an empty scratch database: createdb a new one",
        )


@contextmanager
def _restore_target(manifest: Manifest, target_url: str | None, progress: Progress) -> Iterator[tuple[str, str]]:
    """(URL, label) of the empty database to restore into."""
    if target_url:
        yield target_url, describe_url(target_url)
        return
    from psycopg import sql

    from guard.embedded import Cluster, find_bin_dir

    bin_dir = find_bin_dir(min_major=manifest.server_major)
    if bin_dir is None:
        bin_dir = find_bin_dir()
        if bin_dir is not None:
            progress(f"no PostgreSQL {manifest.server_major} or newer server here; the drill uses "
                     f"{bin_dir}, which may reject what a newer server dumped")
    progress("starting a throw-away PostgreSQL for the drill")
    with Cluster(bin_dir=bin_dir, password=None) as cluster:
        admin = connect(cluster.url("postgres"), application_name="guard drill")
        try:
            # Policies and grants name roles; a restore fails on a role that does not exist.
            for role in manifest.roles:
                if admin.execute(ROLE_EXISTS, (role,)).fetchone() is None:
                    admin.execute(sql.SQL(CREATE_ROLE).format(sql.Identifier(role)))
            admin.execute(sql.SQL(CREATE_DATABASE).format(sql.Identifier(DRILL_DATABASE)))
        finally:
            admin.close()
        yield cluster.url(DRILL_DATABASE), f"embedded PostgreSQL {cluster.major}"


def _restore(dump: Path, url: str, manifest: Manifest, progress: Progress) -> float:
    """pg_restore the dump into ``url``; seconds it took. SnapshotError when it fails."""
    conn = connect(url, application_name="guard drill")
    try:
        row = conn.execute(SERVER_MAJOR).fetchone()
    finally:
        conn.close()
    major = int(row[0]) if row else 0
    # pg_restore reads only archive formats its own version or older wrote.
    pg_restore = find_client("pg_restore", max(major, manifest.pg_dump_major))
    dsn, env = client_dsn(url)
    argv = [str(pg_restore), "--no-owner", "--no-privileges", "--exit-on-error", "--dbname", dsn, str(dump)]
    progress(f"restoring {dump.name} with {pg_restore}")
    meter = ProgressMeter()
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errors)
        try:
            while proc.poll() is None:
                time.sleep(0.05)
                if meter.due():
                    progress(f"pg_restore: running, {meter.elapsed():.0f}s")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        seconds = round(meter.elapsed(), 3)
        if proc.returncode != 0:
            errors.seek(0)
            lines = [ln for ln in errors.read().decode("utf-8", "replace").splitlines() if ln.strip()]
            raise SnapshotError(f"pg_restore failed after {seconds:.1f}s: "
                                + (lines[-1] if lines else f"exit {proc.returncode}"))
    return seconds


def _count(conn: psycopg.Connection[Any]) -> dict[str, int]:
    from psycopg import sql

    counts = {}
    for schema, table, quoted in conn.execute(USER_TABLES).fetchall():
        row = conn.execute(sql.SQL(COUNT_ROWS).format(sql.Identifier(schema, table))).fetchone()
        counts[quoted] = int(row[0]) if row else 0
    return counts


def _compare(url: str, manifest: Manifest, result: DrillResult) -> None:
    conn = connect(url, application_name="guard drill")
    try:
        restored = _count(conn)
    finally:
        conn.close()
    result.tables = len(restored)
    if manifest.mode == "full":
        result.rows = sum(restored.get(t, 0) for t in manifest.tables)
    for table, expected in manifest.tables.items():
        got = restored.get(table)
        if got is None or (expected is not None and got != expected):
            result.mismatched[table] = {"manifest": expected, "restored": got}
    if result.mismatched:
        first = sorted(result.mismatched)[0]
        detail = result.mismatched[first]
        shown = "missing" if detail["restored"] is None else f"{detail['restored']} rows, manifest {detail['manifest']}"
        raise SnapshotError(f"restored tables differ from the manifest in {len(result.mismatched)} table(s), "
                            f"e.g. {first}: {shown}")


def _run_checks(url: str, checks: Sequence[tuple[str, str]], result: DrillResult) -> None:
    if not checks:
        return
    conn = connect(url, application_name="guard drill (checks)")
    try:
        conn.execute(CHECK_SETTINGS)
        for query, expected in checks:
            result.checks_run += 1
            try:
                # The operator's own SQL, on the throw-away copy only; bytes: no %-placeholders.
                row = conn.execute(query.encode("utf-8")).fetchone()
            except Exception as exc:  # noqa: BLE001 - a check that errors is a failed check
                result.checks_failed.append(f"{query!r} failed: {str(exc).splitlines()[0] if str(exc) else exc}")
                continue
            got = "" if row is None or row[0] is None else str(row[0])
            if got != expected:
                result.checks_failed.append(f"{query!r} gave {got!r}, expected {expected!r}")
    finally:
        conn.close()
    if result.checks_failed:
        raise SnapshotError(f"{len(result.checks_failed)} of {result.checks_run} drill check(s) failed: "
                            f"{result.checks_failed[0]}")


# ---------------------------------------------------------------------- the record


def record_drill(
    result: DrillResult, *, snapshot_dir: Path, production_url: str | None, progress: Progress
) -> list[str]:
    """Append the outcome to ``<snapshot_dir>/drills.json`` (the CI artifact, and the record
    that needs no database) and, when ``production_url`` is reachable, to guard.drills there.
    Where it was written; a record that cannot be written is reported, not raised."""
    recorded = []
    log = snapshot_dir / DRILL_LOG
    try:
        snapshot_dir.mkdir(parents=True, exist_ok=True)
        history = _read_or_set_aside(log, progress)
        history.append(result.to_dict())
        _atomic_write(log, json.dumps(history[-DRILL_LOG_KEEP:], indent=2) + "\n")
        recorded.append(str(log))
    except OSError as exc:
        progress(f"cannot record the drill in {log}: {exc.strerror}")
    if production_url and not of_database(result.to_dict(), production_url):
        # Its backup status would show another database's drill as this one's.
        progress(f"drill not recorded in guard.drills of {describe_url(production_url)}: the snapshot is of "
                 f"{result.database}, another database")
    elif production_url:
        try:
            _record_in_database(production_url, result)
            recorded.append(f"guard.drills in {describe_url(production_url)}")
        except GuardError as exc:
            progress(f"drill not recorded in the database: {exc}")
    return recorded


def _record_in_database(url: str, result: DrillResult) -> None:
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from guard.guard_schema import installing
    from guard.journal import SUPABASE_API_ROLES

    conn = connect(url, application_name="guard drill (record)", connect_timeout=5)
    try:
        with installing(conn):  # the first drill may create guard's schema beside a `guard init`
            conn.execute(RECORD_LOCK_TIMEOUT)
            exists = conn.execute(DRILLS_EXIST).fetchone()
            # Only the first drill creates the table: later ones may run as a role that can
            # insert but does not own it.
            if not exists or not exists[0]:
                for statement in CREATE_DRILLS:
                    conn.execute(statement)
                for (role,) in conn.execute(SUPABASE_API_ROLES).fetchall():
                    conn.execute(sql.SQL(REVOKE_DRILLS_FROM).format(role=sql.Identifier(role)))
            conn.execute(INSERT_DRILL, (result.drill_id, result.finished_at, result.ok, result.snapshot,
                                        result.restore_seconds, result.bytes, result.reason, Jsonb(result.to_dict())))
    except psycopg.Error as exc:
        raise GuardError(f"cannot write guard.drills: {exc.diag.message_primary or exc.__class__.__name__}") from None
    finally:
        conn.close()


def _read_or_set_aside(log: Path, progress: Callable[[str], None]) -> list[dict[str, Any]]:
    """The drills in ``log``, as :func:`_read_log` gives them; a log that is not JSON (cut short
    by a full disk, edited by hand) is first renamed ``drills.json.unreadable-<UTC time>``,
    saying so: rewriting it lost every drill before. OSError propagates."""
    try:
        history = json.loads(log.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (ValueError, RecursionError):
        aside = log.with_name(f"{log.name}.unreadable-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}")
        log.rename(aside)
        progress(f"{log.name} is not JSON: kept as {aside.name}, a new log started")
        return []
    return _drills(history)


def _read_log(log: Path) -> list[dict[str, Any]]:
    try:
        history = json.loads(log.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return []
    except (OSError, ValueError, RecursionError):
        return []  # an unreadable log is replaced rather than blocking the record
    return _drills(history)


def _drills(history: Any) -> list[dict[str, Any]]:
    """The drills (objects) of a drill log's JSON value; [] when it is not a list."""
    return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []


def last_drill(conn: psycopg.Connection[Any] | None, snapshot_dir: Path | None) -> dict[str, Any] | None:
    """The newest recorded drill (its JSON form), or None when none is recorded: the newer of
    guard.drills in ``conn``'s database and the drills.json in ``snapshot_dir``. Never raises
    for a missing table, a missing file or a role that may not read them. With ``conn``, only
    drills of that database's snapshots (:func:`of_database`).
    """
    found: list[dict[str, Any]] = []
    if conn is not None:
        found.extend(_last_in_database(conn))
    if snapshot_dir is not None:
        found.extend(_read_log(snapshot_dir / DRILL_LOG))
    if conn is not None:  # a drill of another database's snapshot says nothing of this one's backups
        found = [d for d in found if of_database(d, conn.info.dsn)]
    if not found:
        return None
    return max(found, key=lambda d: str(d.get("finished_at") or ""))


def of_database(drill: dict[str, Any], url: str) -> bool:
    """Whether ``drill`` (its JSON form) drilled a snapshot of the database ``url`` names (host,
    port and name, as guard.db.same_database compares them); True when the drill does not say
    (a drill that failed before reading its manifest)."""
    where = drill.get("database")
    return not isinstance(where, str) or not where or same_database(f"postgresql://{where}", url)


def _last_in_database(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    import psycopg

    try:
        # A savepoint inside the caller's transaction, if any: a refused read must not end it.
        with conn.transaction():
            exists = conn.execute(DRILLS_EXIST).fetchone()
            if not exists or not exists[0]:
                return []
            row = conn.execute(LAST_DRILL).fetchone()
    except psycopg.Error:
        return []
    return [row[0]] if row and isinstance(row[0], dict) else []
