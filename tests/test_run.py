"""`guard run` end to end against a real PostgreSQL: one test per row of the outcome table
and per refusal, asserting exit code, report JSON and database state."""

from __future__ import annotations

import datetime as dt
import threading
from pathlib import Path

import psycopg
import pytest

from guard.db import refuse_transaction_pooler
from guard.errors import UsageError
from tests.support import Project

GOOD_1 = "create table public.items (id int primary key, name text);\n"
GOOD_2 = "insert into public.items values (1, 'one');\nalter table public.items add column price int;\n"
DIV_ZERO = "select 1;\n\nselect\n  1 / 0;\n"


# ----------------------------------------------------------------------------- exit 0


def test_good_set_applies_and_records_history_and_manual_backup(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    ready.add("20240102000000_fill_items.sql", GOOD_2)

    result = ready.guard("run", "--reason", "Before release 1.2")

    assert result.code == 0, result.output
    report = result.report
    assert report is not None
    assert report["status"] == "applied" and report["exit_code"] == 0
    assert report["database_changed"] is True
    assert [(m["version"], m["status"]) for m in report["migrations"]] == [
        ("20240101000000", "applied"),
        ("20240102000000", "applied"),
    ]
    assert ready.history() == ["20240101000000", "20240102000000"]
    rows = ready.query(
        "SELECT name, statements FROM supabase_migrations.schema_migrations ORDER BY version"
    )
    assert rows[0] == ("create_items", ["create table public.items (id int primary key, name text)"])
    assert rows[1][1] == ["insert into public.items values (1, 'one')", "alter table public.items add column price int"]
    assert ready.query("SELECT id, name, price FROM public.items") == [(1, "one", None)]

    entries = ready.manual_entries()
    assert len(entries) == 1
    meta = entries[0]["metadata"]
    assert entries[0]["reason"] == "Before release 1.2"
    assert meta["run_id"] == report["run_id"]
    assert meta["pending_versions"] == ["20240101000000", "20240102000000"]
    assert meta["restore_point"]["timestamp"] == report["restore_target"]["timestamp"]
    target = report["restore_target"]
    assert target["lsn"] and "/" in target["lsn"]
    assert target["restore_point"] == f"guard-{report['run_id']}"  # the test role is superuser
    parsed = dt.datetime.fromisoformat(target["timestamp"].replace("Z", "+00:00"))
    assert abs(parsed.timestamp() - target["unix"]) < 1
    backups = report["backups"]
    assert backups["ok"] is True
    assert backups["providers"][0]["status"] == "ok"
    assert 3500 < backups["providers"][0]["age_seconds"] < 3800


def test_history_and_journal_rows_hold_awkward_and_big_statements(ready: Project) -> None:
    """A file's history row and journal entry go with its COMMIT: quoted on the client for an
    ordinary file, as parameters for a big one. Both must store the statements byte for byte."""
    awkward = ("create table public.q (t text);\n"
               "insert into public.q values (E'back\\\\slash ''quote'' %s %% $1 \\n'), ($tag$ ; -- $tag$);\n")
    ready.add("20240101000000_awkward.sql", awkward)
    body = "x" * 300_000  # over the 256 KiB the single message takes
    ready.add("20240102000000_big.sql", f"create function public.big() returns text language sql as $$ select '{body}' $$;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    rows = dict(ready.query("SELECT version, statements FROM supabase_migrations.schema_migrations"))
    assert rows["20240101000000"] == [line.rstrip(";") for line in awkward.splitlines()]
    assert rows["20240102000000"] == [f"create function public.big() returns text language sql as $$ select '{body}' $$"]
    assert ready.query("SELECT t FROM public.q ORDER BY t") == [(" ; -- ",), ("back\\slash 'quote' %s %% $1 \n",)]
    run_id = result.report["run_id"] if result.report else None
    assert ready.query("SELECT committed FROM guard.runs WHERE run_id = %s", (run_id,)) == [
        (["20240101000000", "20240102000000"],)
    ]


def test_nothing_pending_exits_0_and_writes_nothing(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    second = ready.guard("run")
    assert second.code == 0, second.output
    assert second.report is not None and second.report["status"] == "nothing_pending"
    assert second.report["database_changed"] is False
    assert len(ready.manual_entries()) == 1


def test_default_reason_names_the_pending_versions(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    assert ready.manual_entries()[0]["reason"] == "Before migration 20240101000000_create_items"


def test_ci_context_is_recorded_with_the_manual_backup(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    result = ready.guard(
        "run", GITHUB_SHA="abc123", GITHUB_ACTOR="octocat", GITHUB_REF="refs/heads/main",
        GITHUB_REPOSITORY="acme/app", GITHUB_RUN_ID="42",
    )
    assert result.code == 0, result.output
    entry = ready.manual_entries()[0]
    assert entry["metadata"]["commit"] == "abc123"
    assert entry["metadata"]["actor"] == "octocat"
    assert entry["metadata"]["run_url"] == "https://github.com/acme/app/actions/runs/42"
    assert "octocat" in entry["created_by"]


# ----------------------------------------------------------------------------- exit 1


def test_only_file_fails_rolls_back_and_says_no_restore_needed(ready: Project) -> None:
    ready.add("20240101000000_broken.sql", "create table public.t (id int);\n" + DIV_ZERO)

    result = ready.guard("run")

    assert result.code == 1, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_rolled_back"
    assert report["database_changed"] is False
    failed = report["migrations"][0]
    assert failed["status"] == "failed"
    error = failed["error"]
    assert error["sqlstate"] == "22012"
    assert error["message"] == "division by zero"
    assert error["file"] == "supabase/migrations/20240101000000_broken.sql"
    assert error["line"] == 4  # a run-time error has no position: the statement's first line
    assert error["statement_index"] == 2
    assert report["restore_plan"]["needed"] is False
    assert "No restore needed" in result.stdout
    assert ready.history() == []
    assert not ready.table_exists("public.t")


def test_error_position_points_at_the_file_line(ready: Project) -> None:
    ready.add(
        "20240101000000_typo_column.sql",
        "-- header\ncreate table public.t (id int);\n\nselect id,\n       nme\n  from public.t;\n",
    )
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    error = result.report["migrations"][0]["error"]
    assert error["sqlstate"] == "42703"  # undefined_column
    assert error["line"] == 5  # where "nme" stands, not where the statement starts
    assert "supabase/migrations/20240101000000_typo_column.sql:5" in result.stdout


def test_error_position_in_a_files_first_statement(ready: Project) -> None:
    """The first statement travels with the file's BEGIN: its error position is still its own."""
    ready.add("20240101000000_typo.sql", "-- header\n\nselect oid,\n       relnme\n  from pg_class;\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    error = result.report["migrations"][0]["error"]
    assert error["sqlstate"] == "42703" and error["statement_index"] == 0
    assert error["line"] == 4, error
    assert ready.query("SELECT count(*) FROM supabase_migrations.schema_migrations") == [(0,)]


def test_transaction_all_rolls_back_every_file(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    ready.add("20240102000000_broken.sql", DIV_ZERO)

    result = ready.guard("run", "--transaction", "all")

    assert result.code == 1, result.output
    assert result.report is not None
    assert [m["status"] for m in result.report["migrations"]] == ["rolled_back", "failed"]
    assert ready.history() == []
    assert not ready.table_exists("public.items")


def test_lock_timeout_stops_a_file_waiting_on_a_lock(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    ready.add("20240102000000_alter_items.sql", "alter table public.items add column extra int;\n")
    with psycopg.connect(ready.db_url) as holder:
        holder.execute("LOCK TABLE public.items IN ACCESS SHARE MODE")
        result = ready.guard("run", "--lock-timeout", "300ms")
        holder.rollback()
    assert result.code == 1, result.output
    assert result.report is not None
    assert result.report["migrations"][0]["error"]["sqlstate"] == "55P03"  # lock_not_available
    assert ready.history() == ["20240101000000"]


def test_statement_timeout_cancels_a_slow_statement(ready: Project) -> None:
    ready.add("20240101000000_slow.sql", "select pg_sleep(5);\n")
    result = ready.guard("run", "--statement-timeout", "200ms")
    assert result.code == 1, result.output
    assert result.report is not None
    assert result.report["migrations"][0]["error"]["sqlstate"] == "57014"  # query_canceled


# ----------------------------------------------------------------------------- exit 4


def test_second_file_fails_leaves_first_committed_with_restore_plan(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    ready.add("20240102000000_broken.sql", DIV_ZERO)
    ready.add("20240103000000_never.sql", "create table public.never (id int);\n")

    result = ready.guard("run")

    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_partially_applied"
    assert report["database_changed"] is True
    assert [m["status"] for m in report["migrations"]] == ["applied", "failed", "skipped"]
    assert ready.history() == ["20240101000000"]
    assert ready.table_exists("public.items") and not ready.table_exists("public.never")
    plan = report["restore_plan"]
    target = report["restore_target"]
    assert plan["needed"] is True
    assert plan["committed_versions"] == ["20240101000000"]
    assert target["timestamp"] in plan["summary"]
    assert plan["support"]["run_id"] == report["run_id"]
    assert "22012" in plan["support"]["error"]
    # The terminal shows the same plan with the exact target.
    assert "RESTORE PLAN" in result.stdout
    assert target["timestamp"] in result.stdout and str(target["unix"]) in result.stdout
    # The test cluster does not archive WAL (archive_mode off) and no provider reports PITR:
    # point-in-time recovery cannot reach the target, so it is named as impossible, not offered.
    assert target["archive_mode"] == "off"
    titles = [s["title"] for s in plan["steps"]]
    assert not any("point-in-time" in t for t in titles if t.startswith("Option"))
    assert "recovery_target_time" not in result.stdout
    assert "What is not possible: point-in-time recovery" in titles


def test_markdown_summary_carries_the_restore_plan(ready: Project, tmp_path: Path) -> None:
    (ready.root / "guard.yml").write_text(
        "backups:\n  providers:\n    - type: table\nlog:\n  sinks: [table]\n"
    )
    ready.add("20240101000000_create_items.sql", GOOD_1)
    ready.add("20240102000000_broken.sql", DIV_ZERO)
    result = ready.guard("run", "--summary", str(tmp_path / "summary.md"))
    assert result.code == 4
    summary = (tmp_path / "summary.md").read_text()
    assert "### Restore plan" in summary and result.report is not None
    assert result.report["restore_target"]["timestamp"] in summary


# ----------------------------------------------------------------------------- exit 3


def test_no_backup_log_blocks_and_leaves_the_database_untouched(project: Project) -> None:
    project.add("20240101000000_create_items.sql", GOOD_1)

    result = project.guard("run")

    assert result.code == 3, result.output
    assert result.report is not None and result.report["status"] == "blocked"
    assert "guard init" in result.stderr + result.stdout
    assert project.history() == []
    assert not project.table_exists("supabase_migrations.schema_migrations")
    assert not project.table_exists("public.items")


def test_no_automated_backup_blocks_without_any_write(project: Project) -> None:
    project.init_backup_log()
    project.add("20240101000000_create_items.sql", GOOD_1)

    result = project.guard("run")

    assert result.code == 3, result.output
    assert result.report is not None
    assert result.report["backups"]["providers"][0]["status"] == "missing"
    assert not project.table_exists("supabase_migrations.schema_migrations")
    assert project.manual_entries() == []
    assert not project.table_exists("public.items")


def test_stale_backup_blocks_until_max_age_allows_it(project: Project) -> None:
    project.init_backup_log()
    project.log_automated_backup(age=dt.timedelta(hours=30))
    project.add("20240101000000_create_items.sql", GOOD_1)

    blocked = project.guard("run")
    assert blocked.code == 3, blocked.output
    assert blocked.report is not None
    assert blocked.report["backups"]["providers"][0]["status"] == "stale"
    assert "26h" in blocked.report["message"]
    assert project.manual_entries() == [] and project.history() == []

    allowed = project.guard("run", "--max-age", "2d")
    assert allowed.code == 0, allowed.output


def test_failed_newest_backup_blocks(project: Project) -> None:
    project.init_backup_log()
    project.log_automated_backup(age=dt.timedelta(hours=20))
    project.log_automated_backup(age=dt.timedelta(hours=1), status="failed")
    project.add("20240101000000_create_items.sql", GOOD_1)
    result = project.guard("run")
    assert result.code == 3, result.output
    assert result.report is not None
    assert result.report["backups"]["providers"][0]["status"] == "failed"


def test_allow_stale_backup_needs_a_reason_and_logs_the_override(project: Project) -> None:
    project.init_backup_log()
    project.add("20240101000000_create_items.sql", GOOD_1)

    no_reason = project.guard("run", "--allow-stale-backup")
    assert no_reason.code == 2, no_reason.output
    assert project.history() == []

    result = project.guard("run", "--allow-stale-backup", "--reason", "hotfix, backups down (INC-7)")
    assert result.code == 0, result.output
    entry = project.manual_entries()[0]
    assert entry["metadata"]["backup_override"]["reason"] == "hotfix, backups down (INC-7)"
    assert result.report is not None and result.report["backups"]["override"] is not None


def test_second_guard_on_the_same_database_is_refused_naming_the_holder(ready: Project) -> None:
    from guard.db import LOCK_KEY

    ready.add("20240101000000_create_items.sql", GOOD_1)
    with psycopg.connect(ready.db_url, autocommit=True, application_name="guard run other") as other:
        other.execute("SELECT pg_advisory_lock(%s)", (LOCK_KEY,))
        pid = other.info.backend_pid
        result = ready.guard("run")
    assert result.code == 3, result.output
    assert f"pid {pid}" in result.output and "guard run other" in result.output
    assert ready.history() == [] and ready.manual_entries() == []


def test_concurrent_runs_apply_each_version_once(ready: Project) -> None:
    ready.add("20240101000000_slow.sql", "select pg_sleep(1.5);\ncreate table public.once (id int);\n")
    results = []

    def go() -> None:
        results.append(ready.guard("run"))

    threads = [threading.Thread(target=go) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.code for r in results) == [0, 3], [r.output for r in results]
    assert ready.history() == ["20240101000000"]


def test_out_of_order_file_is_refused_unless_include_all(ready: Project) -> None:
    ready.add("20240102000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    ready.add("20240101000000_older.sql", "create table public.older (id int);\n")

    refused = ready.guard("run")
    assert refused.code == 3, refused.output
    assert "20240101000000_older.sql" in refused.output and "--include-all" in refused.output
    assert not ready.table_exists("public.older")

    included = ready.guard("run", "--include-all")
    assert included.code == 0, included.output
    assert ready.history() == ["20240101000000", "20240102000000"]


def test_edited_applied_file_is_refused(ready: Project) -> None:
    path = ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    path.write_text("-- a comment is fine\n" + GOOD_1.upper())  # case of keywords/idents differ
    ready.add("20240102000000_next.sql", "create table public.next (id int);\n")
    changed = ready.guard("run")
    assert changed.code == 3, changed.output
    assert "20240101000000_create_items.sql" in changed.output and "changed" in changed.output
    assert not ready.table_exists("public.next")


def test_comment_only_edit_of_applied_file_is_not_drift(ready: Project) -> None:
    path = ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    path.write_text("-- documented later\n" + GOOD_1)
    ready.add("20240102000000_next.sql", "create table public.next (id int);\n")
    assert ready.guard("run").code == 0


def test_applied_version_missing_locally_is_refused(ready: Project) -> None:
    path = ready.add("20240101000000_create_items.sql", GOOD_1)
    assert ready.guard("run").code == 0
    path.unlink()
    ready.add("20240102000000_next.sql", "create table public.next (id int);\n")
    result = ready.guard("run")
    assert result.code == 3, result.output
    assert "20240101000000" in result.output and "repair" in result.output


def test_syntax_error_is_refused_before_connecting_with_file_and_line(ready: Project) -> None:
    ready.add("20240101000000_create_items.sql", GOOD_1)
    ready.add("20240102000000_typo.sql", "select 1;\n\ncreate tabel public.x (id int);\n")
    result = ready.guard("run")
    assert result.code == 3, result.output
    assert "supabase/migrations/20240102000000_typo.sql:3" in result.output
    assert ready.history() == [] and ready.manual_entries() == []


def test_duplicate_versions_are_refused(ready: Project) -> None:
    ready.add("20240101000000_a.sql", GOOD_1)
    ready.add("20240101000000_b.sql", "select 1;\n")
    result = ready.guard("run")
    assert result.code == 3, result.output
    assert "20240101000000_a.sql" in result.output and "20240101000000_b.sql" in result.output
    assert ready.history() == []


def test_non_utf8_file_is_refused(ready: Project) -> None:
    (ready.migrations / "20240101000000_latin1.sql").write_bytes(b"select 1;\nselect 'caf\xe9';\n")
    result = ready.guard("run")
    assert result.code == 3, result.output
    assert "20240101000000_latin1.sql:2" in result.output
    assert ready.history() == []


def test_unreachable_database_is_blocked_with_one_line(project: Project, tmp_path: Path) -> None:
    project.add("20240101000000_create_items.sql", GOOD_1)
    result = project.guard(
        "run", "--database-url", "postgresql://app:hunter2-very-secret@127.0.0.1:1/nope"
    )
    assert result.code == 3, result.output
    assert "127.0.0.1:1/nope" in result.stderr
    assert "hunter2-very-secret" not in result.output
    assert result.report is not None and "hunter2-very-secret" not in str(result.report)


def test_supabase_transaction_pooler_is_refused_before_connecting(project: Project) -> None:
    """Port 6543 of Supabase's pooler gives each transaction any server connection: guard's
    lock would not hold. Refused with the fix named and the password nowhere, before any
    connection is tried; port 5432 of the same host (session mode) is accepted."""
    project.add("20240101000000_create_items.sql", GOOD_1)
    pooler = "postgresql://postgres.abcdefghijklmnopqrst:s3cret-pw@aws-0-eu-west-1.pooler.supabase.com:6543/postgres"
    for command in ("run", "check"):
        result = project.guard(command, "--database-url", pooler)
        assert result.code == 2, result.output
        assert "transaction-mode pooler" in result.stderr and "session pooler (port 5432)" in result.stderr
        assert "s3cret-pw" not in result.output
    refuse_transaction_pooler(pooler.replace(":6543/", ":5432/"))  # session mode: no error
    refuse_transaction_pooler("host=db.abcdefghijklmnopqrst.supabase.co port=5432 dbname=postgres")
    for host in ("aws-0-eu-west-1.pooler.supabase.com", "db.abcdefghijklmnopqrst.supabase.co"):
        with pytest.raises(UsageError):  # Supavisor and the dedicated PgBouncer (issue 14 item 8)
            refuse_transaction_pooler(f"host={host} port=6543 dbname=postgres")


def test_non_superuser_role_runs_without_named_restore_point(ready: Project) -> None:
    ready.query("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'migrator') "
                "THEN CREATE ROLE migrator LOGIN PASSWORD 'migrator-pass-123'; END IF; END $$")
    db = ready.query("SELECT current_database()")[0][0]
    ready.query(f'GRANT ALL ON DATABASE "{db}" TO migrator')
    ready.query("GRANT ALL ON SCHEMA public TO migrator")
    ready.query("GRANT ALL ON ALL TABLES IN SCHEMA public TO migrator")
    ready.query("GRANT ALL ON ALL SEQUENCES IN SCHEMA public TO migrator")
    ready.query("ALTER TABLE public.backup_logs FORCE ROW LEVEL SECURITY")
    ready.query("CREATE POLICY guard_all ON public.backup_logs TO migrator USING (true) WITH CHECK (true)")
    url = ready.db_url.replace("postgres:", "migrator:", 1)
    url = url.split("@", 1)
    url = "postgresql://migrator:migrator-pass-123@" + url[1]
    ready.add("20240101000000_create_items.sql", GOOD_1)
    result = ready.guard("run", "--database-url", url)
    assert result.code == 0, result.output
    assert result.report is not None
    target = result.report["restore_target"]
    assert target["restore_point"] is None
    assert "permission" in target["restore_point_note"] or "superuser" in target["restore_point_note"]
    assert "migrator-pass-123" not in result.output
