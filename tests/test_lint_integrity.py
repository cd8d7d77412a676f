"""LOCK TABLE, sequences moved back, row security without a policy, foreign keys switched off and
required columns: through the CLI, with the migration set and with a database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from guard.lint import lint_paths
from tests.support import Project, clean_env, run_guard

SCHEMA = (
    "create table public.tickets (id bigserial primary key, title text);\n"
    "create table public.authors (id int primary key);\n"
    "create table public.books (id int primary key, author_id int references public.authors (id));\n"
    "create table public.memos (id int primary key);\n"
    "create policy memos_read on public.memos for select using (true);\n"
    "create table public.events (id int);\n"
    "create sequence public.spare_seq;\n"
)


@pytest.fixture
def scratch_url(db_url: str) -> Iterator[str]:
    """A second, empty database on the test cluster: the shadow `guard check --shadow` runs on."""
    base, name = db_url.rsplit("/", 1)
    scratch = f"{name}_integrity"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(scratch)))
    yield f"{base}/{scratch}"
    with psycopg.connect(f"{base}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(scratch)))


def _json(project: Project, *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = project.guard("lint", "--format", "json", *args)
    assert result.code in (0, 3), result.output
    return result.code, json.loads(result.stdout)


def test_each_rule_names_the_statement_its_lock_and_what_to_do(project: Project) -> None:
    project.add("20240101000000_schema.sql", SCHEMA)
    project.add("20240102000000_risky.sql",
                "lock table only public.tickets, public.events in share mode nowait;\n"
                "alter sequence public.tickets_id_seq restart with 1;\n"
                "select pg_catalog.setval('public.tickets_id_seq'::regclass, 5, false);\n"
                "alter table public.events enable row level security;\n"
                "alter table public.books disable trigger all;\n"
                "set local session_replication_role to 'replica';\n"
                "alter table public.events add column kind text not null;\n")
    code, found = _json(project, "--database-url", "", "supabase/migrations/20240102000000_risky.sql")
    assert code == 0  # warnings: the run goes on, the reviewer reads them
    by_line = {(f["line"], f["rule"]): f for f in found}
    assert sorted((f["line"], f["rule"]) for f in found) == [
        (1, "lock-table"), (1, "lock-table"), (2, "sequence-restart"), (3, "sequence-restart"),
        (4, "row-security-no-policy"), (5, "triggers-disabled"), (6, "triggers-disabled"), (7, "add-required-column")]
    locks = [f for f in found if f["rule"] == "lock-table"]
    assert {f["message"].split(" takes")[0] for f in locks} == {"LOCK ONLY public.tickets", "LOCK public.events"}
    assert all("SHARE" in f["message"] and "until the file's transaction ends" in f["message"] for f in locks)
    assert "ACCESS EXCLUSIVE" in by_line[(4, "row-security-no-policy")]["message"]
    assert "SHARE ROW EXCLUSIVE" in by_line[(5, "triggers-disabled")]["message"]
    assert "duplicate key" in by_line[(2, "sequence-restart")]["message"]
    assert all(f["alternative"] and f["category"] in ("locking", "breaking") for f in found)
    # the sequence nothing draws from, a table whose policy the schema declares, a table with no
    # foreign key on either side: the migration set shows nothing breaks
    project.add("20240102000000_risky.sql",
                "alter sequence public.spare_seq restart with 1;\n"
                "alter table public.memos enable row level security;\n"
                "alter table public.events disable trigger all;\n"
                "select setval('public.tickets_id_seq', (select max(id) from public.tickets));\n"
                "set session_replication_role = origin;\n"
                "lock table public.tickets in row exclusive mode;\n")
    code, found = _json(project, "--database-url", "", "supabase/migrations/20240102000000_risky.sql")
    assert found == []


def test_pragmas_accept_the_new_rules(project: Project) -> None:
    project.add("20240101000000_schema.sql", SCHEMA)
    project.add("20240102000000_ok.sql",
                "-- guard:allow lock-table a one-row table, nobody writes it at deploy time\n"
                "lock public.events;\n"
                "alter sequence public.tickets_id_seq restart; -- guard:allow sequence-restart table emptied first\n")
    code, found = _json(project, "--database-url", "", "supabase/migrations/20240102000000_ok.sql")
    assert code == 0
    assert [(f["rule"], f["severity"], f["accepted"]) for f in found] == [
        ("lock-table", "info", "a one-row table, nobody writes it at deploy time"),
        ("sequence-restart", "info", "table emptied first")]


def test_a_policy_counts_in_the_same_file_or_before_not_in_a_later_file(tmp_path: Path) -> None:
    def lint(*files: str) -> list[tuple[str, int]]:
        paths = []
        for n, text in enumerate(files):
            path = tmp_path / f"2024010{n + 1}000000_f.sql"
            path.write_text(text)
            paths.append(path)
        return [(f.rule, f.line) for f in lint_paths(paths, display_root=tmp_path, existing_tables=lambda _: True)
                if f.rule == "row-security-no-policy"]

    enable = "alter table public.notes enable row level security;\n"
    policy = "create policy notes_own on public.notes using (true);\n"
    assert lint(enable + policy) == []  # one transaction: no reader sees the table without its policy
    assert lint(policy, enable) == []
    assert lint(enable, policy) == [("row-security-no-policy", 1)]  # committed between: rows hidden meanwhile
    assert lint("set search_path = app;\n" + enable.replace("public.", "") + policy) == [
        ("row-security-no-policy", 2)]  # app.notes has no policy; public.notes gets one
    assert lint("alter table public.notes enable row level security, force row level security;\n") == [
        ("row-security-no-policy", 1)]


def test_sql_inside_do_blocks_and_new_objects(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_f.sql"
    path.write_text(
        "create sequence public.fresh_seq;\n"
        "alter sequence public.fresh_seq restart with 1;\n"
        "select setval('public.fresh_seq', 1);\n"
        "create table public.fresh (id int);\n"
        "lock public.fresh;\n"
        "alter table public.fresh enable row level security, disable trigger all;\n"
        "alter table public.fresh add column k int not null;\n"
        "do $$ begin alter sequence public.old_seq restart; set session_replication_role = replica; end $$;\n")
    found = lint_paths([path], display_root=tmp_path, existing_tables=lambda name: "fresh" not in name)
    assert sorted((f.rule, f.line, f.severity) for f in found if f.category != "effect-unknown") == [
        ("sequence-restart", 8, "warning"), ("triggers-disabled", 8, "warning")]


def test_with_a_database_the_catalog_clears_what_cannot_break(ready: Project) -> None:
    ready.query(SCHEMA.replace("\n", " "))
    ready.query("insert into public.tickets (title) select 't' from generate_series(1, 50)")
    ready.query("alter table public.events enable row level security")
    ready.add("20240102000000_pending.sql",
              "alter sequence public.tickets_id_seq restart with 1000;\n"       # above every stored id
              "select setval('public.tickets_id_seq', 7);\n"                    # below id 50
              "alter sequence public.spare_seq restart;\n"                     # nothing draws from it
              "alter table public.events enable row level security;\n"          # already on
              "alter table public.memos enable row level security;\n"           # has a policy
              "alter table public.authors enable row level security;\n"         # no policy
              "alter table public.events disable trigger all;\n"               # no foreign key
              "alter table public.authors disable trigger all;\n")             # referenced by books
    code, found = _json(ready)
    assert code == 0
    assert [(f["line"], f["rule"]) for f in found] == [
        (2, "sequence-restart"), (6, "row-security-no-policy"), (8, "triggers-disabled")]


def test_lock_holds_through_the_file(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_f.sql"
    path.write_text("lock public.items in exclusive mode;\nupdate public.items set note = '';\n")
    found = lint_paths([path], display_root=tmp_path, existing_tables=lambda _: True)
    assert [f.rule for f in found] == ["lock-table", "update-without-where", "scan-under-lock"]
    assert "EXCLUSIVE on it" in found[2].message and "blocks its writes" in found[0].message


def test_forms_a_name_hides_in(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_f.sql"
    path.write_text(
        "select setval(pg_get_serial_sequence('public.t', 'id'), 1);\n"      # the sequence named at run time
        "select setval('s', max(id)) from public.t;\n"                       # computed: a resync
        "alter role authenticator set session_replication_role = replica;\n"
        "alter database postgres set session_replication_role to 'replica';\n"
        "set session_replication_role to default;\n"
        "reset session_replication_role;\n")
    found = lint_paths([path], display_root=tmp_path, existing_tables=lambda _: True)
    assert [(f.rule, f.line) for f in found] == [("sequence-restart", 1), ("triggers-disabled", 3),
                                                 ("triggers-disabled", 4)]
    assert found[0].message.startswith("setval(pg_get_serial_sequence('public.t', 'id'), 1)")


def test_check_on_a_shadow_confirms_an_explicit_lock_by_the_lock_it_holds(project: Project, scratch_url: str) -> None:
    """LOCK reads nothing: the shadow's trace confirms it by the lock the transaction then holds,
    not by a scan (no trace-unconfirmed finding); a LOCK in ROW EXCLUSIVE mode is no finding."""
    project.add("20240101000000_t.sql", "create table public.t (id int primary key);\n")
    project.add("20240102000000_lock.sql", "lock table public.t in access exclusive mode;\n"
                                           "lock table public.t in row exclusive mode;\n")
    result = run_guard("check", "--shadow", scratch_url, "--json", cwd=project.root, env=clean_env())
    assert result.code == 0, result.output
    report = json.loads(result.stdout)
    rows = [r for r in report["shadow"]["trace"] if r["file"].endswith("_lock.sql")]
    assert [(r["static"], r["verdict"], r["locks"]) for r in rows] == [
        (["lock-table"], "agrees", {"public.t": "ACCESS EXCLUSIVE"}), ([], "agrees", {"public.t": "ACCESS EXCLUSIVE"})]
    assert [f["rule"] for f in report["findings"] if f["file"].endswith("_lock.sql")] == ["lock-table"]


def test_a_sequence_a_function_draws_from_is_in_use(tmp_path: Path, db_conn: psycopg.Connection[Any]) -> None:
    """No column default names it, but a trigger function hands out its values: restarting it
    can collide, with the migration set as with a database (pg_proc.prosrc)."""
    from guard.lint.catalog import PgCatalog

    schema = ("create sequence public.order_no;\n"
              "create table public.orders (id int primary key, no bigint);\n")
    body = ("create function public.number_order() returns trigger language plpgsql as $$ begin "
            "new.no := nextval('public.order_no'); return new; end $$;\n")
    restart = "alter sequence public.order_no restart with 1;\n"
    first, second = tmp_path / "20240101000000_a.sql", tmp_path / "20240102000000_b.sql"

    def rules(catalog: PgCatalog | None = None) -> list[str]:
        return [f.rule for f in lint_paths([second], display_root=tmp_path, context=[first], catalog=catalog,
                                           existing_tables=catalog.exists if catalog else None)]

    first.write_text(schema)
    second.write_text(restart)
    assert rules() == []
    first.write_text(schema + body)
    assert rules() == ["sequence-restart"]
    db_conn.execute(schema)
    assert rules(PgCatalog(db_conn)) == []
    db_conn.execute(body)
    assert rules(PgCatalog(db_conn)) == ["sequence-restart"]


def test_a_lock_in_a_file_run_outside_a_transaction_fails_and_says_so(ready: Project) -> None:
    ready.query("create table public.items (id int, note text)")
    ready.add("20240102000000_idx.sql", "lock table public.items in share update exclusive mode;\n"
                                        "create index concurrently items_note on public.items (note);\n")
    lint = ready.guard("lint", "--format", "json")
    assert lint.code == 3, lint.output
    locks = [f for f in json.loads(lint.stdout) if f["rule"] == "lock-table"]
    assert [(f["line"], f["severity"]) for f in locks] == [(1, "error")] and "outside a transaction" in \
        locks[0]["message"]
    # an error: the run refuses the file before any statement of it ran
    run = ready.guard("run")
    assert run.code == 3 and ready.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'items_note'") == [(0,)]
