"""Item 6 of issue #16 (and 3, 4 through the action): outputs on every exit, extra-args
newlines kept, hostile inputs forge nothing, a weak password does not garble the log."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.conftest import TEST_PASSWORD
from tests.hostile.hostile import FORGERIES, forged
from tests.support import Project
from tests.test_action import ACTION, action_bin, installed, run_action  # noqa: F401 - session fixtures


@pytest.mark.parametrize(("extra", "code"), [
    ("--bogus", 2),
    ("--max-age 26h\n--bogus", 2),  # the word after the newline is kept, so guard sees it
    ("--max-age\n26h\n\n--bogus-after-blank-line", 2),
    ("--max-age\tnot-a-duration", 2),
])
def test_outputs_are_written_on_every_exit(ready: Project, installed: Path, extra: str, code: int) -> None:  # noqa: F811
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = run_action({"command": "run", "database-url": ready.db_url, "extra-args": extra},
                        cwd=ready.root, bin_dir=installed)
    assert result.code == code, result.stdout + result.stderr
    assert result.outputs["exit-code"] == str(code)
    assert result.outputs["status"] == "usage_error"
    assert ready.history() == []


def test_extra_args_over_several_lines_all_reach_guard(ready: Project, installed: Path) -> None:  # noqa: F811
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = run_action({"command": "run", "database-url": ready.db_url,
                         "extra-args": "--max-age\n26h\n--transaction\nall\n"},
                        cwd=ready.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs["status"] == "applied"


def test_unreachable_database_still_sets_outputs(tmp_path: Path, installed: Path) -> None:  # noqa: F811
    (tmp_path / "supabase/migrations").mkdir(parents=True)
    (tmp_path / "supabase/migrations/20240101000000_a.sql").write_text("select 1;\n")
    result = run_action({"command": "run", "database-url": "postgresql://postgres:postgres@127.0.0.1:1/x"},
                        cwd=tmp_path, bin_dir=installed)
    assert result.code == 3, result.stdout + result.stderr
    assert result.outputs["exit-code"] == "3" and result.outputs["status"] == "blocked"
    # "postgres" is too common to mask: masking it would turn postgresql.conf into ***ql.conf.
    assert "::add-mask::postgres\n" not in result.stdout
    assert "too short or too common" in result.stdout


@pytest.mark.parametrize("index", [0, 1, 2, 4, 13])
def test_hostile_reason_input_forges_nothing(ready: Project, installed: Path, index: int) -> None:  # noqa: F811
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = run_action({"command": "run", "database-url": ready.db_url, "reason": FORGERIES[index]},
                        cwd=ready.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    own = {f"::add-mask::{ready.db_url}", f"::add-mask::{TEST_PASSWORD}"}  # the action's first step
    text = "\n".join(line for line in (result.stdout + "\n" + result.stderr).split("\n") if line not in own)
    assert forged(text) == []
    assert ready.manual_entries()[0]["reason"] == FORGERIES[index]


def _runner_unescape(data: str) -> str:
    """What the runner registers from ``::add-mask::data`` (ActionCommand.UnescapeData)."""
    return data.replace("%0D", "\r").replace("%0A", "\n").replace("%25", "%")


MASKED_INPUTS = [
    {"database-url": "postgresql://u:pass%25word-0A-long@db.example/postgres"},
    {"database-url": "postgresql://u:p%250Ax-secret-pw@db.example/postgres"},
    {"supabase-access-token": "sbp_token%0Awith%25escapes%0D"},
    {"admin-key": "admin%25key%250A-0123456789"},
    {"admin-key": "line-one-of-a-key\nline-two-of-the-key"},
]


@pytest.mark.parametrize("inputs", MASKED_INPUTS, ids=range(len(MASKED_INPUTS)))
def test_add_mask_registers_each_secret_exactly(tmp_path: Path, inputs: dict[str, str]) -> None:
    from urllib.parse import unquote, urlsplit

    step = next(s for s in ACTION["runs"]["steps"] if s.get("name") == "Mask secrets")
    env = {"PATH": os.environ["PATH"], "IN_DATABASE_URL": inputs.get("database-url", ""),
           "IN_SUPABASE_ACCESS_TOKEN": inputs.get("supabase-access-token", ""),
           "IN_ADMIN_KEY": inputs.get("admin-key", "")}
    done = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, capture_output=True, text=True, check=True)
    registered = {_runner_unescape(line.split("::add-mask::", 1)[1])
                  for line in done.stdout.split("\n") if line.startswith("::add-mask::")}
    wanted = set(inputs.values())
    if "database-url" in inputs:
        wanted.add(unquote(urlsplit(inputs["database-url"]).password or ""))
    assert wanted <= registered, (wanted, done.stdout)
