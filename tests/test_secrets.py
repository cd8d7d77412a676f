"""No secret from the database URL (or the environment) in any output, report or summary."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from tests.conftest import TEST_PASSWORD
from tests.support import Project, run_guard


def _assert_clean(*texts: str) -> None:
    for text in texts:
        assert TEST_PASSWORD not in text
        assert TEST_PASSWORD.replace("-", "%2D") not in text


def test_password_never_appears_in_a_failed_run(tmp_path: Path, db_url: str) -> None:
    assert TEST_PASSWORD in db_url  # the tests connect with a real password
    project = Project(tmp_path, db_url)
    project.init_backup_log()
    project.log_automated_backup(age=dt.timedelta(hours=1))
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    # A failing statement that echoes the URL back in the server's error message.
    project.add("20240102000000_b.sql", f"select 1 / 0 from (values ('{db_url}')) v(u);\n")
    summary = tmp_path / "summary.md"
    result = project.guard("run", "--summary", str(summary), "--reason", f"debug {db_url}")
    assert result.code == 4, result.output
    assert result.report is not None
    _assert_clean(result.stdout, result.stderr, str(result.report), summary.read_text())
    stored = project.query("SELECT reason, metadata::text FROM public.backup_logs WHERE kind = 'manual'")
    assert stored  # the reason is stored as the operator gave it; outputs mask it
    json_run = project.guard("run", "--json")
    _assert_clean(json_run.stdout, json_run.stderr)


def test_wrong_password_error_does_not_echo_it(tmp_path: Path, db_url: str) -> None:
    bad = db_url.replace(TEST_PASSWORD, "Wr0ng-" + TEST_PASSWORD[::-1])
    project = Project(tmp_path, bad)
    project.add("20240101000000_a.sql", "select 1;\n")
    result = project.guard("run")
    assert result.code == 3
    assert "password authentication failed" in result.stderr
    assert "Wr0ng-" not in result.output
    assert result.report is not None and "Wr0ng-" not in str(result.report)


def test_secret_from_config_interpolation_is_masked(tmp_path: Path, db_url: str) -> None:
    (tmp_path / "guard.yml").write_text("database_url: ${MY_DB}\nbackups:\n  max_age: ${MY_DB}\n")
    result = run_guard("run", cwd=tmp_path, env={"MY_DB": db_url, "PATH": "/usr/bin:/bin",
                                                  "PYTHONPATH": str(Path(__file__).parent.parent)})
    assert result.code == 2
    _assert_clean(result.stdout, result.stderr)
