"""`guard demo`: the whole flow on an embedded PostgreSQL, through the real entry point."""

from __future__ import annotations

from pathlib import Path

from tests.support import clean_env, run_guard


def test_demo_shows_success_and_failure_with_restore_plan(tmp_path: Path) -> None:
    result = run_guard("demo", cwd=tmp_path, env=clean_env(), timeout=180)
    assert result.code == 0, result.output
    out = result.stdout
    assert "Outcome: APPLIED (exit 0)" in out
    assert "Outcome: FAILED AFTER PART COMMITTED - database changed (exit 4)" in out
    assert "Outcome: FAILED - rolled back, database unchanged (exit 1)" in out
    assert "RESTORE PLAN" in out and "No restore needed" in out
    assert "exit codes [0, 1, 4]" in out
    # It cleans up after itself: no report left behind in the caller's directory.
    assert not (tmp_path / "guard-report.json").exists()
