"""Throw-away PostgreSQL clusters for `guard demo` and the test suite.

A `Cluster` is initdb + pg_ctl in a private temporary directory, listening on 127.0.0.1 only,
removed again on `stop()` (or, failing that, when the object is collected or the interpreter
exits). guard.server_binaries finds the server programs and the OS user that runs them.

The server's environment holds no secrets: it is built from scratch (PATH, the locale, the OS
user's names), never inherited, so SQL that reaches the server's environment (a shadow dry run
of an untrusted pull request) finds no DATABASE_URL, token or GUARD_* variable there.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from msgspec import Struct, field

from guard.server_binaries import (
    EmbeddedError,
    _candidate_bin_dirs,  # noqa: F401 - guard.snapshot finds pg_dump with the same search
    _has_programs,
    _may_traverse,
    _open_up_pgserver,
    _OsUser,
    _pgserver_bin_dir,
    _server_os_user,
    find_bin_dir,
    server_major,
)

__all__ = ["Cluster", "EmbeddedError", "find_bin_dir", "server_major"]

_log = logging.getLogger(__name__)

SUPERUSER = "postgres"
# A unix socket path must fit sockaddr_un.sun_path (108 bytes with the trailing NUL on Linux).
_MAX_SOCKET_PATH = 107
_START_TIMEOUT = 60
_STOP_TIMEOUT = 30
_LOG_TAIL_LINES = 6
_LOG_PREFIX = re.compile(r"^\d{4}-\d\d-\d\d [\d:.]+ \S+ \[\d+\] ")

_NOT_FOUND = (
    "no PostgreSQL server binaries found: install postgresql (apt) or "
    "`pip install 'migration-guard[embedded]'` (pgserver), or set PG_BIN"
)



# --------------------------------------------------------------------------- the cluster


class _State(Struct):
    """What teardown needs; kept apart from Cluster so the finalizer holds no reference to it."""

    bin_dir: Path
    os_user: _OsUser | None
    root: Path | None = None
    running: bool = False
    secrets: tuple[str, ...] = field(default_factory=tuple)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        assert self.root is not None
        return self.root / "server.log"


class Cluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1. Context manager (start on enter, stop+remove on exit).

    ``base_dir`` is where the cluster's private temporary directory is created (default: the
    system temp dir); only that temporary directory is ever removed. ``port`` defaults to a
    free one. With ``password`` the superuser needs it over TCP (scram-sha-256); without, TCP
    is ``trust``. ``fsync=False`` (the default) trades durability for speed: the data is
    thrown away anyway. ``superuser`` names the bootstrap superuser (initdb -U), e.g.
    ``supabase_admin`` for a shadow where, as on Supabase, ``postgres`` is not a superuser.
    """

    superuser: str
    password: str | None
    port: int
    major: int
    bin_dir: Path

    def __init__(
        self,
        *,
        bin_dir: Path | None = None,
        base_dir: Path | None = None,
        password: str | None = None,
        port: int | None = None,
        fsync: bool = False,
        settings: Mapping[str, str] | None = None,
        superuser: str = SUPERUSER,
    ) -> None:
        if bin_dir is None:
            found = find_bin_dir()
            if found is None:
                raise EmbeddedError(_NOT_FOUND)
            bin_dir = found
        bin_dir = Path(bin_dir)
        if not _has_programs(bin_dir):
            raise EmbeddedError(f"{bin_dir} does not hold initdb, pg_ctl and postgres",
                                hint="point PG_BIN at a PostgreSQL server bin directory")
        if password is not None and ("\n" in password or "\r" in password):
            # initdb reads the password file's first line only.
            raise EmbeddedError("the throw-away PostgreSQL's password must be one line")
        self.bin_dir = bin_dir
        self.major = server_major(bin_dir)
        self.superuser = superuser
        self.password = password
        self._fixed_port = port is not None
        self.port = port if port is not None else _free_port()
        self._base_dir = Path(base_dir) if base_dir is not None else None
        self._fsync = fsync
        self._extra_settings = dict(settings or {})  # e.g. archive_mode for a backup tool's tests
        self._state: _State | None = None
        self._finalizer: weakref.finalize | None = None

    # ---------------------------------------------------------------- public

    @property
    def data_dir(self) -> Path:
        """The cluster's PGDATA (removed by `stop()`); EmbeddedError before `start()`."""
        if self._state is None or self._state.root is None:
            raise EmbeddedError("the throw-away PostgreSQL has not been started")
        return self._state.data_dir

    @property
    def running(self) -> bool:
        """Whether `start()` succeeded and `stop()` has not been called since."""
        return self._state is not None and self._state.running

    def url(self, dbname: str = "postgres") -> str:
        """postgresql://superuser[:password]@127.0.0.1:port/dbname (TCP, password URL-quoted)."""
        auth = quote(self.superuser, safe="")
        if self.password is not None:
            auth += ":" + quote(self.password, safe="")
        return f"postgresql://{auth}@127.0.0.1:{self.port}/{quote(dbname, safe='')}"

    def start(self) -> None:
        """initdb and start the server; returns once it accepts connections. No-op if running.

        On failure everything created so far is removed and EmbeddedError says why, with the
        tail of the server log.
        """
        if self.running:
            return
        started = time.monotonic()
        os_user = _server_os_user()
        if os_user is not None and _pgserver_bin_dir() == self.bin_dir.resolve():
            try:
                _open_up_pgserver(self.bin_dir.resolve(), os_user)
            except OSError as exc:
                raise EmbeddedError(f"cannot let {os_user.name!r} run pgserver's "
                                    f"binaries: {exc}") from None
        state = _State(bin_dir=self.bin_dir, os_user=os_user,
                       secrets=_secret_forms(self.password))
        self._state = state
        self._finalizer = weakref.finalize(self, _teardown, state)
        try:
            self._make_dirs(state)
            self._initdb(state)
            self._configure(state)
            self._start_server(state)
        except OSError as exc:  # a base dir we may not write, a full disk...
            self.stop()
            raise EmbeddedError(f"cannot set up the throw-away PostgreSQL: {exc}") from None
        except BaseException:
            self.stop()
            raise
        _log.info("PostgreSQL %d started on 127.0.0.1:%d in %.1fs (%s)",
                  self.major, self.port, time.monotonic() - started, state.root)

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL) and remove its directory.

        Safe to call twice, or without `start()`.
        """
        if self._finalizer is not None:
            self._finalizer()  # runs _teardown at most once
            self._finalizer = None

    def run_as_server_user(self, argv: list[str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        """Run a program as the OS user that owns the cluster (a backup tool reading PGDATA)."""
        if self._state is None:
            raise EmbeddedError("the throw-away PostgreSQL has not been started")
        return _run(self._state, argv, timeout=timeout)

    def pg_ctl(self, *args: str, check: bool = True,
               timeout: float = _START_TIMEOUT + 30) -> subprocess.CompletedProcess[str]:
        """Run `pg_ctl -D <data_dir> ARGS` as the OS user that owns the cluster.

        `start`/`restart` log to the cluster's server log unless ARGS say otherwise. With
        ``check``, a non-zero exit raises EmbeddedError (with the server log's tail).
        """
        state = self._state
        if state is None or state.root is None:
            raise EmbeddedError("the throw-away PostgreSQL has not been started")
        argv = list(args)
        logs = any(arg == "-l" or arg.startswith("--log") for arg in argv)
        if {"start", "restart"} & set(argv) and not logs:
            argv = ["-l", str(state.log_file), *argv]
        result = _run_pg_ctl(state, argv, timeout=timeout)
        if check and result.returncode != 0:
            raise EmbeddedError(
                f"pg_ctl {' '.join(args)} failed (exit {result.returncode}): "
                + _one_line(state, (result.stderr or result.stdout) + "\n" + _log_tail(state))
            )
        return result

    def __enter__(self) -> Cluster:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        status = "running" if self.running else "stopped"
        return f"<Cluster PostgreSQL {self.major} 127.0.0.1:{self.port} {status}>"

    # ---------------------------------------------------------------- steps of start()

    def _make_dirs(self, state: _State) -> None:
        if self._base_dir is not None:
            self._base_dir.mkdir(parents=True, exist_ok=True)
        state.root = Path(tempfile.mkdtemp(prefix="guard-pg-", dir=self._base_dir)).resolve()
        user = state.os_user
        if user is not None:
            # The server user owns the whole private dir: data, socket, log, pwfile.
            os.chown(state.root, user.uid, user.gid)
            if not _may_traverse(state.root, user):
                raise EmbeddedError(
                    f"the OS user {user.name!r} cannot reach {state.root}",
                    hint="pass a base directory every user may traverse (e.g. /tmp)",
                )
            if not _may_traverse(self.bin_dir.resolve(), user):
                raise EmbeddedError(
                    f"the OS user {user.name!r} cannot reach {self.bin_dir}",
                    hint="set PG_BIN to binaries outside a private home directory",
                )
        (state.root / "run").mkdir(mode=0o700)
        if user is not None:
            os.chown(state.root / "run", user.uid, user.gid)

    def _initdb(self, state: _State) -> None:
        argv = [
            str(self.bin_dir / "initdb"), "-D", str(state.data_dir), "-U", self.superuser,
            "--encoding=UTF8", "--locale=C",
        ]
        if not self._fsync:
            argv.append("--no-sync")
        pwfile: Path | None = None
        if self.password is None:
            argv.append("--auth=trust")
        else:
            assert state.root is not None
            pwfile = state.root / "pwfile"
            # Created 0600 from the start: the password never sits in a readable file.
            fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as fh:
                fh.write(self.password + "\n")
            if state.os_user is not None:
                os.chown(pwfile, state.os_user.uid, state.os_user.gid)
            argv += ["--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}"]
        try:
            result = _run(state, argv, timeout=_START_TIMEOUT + 60)
        finally:
            if pwfile is not None:
                pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise EmbeddedError(
                f"initdb failed for the throw-away PostgreSQL {self.major} (exit "
                f"{result.returncode}): " + _one_line(state, result.stderr or result.stdout)
            )

    def _configure(self, state: _State) -> None:
        assert state.root is not None
        socket_dir = state.root / "run"
        if len(f"{socket_dir}/.s.PGSQL.65535") > _MAX_SOCKET_PATH:  # any port we may retry
            socket_dir_setting = ""  # too long for a unix socket: TCP only
        else:
            socket_dir_setting = str(socket_dir)
        settings = {
            "listen_addresses": "127.0.0.1",
            "port": str(self.port),
            "unix_socket_directories": socket_dir_setting,
            "max_connections": "100",
            # pg_create_restore_point() and friends need at least replica.
            "wal_level": "replica",
        }
        if not self._fsync:
            # Throw-away data: durability buys nothing, and skipping fsync makes
            # CREATE DATABASE and checkpoints several times faster.
            settings.update(fsync="off", synchronous_commit="off", full_page_writes="off")
        settings.update(self._extra_settings)
        lines = ["", "# migration-guard throw-away cluster"]
        lines += [_conf_line(key, value) for key, value in settings.items()]
        # Appended: later lines win, and the file keeps its owner and mode.
        with open(state.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
            fh.write("\n".join(lines) + "\n")

    def _start_server(self, state: _State) -> None:
        attempts = 1 if self._fixed_port else 3
        for attempt in range(1, attempts + 1):
            result = _run_pg_ctl(
                state, ["-l", str(state.log_file), "-w", "-t", str(_START_TIMEOUT), "start"],
                timeout=_START_TIMEOUT + 30,
            )
            if result.returncode == 0:
                state.running = True
                return
            tail = _log_tail(state)
            # Someone took the free port between our probe and the server's bind: try another.
            if attempt < attempts and "could not create any TCP/IP sockets" in tail:
                self.port = _free_port()
                with open(state.data_dir / "postgresql.conf", "a", encoding="utf-8") as fh:
                    fh.write(_conf_line("port", str(self.port)) + "\n")
                continue
            raise EmbeddedError(
                f"the throw-away PostgreSQL {self.major} did not start on 127.0.0.1:{self.port} "
                f"(pg_ctl exit {result.returncode}): "
                + _one_line(state, tail or result.stderr or result.stdout)
            )


# --------------------------------------------------------------------------- helpers


def _conf_line(key: str, value: str) -> str:
    escaped = value.replace("'", "''")  # a base dir may contain a quote
    return f"{key} = '{escaped}'"


def _free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _secret_forms(password: str | None) -> tuple[str, ...]:
    if not password:
        return ()
    return tuple({password, quote(password, safe="")})


# The only variables the server programs inherit: nothing else of ours (DATABASE_URL, tokens,
# GUARD_*, PG* that would steer the cluster) may reach a server that runs untrusted SQL.
_INHERITED = ("PATH", "TZ", "LD_LIBRARY_PATH", "TMPDIR")


def _child_env(state: _State) -> dict[str, str]:
    """A fresh environment for the server programs: PATH, the locale, the OS user's names."""
    env = {k: os.environ[k] for k in _INHERITED if k in os.environ}
    env.setdefault("PATH", "/usr/bin:/bin")
    env["LC_ALL"] = "C"  # server messages in English, whatever the caller's locale
    if state.os_user is not None:
        env.update(USER=state.os_user.name, LOGNAME=state.os_user.name,
                   HOME=str(state.root or "/"))
    return env


def _run(state: _State, argv: list[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
    """Run a server program as the cluster's OS user, output captured in files.

    Files, not pipes: a postmaster started by pg_ctl could inherit a pipe and keep
    subprocess waiting for EOF until the server exits.
    """
    user = state.os_user
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        try:
            proc = subprocess.run(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                text=True,
                env=_child_env(state),
                cwd=str(state.root) if state.root else None,
                timeout=timeout,
                check=False,
                # Ctrl-C in the terminal must reach us, not the server: we stop it properly.
                start_new_session=True,
                # As root: drop to the server user, like `runuser -u postgres --` (no PAM).
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=list(user.groups) if user else None,
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedError(
                f"{Path(argv[0]).name} {argv[-1]} did not finish within {timeout:.0f}s: "
                + _one_line(state, _log_tail(state))
            ) from None
        except OSError as exc:
            raise EmbeddedError(f"cannot run {argv[0]}: {exc.strerror}") from None
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())


def _run_pg_ctl(state: _State, args: list[str], *,
                timeout: float) -> subprocess.CompletedProcess[str]:
    return _run(state, [str(state.bin_dir / "pg_ctl"), "-D", str(state.data_dir), *args],
                timeout=timeout)


def _log_tail(state: _State, lines: int = _LOG_TAIL_LINES) -> str:
    if state.root is None:
        return ""
    try:
        text = state.log_file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join([line for line in text.splitlines() if line.strip()][-lines:])


def _one_line(state: _State, text: str) -> str:
    """``text`` as one line, secrets masked: exception messages are printed as one line."""
    for secret in state.secrets:
        text = text.replace(secret, "***")
    # Without the "2024-01-01 00:00:00.000 UTC [123] " prefix the reason fits on a screen.
    parts = [_LOG_PREFIX.sub("", line).strip() for line in text.splitlines() if line.strip()]
    return " | ".join(parts[-_LOG_TAIL_LINES:]) or "no output"


def _postmaster_pid(state: _State) -> int | None:
    try:
        first = (state.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
        return int(first)
    except (OSError, ValueError):
        return None


def _teardown(state: _State) -> None:
    """Stop the server and delete its directory; never raises (it also runs at exit)."""
    if state.root is None:
        return
    try:
        if state.data_dir.joinpath("postmaster.pid").exists():
            for mode, wait in (("fast", _STOP_TIMEOUT), ("immediate", 10)):
                try:
                    _run_pg_ctl(state, ["-w", "-t", str(wait), "-m", mode, "stop"],
                                timeout=wait + 15)
                except EmbeddedError as exc:
                    _log.warning("pg_ctl stop -m %s: %s", mode, exc)
                if not state.data_dir.joinpath("postmaster.pid").exists():
                    break
            else:
                pid = _postmaster_pid(state)
                if pid is not None:
                    _log.warning("PostgreSQL (pid %d) ignored pg_ctl stop; killing it", pid)
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        state.running = False
    finally:
        shutil.rmtree(state.root, ignore_errors=True)
        if state.root.exists():
            _log.warning("could not remove %s", state.root)
        else:
            _log.debug("removed %s", state.root)
