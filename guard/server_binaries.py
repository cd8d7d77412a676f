"""Where the PostgreSQL server programs are, and which OS user runs them.

The binaries come from the system (`PG_BIN`, `pg_config`, Debian's /usr/lib/postgresql/*/bin)
or, as a fallback, from the `pgserver` wheel, which bundles them. PostgreSQL refuses to run as
root: as root the programs run as an unprivileged OS user, `postgres` when it exists (the
distribution packages create it), else a `pgserver` system user created on first use, which is
what pgserver itself does.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import subprocess
from functools import lru_cache
from pathlib import Path

from msgspec import Struct

from guard.errors import EXIT_USAGE, GuardError

_log = logging.getLogger(__name__)

_PROGRAMS = ("initdb", "pg_ctl", "postgres")
# As root, the server runs as the first of these that exists: the distribution's `postgres`,
# else the user pgserver creates for itself (created here too when missing, as pgserver does).
_OS_USERS = ("postgres", "pgserver")

class EmbeddedError(GuardError):
    """The throw-away PostgreSQL cannot be found, started or stopped. One line, no secrets."""

    exit_code = EXIT_USAGE



# --------------------------------------------------------------------------- binaries


def find_bin_dir(min_major: int | None = None) -> Path | None:
    """The first directory holding initdb, pg_ctl and postgres, or None.

    Looked up in order: $PG_BIN, `pg_config --bindir`, the highest /usr/lib/postgresql/*/bin,
    pgserver's bundled binaries. With ``min_major``, directories whose `postgres --version`
    is older are skipped.
    """
    for candidate in _candidate_bin_dirs():
        if not _has_programs(candidate):
            if str(candidate) == os.environ.get("PG_BIN"):
                _log.warning("PG_BIN=%s lacks initdb, pg_ctl or postgres; looking elsewhere",
                             candidate)
            continue
        if min_major is not None:
            try:
                if server_major(candidate) < min_major:
                    continue
            except EmbeddedError:
                continue
        return candidate
    return None


def server_major(bin_dir: Path) -> int:
    """The major version (15, 16, ...) of the `postgres` in ``bin_dir``; EmbeddedError if unknown."""
    return _server_major(Path(bin_dir).resolve())


@lru_cache(maxsize=16)
def _server_major(bin_dir: Path) -> int:
    program = bin_dir / "postgres"
    try:
        out = subprocess.run(
            [str(program), "--version"], capture_output=True, text=True, timeout=30,
            stdin=subprocess.DEVNULL, check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise EmbeddedError(f"cannot run {program} --version: {exc}") from None
    # "postgres (PostgreSQL) 15.18 (Debian ...)", "postgres (PostgreSQL) 16.2", "... 9.6.24"
    match = re.search(r"\(PostgreSQL\)\s+(\d+)", out)
    if not match:
        raise EmbeddedError(f"cannot tell the version of {program} from {out.strip()!r}")
    major = int(match.group(1))
    # 9.6 and older numbered majors with two parts; they are all older than 10, so 9 is what
    # a comparison needs (9.6 as 96 would pass for newer than 15).
    return major


def _candidate_bin_dirs() -> list[Path]:
    candidates: list[Path] = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30,
                stdin=subprocess.DEVNULL, check=True,
            ).stdout.strip()
            if out:
                candidates.append(Path(out))
        except (OSError, subprocess.SubprocessError):
            pass
    versioned = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        version = path.parent.name
        if version.isdigit():
            versioned.append((int(version), path))
        elif re.fullmatch(r"\d+\.\d+", version):  # 9.6
            versioned.append((int(float(version) * 10), path))
    candidates.extend(path for _, path in sorted(versioned, reverse=True))
    bundled = _pgserver_bin_dir()
    if bundled is not None:
        candidates.append(bundled)
    return candidates


def _pgserver_bin_dir() -> Path | None:
    """pgserver's bundled bin dir, located without importing pgserver (its import is heavy)."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("pgserver")
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        path = Path(location) / "pginstall" / "bin"
        if path.is_dir():
            return path.resolve()
    return None


def _has_programs(bin_dir: Path) -> bool:
    return all(os.access(bin_dir / name, os.X_OK) and (bin_dir / name).is_file()
               for name in _PROGRAMS)


# --------------------------------------------------------------------------- OS user


class _OsUser(Struct, frozen=True):
    """Who the server programs run as when we are root."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]


def _server_os_user() -> _OsUser | None:
    """None when we are not root (run the programs as ourselves); else the unprivileged user."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    import pwd

    def lookup(name: str) -> _OsUser | None:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            return None
        return _OsUser(name, entry.pw_uid, entry.pw_gid,
                       tuple(os.getgrouplist(name, entry.pw_gid)))

    for name in _OS_USERS:
        user = lookup(name)
        if user is not None:
            return user
    _create_os_user(_OS_USERS[-1])
    user = lookup(_OS_USERS[-1])
    if user is None:
        raise EmbeddedError(f"useradd {_OS_USERS[-1]} succeeded but the user does not exist")
    return user


def _create_os_user(name: str) -> None:
    useradd = shutil.which("useradd")
    if useradd is None:
        raise EmbeddedError(
            "PostgreSQL cannot run as root and there is no `postgres` OS user",
            hint=f"create one (useradd/adduser {name}) or run guard as an unprivileged user",
        )
    _log.warning("creating system user %r to run the throw-away PostgreSQL (not as root)", name)
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False,
    )
    if result.returncode not in (0, 9):  # 9: the user appeared meanwhile
        raise EmbeddedError(f"useradd {name} failed: {result.stderr.strip()}")


def _may_traverse(path: Path, user: _OsUser) -> bool:
    """Whether ``user`` can reach ``path`` (x permission on it and every ancestor)."""
    for directory in (path, *path.parents):
        try:
            st = directory.stat()
        except OSError:
            return False
        if st.st_uid == user.uid:
            bit = stat.S_IXUSR
        elif st.st_gid in user.groups or st.st_gid == user.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return False
    return True


def _open_up_pgserver(bin_dir: Path, user: _OsUser) -> None:
    """Let ``user`` run pgserver's bundle when root installed it somewhere private (/root).

    The same as pgserver's own ensure_prefix_permissions/ensure_folder_permissions, but
    narrower: only the x (traverse) bit on ancestors, and read+traverse inside the bundle.
    """
    install = bin_dir.parent  # .../pgserver/pginstall
    package = install.parent  # .../pgserver
    trees = [install, package.parent / "pgserver.libs"]  # auditwheel puts libpq there
    if all(_may_traverse(tree, user) for tree in trees if tree.exists()):
        return
    _log.warning("granting other users access to %s so the unprivileged %r can run it",
                 install, user.name)
    for ancestor in package.parents:
        ancestor.chmod(ancestor.stat().st_mode | stat.S_IXOTH)
    package.chmod(package.stat().st_mode | stat.S_IXOTH)
    for tree in trees:
        if not tree.exists():
            continue
        for root, dirs, files in os.walk(tree):
            for name in dirs:
                path = Path(root, name)
                path.chmod(path.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
            for name in files:
                path = Path(root, name)
                extra = stat.S_IROTH | (stat.S_IXOTH if path.stat().st_mode & stat.S_IXUSR else 0)
                path.chmod(path.stat().st_mode | extra)
        tree.chmod(tree.stat().st_mode | stat.S_IROTH | stat.S_IXOTH)
