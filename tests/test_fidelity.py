"""Issue 14: guard applies exactly what PostgreSQL would. Each test is one of the issue's
failing inputs (or another input of the same kind), run through the real entry point."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guard.embedded import Cluster
from guard.errors import Blocked, MigrationFileError
from guard.migrations.files import discover, fingerprint, load, split_statements
from guard.migrations.history import AppliedMigration
from guard.migrations.plan import compute_plan
from tests.support import Project

PG_DUMP_HEAD = (
    "SET statement_timeout = 0;\nSET lock_timeout = 0;\nSET client_encoding = 'UTF8';\n"
    "SET standard_conforming_strings = on;\n"
    "SELECT pg_catalog.set_config('search_path', '', false);\nSET check_function_bodies = false;\n"
    "SET client_min_messages = warning;\nSET row_security = off;\n"
)


# ------------------------------------------------------------------ 1. session state


def _role(project: Project, name: str) -> None:
    """A NOLOGIN role (roles are the cluster's, shared by every test database)."""
    project.query(f"DO $$ BEGIN CREATE ROLE {name} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$")


def test_pg_dump_search_path_does_not_reach_the_next_file(ready: Project) -> None:
    ready.add("20240301000000_base.sql",
              PG_DUMP_HEAD + "CREATE TABLE public.widgets (id integer PRIMARY KEY, label text);\n")
    ready.add("20240302000000_gadgets.sql",
              "create table gadgets (id int primary key, widget_id int references widgets(id));\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.table_exists("public.gadgets")


def test_set_role_at_the_end_of_a_file_neither_breaks_history_nor_leaks(ready: Project) -> None:
    _role(ready, "app_owner")
    ready.query("GRANT CREATE ON SCHEMA public TO app_owner")
    ready.add("20240301000000_owned.sql", "create table public.owned (id int);\nset role app_owner;\n")
    ready.add("20240302000000_next.sql", "create table public.next_one (id int);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20240301000000", "20240302000000"]
    # psql: the next file is a new session, run as the connecting role (postgres).
    owners = dict(ready.query("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public' "
                              "AND tablename IN ('owned', 'next_one')"))
    assert owners == {"owned": "postgres", "next_one": "postgres"}


@pytest.mark.parametrize("leftover, probe", [
    ("set session authorization app_owner;", "create table public.probe (id int);"),
    ("create temp table scratch (id int);", "create temp table scratch (id int);"),
    ("prepare q as select 1;", "prepare q as select 2;"),
    ("begin; declare c cursor with hold for select 1; commit;", "declare c cursor with hold for select 1;"),
    ("set search_path = nowhere;", "create table probe (id int);"),
    ("select set_config('app.tenant', 'x', false);",
     "do $$ begin if current_setting('app.tenant', true) <> '' then raise 'leaked'; end if; end $$;"),
    ("set default_transaction_read_only = on;", "create table public.probe (id int);"),
])
def test_no_session_state_reaches_the_next_file(ready: Project, leftover: str, probe: str) -> None:
    _role(ready, "app_owner")
    ready.add("20240301000000_leave.sql", leftover + "\n")
    ready.add("20240302000000_probe.sql", probe + "\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20240301000000", "20240302000000"]


def test_the_advisory_lock_stays_held_across_the_reset(ready: Project) -> None:
    ready.add("20240301000000_a.sql", "create table public.a (id int);\n")
    ready.add("20240302000000_b.sql",
              "do $$ begin if (select count(*) from pg_locks where locktype = 'advisory' and pid = "
              "pg_backend_pid()) = 0 then raise 'guard lock lost'; end if; end $$;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output


# ------------------------------------------------------------------ 2. own transactions

REALTIME = ("begin;\n  drop publication if exists supabase_realtime;\n  create publication supabase_realtime;\n"
            "commit;\n")


def test_realtime_snippet_with_its_own_transaction_applies(ready: Project) -> None:
    ready.add("20240301000000_realtime.sql", REALTIME)
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("SELECT pubname FROM pg_publication") == [("supabase_realtime",)]
    assert ready.history() == ["20240301000000"]
    rows = ready.query("SELECT statements FROM supabase_migrations.schema_migrations")
    assert rows[0][0][0] == "begin" and rows[0][0][-1] == "commit"


@pytest.mark.parametrize("text", [
    "begin -- opens\n;\ncreate table public.w (id int);\ncommit -- closes\n;\n",
    "/* header */ BEGIN;\ncreate table public.w (id int);\nEND;\n-- trailing comment\n",
    "START TRANSACTION READ WRITE;\ncreate table public.w (id int);\nsavepoint s;\nrollback to s;\nCOMMIT;\n",
    "create table public.w (id int);\ncommit;\n",  # a stray COMMIT: PostgreSQL only warns
])
def test_files_with_their_own_transaction_commands_apply(ready: Project, text: str) -> None:
    ready.add("20240301000000_w.sql", text)
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.table_exists("public.w") and ready.history() == ["20240301000000"]


def test_wrapped_file_that_fails_rolls_back_whole(ready: Project) -> None:
    ready.add("20240301000000_wrapped.sql",
              "begin isolation level serializable;\ncreate table public.w (id int);\nselect 1/0;\ncommit;\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert not ready.table_exists("public.w") and ready.history() == []


def test_failure_after_a_files_own_commit_is_exit_4_naming_what_committed(ready: Project) -> None:
    ready.add("20240301000000_two.sql",
              "begin;\ncreate table public.first (id int);\ncommit;\n"
              "begin;\ncreate table public.second (id int);\nselect 1/0;\ncommit;\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert ready.table_exists("public.first") and not ready.table_exists("public.second")
    assert ready.history() == []
    assert result.report is not None
    assert "line(s) 2" in result.report["message"] and "before line 6" in result.report["message"]


def test_several_transactions_apply_as_psql(ready: Project) -> None:
    ready.add("20240301000000_two.sql",
              "create table public.t (id int);\nbegin;\ninsert into public.t values (1);\ncommit;\n"
              "begin;\ninsert into public.t values (2);\nrollback;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("SELECT id FROM public.t") == [(1,)]
    assert ready.history() == ["20240301000000"]


def test_file_leaving_its_transaction_open_fails_rolled_back(ready: Project) -> None:
    ready.add("20240301000000_open.sql", "begin;\ncreate table public.t (id int);\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert not ready.table_exists("public.t") and ready.history() == []


def test_transaction_all_refuses_files_with_several_transactions(ready: Project) -> None:
    (ready.root / "guard.yml").write_text("migrations:\n  transaction: all\n")
    ready.add("20240301000000_wrapped.sql", REALTIME)
    ready.add("20240302000000_two.sql", "begin;\nselect 1;\ncommit;\nbegin;\nselect 2;\ncommit;\n")
    result = ready.guard("run")
    assert result.code == 3, result.output
    (ready.migrations / "20240302000000_two.sql").unlink()
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20240301000000"]


# ------------------------------------------------------------------ 4. order and naming


def test_short_version_applies_in_file_name_order_as_the_cli(ready: Project) -> None:
    ready.add("20260520143000_notes.sql", "create table public.notes (id int primary key);\n")
    ready.add("20260523_notes_body.sql", "alter table public.notes add column body text;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20260520143000", "20260523"]


def test_short_version_after_the_first_is_applied_is_pending_not_older(ready: Project) -> None:
    ready.add("20260520143000_notes.sql", "create table public.notes (id int primary key);\n")
    assert ready.guard("run").code == 0
    ready.add("20260523_notes_body.sql", "alter table public.notes add column body text;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output


def test_versions_compare_as_strings_as_findpendingmigrations() -> None:
    names = {"20260520143000": "a.sql", "20260523": "b.sql", "20260601": "c.sql"}
    applied = [AppliedMigration("20260520143000", None, None)]
    plan = compute_plan(["20260520143000", "20260523"], applied, include_all=False, filename_of=names)
    assert plan.pending == ["20260523"]  # as a number it is smaller; as the CLI's string, newer
    applied = [AppliedMigration("20260523", None, None)]
    with pytest.raises(Blocked, match="older"):  # "20260520143000" < "20260523" as strings
        compute_plan(["20260520143000", "20260523"], applied, include_all=False, filename_of=names)
    plan = compute_plan(["20260520143000", "20260523", "20260601"], applied, include_all=True, filename_of=names)
    assert plan.pending == ["20260520143000", "20260601"]
    plan = compute_plan(["0001", "1"], [], include_all=False, filename_of={"0001": "x", "1": "y"})
    assert plan.pending == ["0001", "1"]  # distinct versions for the CLI


def test_discover_orders_by_file_name_and_skips_the_deprecated_init(tmp_path: Path) -> None:
    for name in ("20211201000000_init.sql", "20260523_b.sql", "20260520143000_a.sql", "10_x.sql", "1_y.sql"):
        (tmp_path / name).write_text("select 1;\n")
    (tmp_path / "nested").mkdir()
    (tmp_path / ".gitkeep").write_text("")
    (tmp_path / "README.md").write_text("notes")
    names = [ref.filename for ref in discover(tmp_path)]
    # .gitkeep sorts first, so the init file is not the first entry: kept, as list.go keeps it.
    assert names == ["10_x.sql", "1_y.sql", "20211201000000_init.sql", "20260520143000_a.sql", "20260523_b.sql"]
    (tmp_path / ".gitkeep").unlink()
    assert "20211201000000_init.sql" not in [ref.filename for ref in discover(tmp_path)][:1]


# ------------------------------------------------------------------ 5. CRLF and BOM

FUNCTION = ("create function public.total(a int, b int) returns int language plpgsql as $$\n"
            "begin\n  -- adds\n  return a + b;\nend;\n$$;\n")


@pytest.mark.parametrize("rewrite", [
    lambda text: text.replace("\n", "\r\n").encode(),
    lambda text: b"\xef\xbb\xbf" + text.encode(),
    lambda text: b"\xef\xbb\xbf" + text.replace("\n", "\r\n").encode(),
])
def test_line_endings_and_bom_are_not_edits(ready: Project, rewrite: object) -> None:
    path = ready.add("20240301000000_fn.sql", FUNCTION)
    assert ready.guard("run").code == 0
    path.write_bytes(rewrite(FUNCTION))  # type: ignore[operator]
    ready.add("20240302000000_more.sql", "create table public.more (id int);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    path.write_text(FUNCTION.replace("a + b", "a - b"))
    ready.add("20240303000000_again.sql", "select 1;\n")
    assert ready.guard("run").code == 3  # a real edit still is one


def test_fingerprint_ignores_crlf_inside_dollar_quotes_only_as_line_endings() -> None:
    assert fingerprint(["select $$a\r\nb$$"]) == fingerprint(["select $$a\nb$$"])
    assert fingerprint(["\ufeffselect 1"]) == fingerprint(["select 1"])
    assert fingerprint(["select $$a b$$"]) != fingerprint(["select $$a\nb$$"])


# ------------------------------------------------------------------ 6. stray .sql files


@pytest.mark.parametrize("command", ["run", "check", "lint"])
def test_sql_files_not_named_as_migrations_are_refused(ready: Project, command: str) -> None:
    ready.add("20240301000000_ok.sql", "create table public.ok (id int);\n")
    for name in ("create_a.sql", "20250102-create_a.sql", "X.SQL"):
        ready.add(name, "create table public.a (id int);\n")
    (ready.migrations / "README.md").write_text("not a migration")
    (ready.migrations / ".gitkeep").write_text("")
    (ready.migrations / "archive").mkdir()
    result = ready.guard(command)
    assert result.code == 3, result.output
    for name in ("create_a.sql", "20250102-create_a.sql", "X.SQL", "<version>_<name>.sql"):
        assert name in result.stderr
    assert ready.history() == []


def test_migrations_ignore_lists_sql_files_that_are_not_migrations(ready: Project) -> None:
    ready.add("20240301000000_ok.sql", "create table public.ok (id int);\n")
    ready.add("seed_local.sql", "select 1;\n")
    ready.add("X.SQL", "select 1;\n")
    (ready.root / "guard.yml").write_text("migrations:\n  ignore: ['seed_*.sql', '*.SQL']\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == ["20240301000000"]


# ------------------------------------------------------------------ 7. meta-commands


@pytest.mark.parametrize("text, command, line", [
    ("\\set app_schema inventory\ncreate schema :app_schema;\n", "\\set", 1),
    ("select 1;\nselect format('create index on %I (id)', 'items') \\gexec\n", "\\gexec", 2),
    ("select 1;\n\\ir other.sql\n", "\\ir", 2),
    ("select 1;\n  \\connect other\n", "\\connect", 2),
])
def test_psql_meta_commands_are_named_in_full(text: str, command: str, line: int) -> None:
    with pytest.raises(MigrationFileError) as caught:
        split_statements(text, "f.sql")
    assert f"psql meta-command {command} is not SQL" in str(caught.value)
    assert caught.value.line == line


def test_backslashes_inside_strings_are_not_meta_commands() -> None:
    text = "create function f() returns text language sql as $$\nselect E'\\\\n'\n$$;\nselect '\\set';\n"
    assert len(split_statements(text)) == 2


# ------------------------------------------------------------------ 8. poolers


def test_any_transaction_mode_pooler_is_refused_after_connecting(project: Project, pg_cluster: Cluster) -> None:
    """A pooler of any vendor that gives each transaction another server session: the
    backend pid changes, and run and check refuse with exit 2 before any change."""
    from tests.conftest import TEST_PASSWORD
    from tests.pooler import TransactionPooler

    project.add("20240101000000_create_items.sql", "create table public.items (id int);\n")
    pooler = TransactionPooler(pg_cluster.port, TEST_PASSWORD)
    try:
        url = pooler.url(project.db_url.rsplit("/", 1)[1].split("?")[0])
        for command in ("run", "check"):
            result = project.guard(command, "--database-url", url)
            assert result.code == 2, result.output
            assert "transaction-mode pooler" in result.stderr and "pids" in result.stderr
        assert project.history() == [] and not project.table_exists("public.items")
    finally:
        pooler.close()


# ------------------------------------------------------------------ files that are not files


def _project_file(project: Project, name: str) -> Path:
    return project.migrations / name


@pytest.mark.parametrize("make, message", [
    (lambda p: os.symlink("/dev/zero", p), "outside the project"),
    (lambda p: os.mkfifo(p), "not a regular file (a FIFO)"),
    (lambda p: os.symlink("/etc/hostname", p), "outside the project"),
])
def test_migration_files_that_are_not_regular_files_are_refused(project: Project, make: object, message: str) -> None:
    path = _project_file(project, "20240101000000_odd.sql")
    make(path)  # type: ignore[operator]
    result = project.guard("run")
    assert result.code == 3, result.output
    assert "20240101000000_odd.sql" in result.stderr and message in result.stderr


def test_link_to_a_file_inside_the_project_is_fine(tmp_path: Path) -> None:
    shared = tmp_path / "shared.sql"
    shared.write_text("select 1;\n")
    folder = tmp_path / "supabase" / "migrations"
    folder.mkdir(parents=True)
    (folder / "20240101000000_linked.sql").symlink_to(shared)
    ref = discover(folder)[0]
    assert len(load(ref, display_root=tmp_path).statements) == 1
    with pytest.raises(MigrationFileError, match="outside the project"):
        load(ref, display_root=folder)


def test_oversized_file_is_refused_with_the_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import guard.migrations.files as files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 100)
    (tmp_path / "20240101000000_big.sql").write_text("select 1;\n" * 20)
    with pytest.raises(MigrationFileError, match="over the limit of 100 bytes"):
        load(discover(tmp_path)[0])


@pytest.mark.parametrize("breaker", [0, 1])
def test_transaction_all_names_a_deferred_violation_as_the_releases_not_the_last_files(ready: Project, breaker: int) -> None:
    """A deferred foreign key fires at the one transaction's end (as at psql -1's COMMIT): the
    first file or the second wrote the orphan, the third is only last. The report says so, names
    the constraint, and nothing is applied."""
    (ready.root / "guard.yml").write_text("migrations:\n  transaction: all\n")
    ready.add("20240301000000_parent.sql", "create table public.parent (id int primary key);\n"
              "create table public.child (pid int references public.parent deferrable initially deferred);\n"
              + ("insert into public.child values (7);\n" if breaker == 0 else ""))
    ready.add("20240302000000_more.sql", "insert into public.child values (8);\n" if breaker == 1 else "select 1;\n")
    ready.add("20240303000000_last.sql", "create table public.other (id int);\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert "at the end of the release's one transaction (transaction: all)" in result.output, result.output
    assert "constraint child_pid_fkey" in result.output and "any of the 3 files" in result.output
    assert not ready.table_exists("public.parent") and ready.history() == []
