"""A ``run:`` verify check: a command as a list of arguments, no shell (issue #19).

It runs from the configuration file's folder with ``DATABASE_URL`` set, as the ``command``
backup provider does, in a session (and process group) of its own: when it outlives its
``timeout`` the whole group is killed, not only the direct child, so a grandchild left
sleeping cannot hold guard (nor the CI job) up; processes it left behind are killed when it
ends too. Whether the command exists and may be executed is checked before anything is
applied (:func:`check_command`).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from guard.errors import ConfigError

OUTPUT_LINES = 5  # first lines of a failed check's output kept for the report
DRAIN_SECONDS = 2.0  # after the kill, how long to wait for the output pipes to close


def resolve(argv0: str, base_dir: Path, environ: Mapping[str, str]) -> str | None:
    """The executable ``argv0`` names, as POSIX ``execvpe`` would find it from ``base_dir``
    with ``environ``'s PATH (a name with a ``/`` is a path, relative to ``base_dir``), or
    None when there is none or it may not be executed."""
    import shutil

    if "/" in argv0:
        path = Path(argv0) if os.path.isabs(argv0) else base_dir / argv0
        return str(path) if path.is_file() and os.access(path, os.X_OK) else None
    search = [d if os.path.isabs(d) else str(base_dir / d)
              for d in environ.get("PATH", os.defpath).split(os.pathsep) if d]
    return shutil.which(argv0, path=os.pathsep.join(search))


def check_command(name: str, argv: Sequence[str], base_dir: Path, environ: Mapping[str, str]) -> None:
    """ConfigError (exit 2) naming the check when its command is missing or not executable."""
    if not argv or not argv[0]:
        raise ConfigError("run needs a command", key=f"verify.{name}.run")
    if resolve(argv[0], base_dir, environ) is None:
        raise ConfigError(f"command {argv[0]!r} not found or not executable (looked from {base_dir})",
                          key=f"verify.{name}.run", hint="give a path relative to guard.yml's folder, or a "
                          "command on PATH")


def run_command(argv: Sequence[str], timeout: float, base_dir: Path, env: Mapping[str, str]
                ) -> tuple[bool, list[str], str | None]:
    """(passed, first lines of its output, why it failed). Exit 0 passes."""
    try:
        proc = subprocess.Popen(list(argv), cwd=base_dir, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        return False, [], f"cannot run {argv[0]}: {exc.strerror or exc}"
    try:
        out, _ = proc.communicate(timeout=timeout)
        error = None
    except subprocess.TimeoutExpired:
        exited = proc.poll()
        _kill_group(proc.pid)
        out = _drain(proc)
        error = (f"timed out after {timeout:g}s" if exited is None
                 else f"exited {exited}, but processes it started held its output past {timeout:g}s: killed")
    finally:
        _kill_group(proc.pid)  # whatever it left running in its session
        if proc.poll() is None:
            proc.wait()
    lines = out.decode("utf-8", "replace").splitlines()[:OUTPUT_LINES]
    if error is None and proc.returncode != 0:
        error = f"exit {proc.returncode}"
    return error is None, lines, error


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _drain(proc: subprocess.Popen[bytes]) -> bytes:
    """What the killed group wrote; a process that left the group and kept the pipe open
    cannot hold guard: after DRAIN_SECONDS the pipe is closed unread."""
    try:
        out, _ = proc.communicate(timeout=DRAIN_SECONDS)
        return out or b""
    except subprocess.TimeoutExpired:
        if proc.stdout is not None:
            proc.stdout.close()
        proc.kill()
        proc.wait()
        return b""
