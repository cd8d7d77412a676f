"""Reading a migration file safely: only a regular file inside the project, of bounded size."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from guard.errors import MigrationFileError


def read_regular(path: Path, display: str, roots: tuple[Path, ...], max_bytes: int) -> bytes:
    """The bytes of ``path``: a regular file (or a link to one) inside one of ``roots``, at most
    ``max_bytes`` long; anything else is a MigrationFileError naming ``display``. Never
    blocks on a FIFO or a device."""
    import stat

    real = _real_file(os.fspath(path))
    if all(under(real, _real_directory(os.fspath(root))) is None for root in roots):
        raise MigrationFileError(
            f"is a link to {real}, outside the project", file=display,
            hint="migration files must live in the project; copy the file in instead of linking it",
        )
    try:
        # O_NONBLOCK: opening a FIFO must not wait for a writer; fstat then refuses it.
        fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise MigrationFileError(f"cannot read the file: {exc.strerror or exc}", file=display) from None
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise MigrationFileError(
                f"is not a regular file ({_file_kind(info.st_mode)})", file=display,
                hint="a migration must be a plain .sql file",
            )
        if info.st_size > max_bytes:
            raise MigrationFileError(
                f"is {info.st_size} bytes, over the limit of {max_bytes} bytes for a migration file",
                file=display, hint="split it into several files, or load bulk data outside migrations",
            )
        try:
            return handle.read(max_bytes + 1)
        except OSError as exc:
            raise MigrationFileError(f"cannot read the file: {exc.strerror or exc}", file=display) from None


def _real_file(path: str) -> str:
    """os.path.realpath(path), with one lstat when ``path`` itself is not a link (the
    common case): its folder's real path is shared by the whole release."""
    import stat

    name = os.path.basename(path)
    try:
        if name not in ("", ".", "..") and not stat.S_ISLNK(os.lstat(path).st_mode):
            return os.path.join(_real_directory(os.path.dirname(path) or "."), name)
    except OSError:
        pass  # realpath says what it can; the open below reports the error
    return os.path.realpath(path)


@functools.lru_cache(maxsize=64)
def _real_directory(directory: str) -> str:
    """realpath of a root, once per process: a release of a thousand files shares one or
    two, and each realpath is an lstat per path component."""
    return os.path.realpath(directory)


def _file_kind(mode: int) -> str:
    import stat

    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory")):
        if test(mode):
            return name
    return "not a plain file"


def under(path: str, base: str) -> str | None:
    """``path`` relative to the directory ``base``, or None when it does not lie under it.

    Strings, no file-system access: display paths are computed for every file several
    times, and pathlib's relative_to made that a few percent of a big release."""
    prefix = base.rstrip(os.sep) + os.sep
    return path[len(prefix):] if path.startswith(prefix) and len(path) > len(prefix) else None
