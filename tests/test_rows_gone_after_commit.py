"""The read-back after a run's last COMMIT (guard/run/apply.py rows_still_there) says what is
gone and what follows. Each file checks its own rows before its COMMIT; a LATER file of the
run deleting an earlier file's history row or journal entry is found by the read-back, and
the run ends failed_partially_applied (exit 4). It was reported as "a trigger or rule acting
at COMMIT removed it" and, for a journal entry alone, "the next run would apply it again"
(false: the history still holds it, the next run has nothing pending); the restore plan said
the versions "committed before the failure failed" where no file failed."""

from __future__ import annotations

import pytest

from tests.support import Project

V1, V2 = "20240101000001", "20240101000002"
LATER = {  # how the second file removes the first file's row -> (the row, a statement of its own first)
    "history row": f"delete from supabase_migrations.schema_migrations where version = '{V1}';\n",
    "journal entry": f"delete from guard.run_commits where version = '{V1}';\n",
    "both": f"delete from supabase_migrations.schema_migrations where version = '{V1}';\n"
            f"delete from guard.run_commits where version = '{V1}';\n",
}
SHAPES = {  # what else the second file does: one transaction, or statement by statement
    "transaction": "create table public.a2 (id int);\n",
    "statement by statement": "create index concurrently a1_id on public.a1 (id);\n",
}


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("removed", list(LATER))
def test_a_later_file_removing_an_earlier_files_row_is_named_truthfully(ready: Project, removed: str,
                                                                        shape: str) -> None:
    assert ready.guard("init").code == 0
    ready.add(f"{V1}_f1.sql", "create table public.a1 (id int);\n")
    ready.add(f"{V2}_f2.sql", LATER[removed] + SHAPES[shape])
    result = ready.guard("run")
    assert "Traceback" not in result.output, result.output
    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_partially_applied"
    assert [m["status"] for m in report["migrations"]] == ["applied", "applied"]
    error = report["migrations"][0]["error"]["message"]
    assert "gone after COMMIT" in error and "a later file of this run" in error, error
    assert report["migrations"][1]["error"] is None
    history_gone = removed != "journal entry"
    assert ("the next run would apply" in error) is history_gone, error
    assert ("the next run would apply" in report["message"]) is history_gone, report["message"]
    assert ("the history still holds" in report["message"]) is (not history_gone), report["message"]
    summary = report["restore_plan"]["summary"]
    assert "before the failure failed" not in summary and f"{V1}, {V2} committed" in summary, summary
    assert report["restore_plan"]["needed"] is True
    again = ready.guard("run")
    if history_gone:  # what the message said: the file is pending again (older than the newest applied)
        assert again.code != 0 and f"pending file(s) older than the newest applied version {V2}: {V1}_f1.sql" \
            in again.output, again.output
    else:
        assert again.code == 0 and "Nothing pending" in again.output, again.output


def test_in_one_transaction_a_later_files_delete_is_named_in_the_hint(ready: Project) -> None:
    """With ``transaction: all`` the rows are checked once, at the end: the first file's row is
    found missing, nothing commits (exit 1), and the hint names a later file as a cause beside
    rules and triggers (it named rules, triggers and policies only)."""
    (ready.root / "guard.yml").write_text("migrations:\n  transaction: all\n")
    assert ready.guard("init").code == 0
    ready.add(f"{V1}_f1.sql", "create table public.a1 (id int);\n")
    ready.add(f"{V2}_f2.sql", LATER["history row"] + SHAPES["transaction"])
    result = ready.guard("run")
    assert result.code == 1, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_rolled_back"
    error = report["migrations"][0]["error"]
    assert f"row for {V1} did not land" in error["message"] and "a later file deleting it" in error["hint"], error
    assert ready.history() == [] and not ready.table_exists("public.a1")
