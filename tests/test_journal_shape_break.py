"""Attempts to break the commands that read guard's journal (`guard undo`, `guard restore-plan`)
with a run's row changed by hand: a report, or a part of it, of another JSON type than guard
wrote. Each ended in an internal error (AttributeError, TypeError); now one line naming the run
and the part, exit 3, nothing changed. Real CLI, real PostgreSQL."""

from __future__ import annotations

import pytest

from tests.support import Project

PATCHES = {
    "report_a_string": "report = '\"x\"'",
    "report_an_array": "report = '[1, 2]'",
    "restore_target_a_string": "restore_target = '\"x\"'",
    "wrapped_a_number": "report = jsonb_set(report, '{wrapped}', '5')",
    "wrapped_argv_a_number": "report = jsonb_set(report, '{wrapped}', '{\"argv\": 5, \"changes\": []}')",
    "copies_a_string": "report = jsonb_set(report, '{protective_copies}', '\"x\"')",
    "copies_items_numbers": "report = jsonb_set(report, '{protective_copies}', '[5]')",
    "plan_an_array": "report = jsonb_set(report, '{restore_plan}', '[1]')",
    "backups_a_number": "report = jsonb_set(report, '{backups}', '3')",
}


@pytest.mark.parametrize("patch", sorted(PATCHES))
def test_a_journal_row_changed_by_hand_is_named_not_a_traceback(ready: Project, patch: str) -> None:
    ready.query("create table public.t (id int primary key)")
    ready.add("20260101000000_a.sql", "alter table public.t add column w int;\n")
    run = ready.guard("run")
    assert run.code == 0 and run.report is not None, run.output
    run_id = run.report["run_id"]
    ready.query(f"update guard.runs set exit_code = 4, {PATCHES[patch]} where run_id = %s", (run_id,))
    for args in (("undo", run_id, "--yes"), ("restore-plan", run_id), ("restore-plan", run_id, "--format", "json")):
        result = ready.guard(*args)
        assert result.code == 3, (args, result.output)
        assert f"guard.runs holds run {run_id} with a " in result.stderr and "Traceback" not in result.output
        assert "internal error" not in result.output
    assert ready.table_exists("public.t") and ready.query(
        "select count(*) from pg_attribute where attrelid = 'public.t'::regclass and attname = 'w'") == [(1,)]
