"""Golden reports: the JSON report of a fixed set of scenarios, compared with committed files.

The reports are normalised first: values that differ from run to run (run ids, times, LSNs,
pids, ports, throw-away database names, durations, temporary paths) become placeholders.
Anything else that changes in a report is a change of behaviour and fails here.

Regenerate (only when a behaviour change is intended): GUARD_UPDATE_GOLDEN=1 pytest tests/test_golden.py
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.support import Project, Result

GOLDEN = Path(__file__).parent / "golden"

# Keys whose values change from run to run, whatever they hold.
VOLATILE_KEYS = frozenset({
    "run_id", "started_at", "finished_at", "timestamp", "unix", "lsn", "duration_ms", "duration_seconds",
    "age_seconds", "newest_backup", "restore_point", "id", "version_string", "server_version", "pid",
    "earliest", "latest", "restore_target_unix",
})
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?")
LSN = re.compile(r"\b[0-9A-F]{1,8}/[0-9A-F]{1,8}\b")
RUN_ID = re.compile(r"\b\d{14}-[0-9a-f]{5}\b")
UNIX = re.compile(r"\b1[6-9]\d{8}\b")


def normalise(value: Any, subs: list[tuple[str, str]], key: str | None = None) -> Any:
    """``value`` with run-to-run values replaced by placeholders (recursively)."""
    if isinstance(value, dict):
        return {k: normalise(v, subs, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v, subs) for v in value]
    if key in VOLATILE_KEYS and value is not None:
        return f"<{key}>"
    if isinstance(value, str):
        for old, new in subs:
            value = value.replace(old, new)
        value = RUN_ID.sub("<run_id>", value)
        value = ISO_TIME.sub("<time>", value)
        value = LSN.sub("<lsn>", value)
        value = UNIX.sub("<unix>", value)
        value = re.sub(r"\b\d+(\.\d+)?(ms|s|min|h|d)\b", "<duration>", value)
    return value


def substitutions(project: Project) -> list[tuple[str, str]]:
    from urllib.parse import urlsplit

    parts = urlsplit(project.db_url)
    return [
        (str(project.root), "<tmp>"),
        (sys.executable, "<python>"),
        (parts.path.lstrip("/"), "<database>"),
        (f":{parts.port}", ":<port>"),
    ]


def _apply_clean(p: Project) -> Result:
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key, name text);\n")
    p.add("20240102000000_fill_items.sql", "insert into public.items values (1, 'one');\n")
    return p.guard("run", "--reason", "golden")


def _nothing_pending(p: Project) -> Result:
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key);\n")
    assert p.guard("run").code == 0
    return p.guard("run")


def _second_file_fails(p: Project) -> Result:
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key);\n")
    p.add("20240102000000_broken.sql", "select 1;\n\nselect\n  1 / 0;\n")
    return p.guard("run")


def _stale_backup(p: Project) -> Result:
    p.init_backup_log()
    p.log_automated_backup(age=dt.timedelta(hours=30))
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key);\n")
    return p.guard("run")


def _destructive_blocked(p: Project) -> Result:
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key);\n")
    assert p.guard("run").code == 0
    (p.root / "guard.yml").write_text("lint:\n  destructive: block\n", encoding="utf-8")
    p.add("20240102000000_drop_items.sql", "drop table public.items;\n")
    return p.guard("run")


def _lint_hard_error(p: Project) -> Result:
    p.add("20240101000000_a.sql", "create table public.t (id int);\ncreate database other;\n")
    return p.guard("run")


def _check(p: Project) -> Result:
    p.add("20240101000000_create_items.sql", "create table public.items (id int primary key);\n")
    assert p.guard("run").code == 0
    p.add("20240102000000_drop_items.sql", "drop table public.items;\n")
    p.add("20240103000000_idx.sql", "create table public.t (n text);\ncreate index t_n on public.t (n);\n")
    return p.guard("check")


def _wrapped(p: Project) -> Result:
    script = ("import os, psycopg; c = psycopg.connect(os.environ['DATABASE_URL'], autocommit=True); "
              "c.execute('create table public.wrapped (id int)'); print('made it')")
    return p.guard("run", "--", sys.executable, "-c", script)


def _wrapped_failing(p: Project) -> Result:
    return p.guard("run", "--", "sh", "-c", "echo no registry; exit 7")


SCENARIOS: dict[str, tuple[bool, Callable[[Project], Result]]] = {
    # name: (needs a fresh automated backup first, scenario)
    "run_applied": (True, _apply_clean),
    "run_nothing_pending": (True, _nothing_pending),
    "run_second_file_fails": (True, _second_file_fails),
    "run_stale_backup": (False, _stale_backup),
    "run_destructive_blocked": (True, _destructive_blocked),
    "run_lint_error": (True, _lint_hard_error),
    "check_pending": (True, _check),
    "run_wrapped": (True, _wrapped),
    "run_wrapped_fails": (True, _wrapped_failing),
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_report_matches_golden(name: str, project: Project) -> None:
    fresh_backup, scenario = SCENARIOS[name]
    if fresh_backup:
        project.init_backup_log()
        project.log_automated_backup(age=dt.timedelta(hours=1))
    result = scenario(project)
    assert result.report is not None, result.output
    got = {"exit_code": result.code, "report": normalise(result.report, substitutions(project))}
    path = GOLDEN / f"{name}.json"
    text = json.dumps(got, indent=2, sort_keys=True) + "\n"
    if os.environ.get("GUARD_UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}: run with GUARD_UPDATE_GOLDEN=1 once"
    assert json.loads(text) == json.loads(path.read_text(encoding="utf-8"))
