"""The risk linter: each rule fires where it should and nowhere else, at the right line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from guard.errors import ConfigError
from guard.lint import RULES, LintConfig, Linter, lint_paths
from guard.lint import render as lint_render
from guard.migrations.files import MigrationRef, load
from tests.support import Project

# (rule, SQL that must trigger it, a close SQL that must not)
CASES = [
    ("drop-table", "drop table public.items;", "drop view public.items_v;"),
    ("drop-schema", "drop schema archive cascade;", "create schema archive;"),
    ("drop-column", "alter table public.items drop column note;", "alter table public.items add column note text;"),
    ("drop-type", "drop type mood;", "create type mood as enum ('ok');"),
    ("drop-function", "drop function f();", "create or replace function f() returns int language sql as $$ select 1 $$;"),
    ("truncate", "truncate public.items cascade;", "select count(*) from public.items;"),
    ("delete-without-where", "delete from public.items;", "delete from public.items where id = 1;"),
    ("update-without-where", "update public.items set note = '';", "update public.items set note = '' where id = 1;"),
    ("upsert", "insert into public.items (id) values (1) on conflict (id) do update set note = '';",
     "insert into public.items (id) values (1) on conflict (id) do nothing;"),
    ("alter-column-type", "alter table public.items alter column note type varchar(10);",
     "alter table public.items alter column note set default '';"),
    ("rename", "alter table public.items rename column note to remark;", "alter table public.items rename constraint c to d;"),
    ("create-index", "create index on public.items (note);", "create index concurrently on public.items (note);"),
    ("add-foreign-key", "alter table public.items add constraint fk foreign key (owner) references public.users (id);",
     "alter table public.items add constraint fk foreign key (owner) references public.users (id) not valid;"),
    ("add-check", "alter table public.items add constraint ck check (id > 0);",
     "alter table public.items add constraint ck check (id > 0) not valid;"),
    ("add-unique", "alter table public.items add primary key (id);",
     "alter table public.items add constraint uq unique using index items_id_idx;"),
    ("set-not-null", "alter table public.items alter column note set not null;",
     "alter table public.items alter column note drop not null;"),
    ("volatile-default", "alter table public.items add column token uuid default gen_random_uuid();",
     "alter table public.items add column flag boolean default false;"),
    ("vacuum-full", "vacuum full public.items;", "analyze public.items;"),
    ("reindex", "reindex table public.items;", "reindex table concurrently public.items;"),
    ("concurrently", "create index concurrently on public.items (note);", "create index on public.fresh (id);"),
    ("vacuum", "vacuum public.items;", "analyze public.items;"),
    ("database-level", "alter system set work_mem = '64MB';", "set work_mem = '64MB';"),
    ("transaction-control", "begin;", "select 1;"),
    ("drop-materialized-view", "drop materialized view reporting.daily_totals;", "drop view reporting.daily_v;"),
    ("drop-view", "drop view reporting.daily_v;", "create or replace view reporting.daily_v as select 1;"),
    ("drop-cascade", "drop type mood cascade;", "drop type mood;"),
    ("drop-owned", "drop owned by app_owner;", "reassign owned by app_owner to postgres;"),
    ("drop-extension", "drop extension pg_cron;", "create extension if not exists pg_cron;"),
    ("merge", "merge into public.items t using public.staging s on t.id = s.id when matched then delete;",
     "merge into public.items t using public.staging s on t.id = s.id when not matched then insert values (s.id);"),
    ("validate-same-transaction",
     "alter table public.items add constraint fk foreign key (owner) references public.users (id) not valid;\n"
     "alter table public.items validate constraint fk;",
     "alter table public.items validate constraint fk;"),
    ("scan-under-lock", "alter table public.items add column flag int;\n"
     "update public.items set flag = 0 where flag is null;",
     "alter table public.items add column flag int;\nupdate public.items set flag = 0 where id in (1, 2);"),
    ("alter-domain-check", "alter domain positive add constraint p check (value > 0);",
     "alter domain positive add constraint p check (value > 0) not valid;"),
    ("table-rewrite", "alter table public.items set logged;", "alter table public.items set (fillfactor = 90);"),
    ("attach-partition", "alter table public.m attach partition public.m_2024 for values from (1) to (2);",
     "alter table public.m attach partition public.fresh for values from (1) to (2);"),
    ("refresh-materialized-view", "refresh materialized view public.totals;",
     "refresh materialized view concurrently public.totals;"),
    ("non-transactional", "alter subscription s refresh publication;", "alter subscription s disable;"),
    ("effect-unknown", "do $$ begin perform 1; end $$;", "select set_config('search_path', 'public', false);"),
    ("lock-table", "lock public.items;", "lock table public.items in row exclusive mode;"),
    ("sequence-restart", "alter sequence public.items_id_seq restart with 1;",
     "select setval('public.items_id_seq', (select max(id) from public.items));"),
    ("row-security-no-policy", "alter table public.items enable row level security;",
     "alter table public.items enable row level security;\ncreate policy p on public.items using (true);"),
    ("triggers-disabled", "alter table public.items disable trigger all;",
     "alter table public.items disable trigger user;"),
    ("add-required-column", "alter table public.items add column kind text not null;",
     "alter table public.items add column kind text not null default 'x';"),
]


def _lint(tmp_path: Path, sql: str, *, server_major: int | None = 16, config: LintConfig | None = None,
          existing: bool = True) -> list:  # type: ignore[type-arg]
    path = tmp_path / "20240101000000_case.sql"
    path.write_text("create table public.fresh (id int);\n" + sql + "\n")
    return lint_paths([path], display_root=tmp_path, server_major=server_major, config=config,
                      existing_tables=(lambda name: existing and "fresh" not in name))


@pytest.mark.parametrize(("rule", "positive", "negative"), CASES, ids=[c[0] for c in CASES])
def test_rule_fires_on_the_risky_form_only(tmp_path: Path, rule: str, positive: str, negative: str) -> None:
    hits = [f for f in _lint(tmp_path, positive) if f.rule == rule]
    assert hits, f"{rule} missed: {positive}"
    assert hits[0].line >= 2 and hits[0].category == RULES[rule].category
    assert not [f for f in _lint(tmp_path, negative) if f.rule == rule], f"{rule} fired on: {negative}"


def test_every_rule_has_a_case_or_is_structural() -> None:
    covered = {c[0] for c in CASES} | {"syntax", "pragma", "drop-database", "enum-add-value", "trace",
                                        "trace-unconfirmed"}
    assert covered == set(RULES)


def test_bodies_and_strings_are_not_statements(tmp_path: Path) -> None:
    sql = (
        "create function purge() returns void language plpgsql as $body$\n"
        "begin drop table public.items; delete from public.items; end $body$;\n"
        "do $$ begin execute 'truncate public.items'; end $$;\n"
        "/* drop table public.items; /* nested */ still a comment */\n"
        "-- delete from public.items;\n"
        "insert into public.items (note) values (E'drop table x; \\' delete from y;');\n"
    )
    # The function body is never run by the file: nothing. The DO block runs its EXECUTE of a
    # literal: judged as that statement (a warning: the tripwire watches the block).
    found = [(f.rule, f.line, f.severity) for f in _lint(tmp_path, sql)]
    assert found == [("effect-unknown", 4, "info"), ("truncate", 4, "warning")]


def test_mixed_file_findings_at_their_lines(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_mixed.sql"
    path.write_text(
        "-- a release\n"
        "create table public.orders (id int primary key, total int);\n"
        "create index orders_total on public.orders (total);\n"   # new table: fine
        "\n"
        "alter table public.items\n"
        "  drop column legacy;\n"                                   # line 5
        "create index items_note on public.items (note);\n"       # line 7
        "update public.items\n"
        "   set note = null;\n"                                    # line 8
    )
    findings = lint_paths([path], display_root=tmp_path, server_major=15,
                          existing_tables=lambda name: "orders" not in name)
    assert [(f.line, f.rule) for f in findings] == [
        (5, "drop-column"), (7, "create-index"), (8, "update-without-where"), (8, "scan-under-lock")]
    assert all(f.file == "20240101000000_mixed.sql" for f in findings)


def test_safe_file_has_no_findings(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_safe.sql"
    path.write_text(
        "create table public.t (id bigint generated always as identity primary key, note text);\n"
        "create index on public.t (note);\n"
        "alter table public.items add column note2 text;\n"
        "alter table public.items add constraint fk foreign key (owner) references public.users (id) not valid;\n"
        "alter table public.items validate constraint fk;\n"
        "create index concurrently if not exists i2 on public.items (note2);\n"
        "grant select on public.t to authenticated;\n"
    )
    findings = lint_paths([path], display_root=tmp_path, server_major=16,
                          existing_tables=lambda name: name not in ("public.t", "t"))
    assert [f.rule for f in findings if f.severity != "warning"] == []
    assert {f.rule for f in findings} <= {"concurrently"}


def test_pragmas_accept_with_a_reason_and_reject_unknown_rules(tmp_path: Path) -> None:
    findings = _lint(tmp_path, "-- guard:allow drop-table replaced by items_v2\ndrop table public.items;")
    assert findings[0].accepted == "replaced by items_v2" and findings[0].severity == "info"
    inline = _lint(tmp_path, "truncate public.items; -- guard:allow truncate staging only")
    assert inline[0].accepted == "staging only"
    bad = _lint(tmp_path, "-- guard:allow drop-tabel typo\ndrop table public.items;")
    assert {f.rule for f in bad} == {"pragma", "drop-table"}
    assert next(f for f in bad if f.rule == "drop-table").accepted is None
    no_reason = _lint(tmp_path, "-- guard:allow drop-table\ndrop table public.items;")
    assert any(f.rule == "pragma" and "needs a reason" in f.message for f in no_reason)


def test_server_version_matters(tmp_path: Path) -> None:
    default_zero = "alter table public.items add column n int default 0;"
    assert not _lint(tmp_path, default_zero, server_major=11)
    assert [f.rule for f in _lint(tmp_path, default_zero, server_major=10)] == ["volatile-default"]
    add_value = "alter type mood add value 'meh';"
    assert [f.rule for f in _lint(tmp_path, add_value, server_major=11)] == ["enum-add-value"]
    assert not _lint(tmp_path, add_value, server_major=12)


def test_tables_created_earlier_in_the_batch_are_new(tmp_path: Path) -> None:
    first = tmp_path / "20240101000000_a.sql"
    second = tmp_path / "20240102000000_b.sql"
    first.write_text("create table public.events (id int);\n")
    second.write_text("create index on public.events (id);\nalter table public.events alter column id set not null;\n")
    findings = lint_paths([first, second], display_root=tmp_path, existing_tables=lambda name: False)
    assert findings == []


def test_config_disables_and_changes_severity(tmp_path: Path) -> None:
    config = LintConfig(disabled=frozenset({"create-index"}), severity={"drop-column": "warning"})
    findings = _lint(tmp_path, "create index on public.items (note);\nalter table public.items drop column x;",
                     config=config)
    assert [(f.rule, f.severity) for f in findings] == [("drop-column", "warning")]
    with pytest.raises(ConfigError):
        LintConfig(disabled=frozenset({"no-such-rule"})).validate()


def test_syntax_error_is_a_finding_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_typo.sql"
    path.write_text("select 1;\n\ncreate tabel x (id int);\n")
    findings = lint_paths([path], display_root=tmp_path)
    assert [(f.rule, f.line, f.severity) for f in findings] == [("syntax", 3, "error")]


def test_renderers(tmp_path: Path) -> None:
    findings = _lint(tmp_path, "drop table public.items;")
    assert "20240101000000_case.sql:2:1: error drop-table:" in lint_render.text(findings)
    data = json.loads(lint_render.as_json(findings))
    assert {"file", "line", "column", "rule", "category", "severity", "message"} <= set(data[0])
    gh = lint_render.github(findings)
    assert gh.startswith("::error file=20240101000000_case.sql,line=2,col=1,title=guard drop-table::")
    from guard.report.github import annotation
    assert annotation("error", "50% done\nnext", file="a,b:c.sql") == "::error file=a%2Cb%3Ac.sql::50%25 done%0Anext"


def test_linter_reads_the_statement_kinds_of_a_loaded_file(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_x.sql"
    path.write_text("truncate public.items;\n")
    file = load(MigrationRef("20240101000000", "x", path))
    assert [f.rule for f in Linter(existing_tables=lambda n: True).lint_file(file, display="x.sql")] == ["truncate"]


# ------------------------------------------------------------------ through the CLI and the run


def test_guard_lint_cli_exit_codes_and_formats(project: Project) -> None:
    project.add("20240101000000_ok.sql", "create table public.t (id int);\n")
    ok = project.guard("lint", "--database-url", "")
    assert ok.code == 0, ok.output
    project.add("20240102000000_bad.sql", "create table public.u (id int);\ndelete from public.legacy;\n")
    bad = project.guard("lint", "--format", "json", "--database-url", "")
    assert bad.code == 3
    assert json.loads(bad.stdout)[0]["rule"] == "delete-without-where"
    gh = project.guard("lint", "--format", "github", "supabase/migrations/20240102000000_bad.sql")
    assert "::error file=supabase/migrations/20240102000000_bad.sql,line=2" in gh.stdout
    missing = project.guard("lint", "nope.sql")
    assert missing.code == 2


def test_guard_lint_defaults_to_pending_files_with_a_database(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.items (id int, note text);\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_b.sql", "create index on public.items (note);\n")
    result = ready.guard("lint")
    assert result.code == 0
    assert "20240102000000_b.sql:1:1: warning create-index" in result.stdout
    assert "20240101000000_a.sql" not in result.stdout


def test_run_reports_transaction_control_and_applies_it_as_psql(ready: Project) -> None:
    # A file's own BEGIN/COMMIT is a finding, not a block (issue 14 item 2).
    ready.add("20240101000000_a.sql", "begin;\ncreate table public.t (id int);\ncommit;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["findings"][0]["rule"] == "transaction-control"
    assert ready.history() == ["20240101000000"] and ready.table_exists("public.t")


def test_concurrent_index_file_runs_outside_a_transaction(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.items (id int, note text);\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_idx.sql", "create index concurrently items_note on public.items (note);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("SELECT indisvalid FROM pg_index WHERE indexrelid = 'public.items_note'::regclass") == [(True,)]
    assert result.report is not None and result.report["findings"][0]["rule"] == "concurrently"


def test_failure_outside_a_transaction_after_a_statement_is_exit_4(ready: Project) -> None:
    ready.add("20240101000000_a.sql", "create table public.items (id int, note text);\n")
    assert ready.guard("run").code == 0
    ready.add("20240102000000_idx.sql",
              "create index concurrently items_note on public.items (note);\nselect 1/0;\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None and result.report["database_changed"] is True
    assert ready.history() == ["20240101000000"]
    assert ready.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'items_note'") == [(1,)]


def test_docs_list_every_rule_with_its_lock_and_source() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "lint.md").read_text()
    rows = {line.split("|")[1].strip().strip("`"): line for line in doc.splitlines() if line.startswith("| `")}
    assert set(rows) == set(RULES)
    for rule, row in rows.items():
        cells = [c.strip() for c in row.split("|")[1:-1]]
        assert cells[1] == RULES[rule].category and cells[2] == RULES[rule].severity and cells[3] and cells[4], row


def test_set_not_null_after_a_validated_not_null_check_is_no_scan(tmp_path: Path) -> None:
    files = [
        ("20240101000000_a.sql", "alter table public.items add constraint note_nn check (note is not null) not valid;\n"),
        ("20240102000000_b.sql", "alter table public.items validate constraint note_nn;\n"),
        ("20240103000000_c.sql", "alter table public.items alter column note set not null;\n"
                                 "alter table public.items alter column other set not null;\n"),
    ]
    paths = []
    for name, sql in files:
        (tmp_path / name).write_text(sql)
        paths.append(tmp_path / name)
    findings = lint_paths(paths, display_root=tmp_path, server_major=15)
    assert [(f.file, f.line, f.rule) for f in findings] == [("20240103000000_c.sql", 2, "set-not-null")]
    # before PostgreSQL 12 the CHECK does not spare the scan
    old = lint_paths(paths, display_root=tmp_path, server_major=11)
    assert [(f.line, f.rule) for f in old] == [(1, "set-not-null"), (2, "set-not-null")]
    # still NOT VALID: no proof yet
    unproven = lint_paths([paths[0], paths[2]], display_root=tmp_path, server_major=15)
    assert [(f.line, f.rule) for f in unproven] == [(1, "set-not-null"), (2, "set-not-null")]


EARLIER = """
create domain public.positive_qty as int check (value > 0);
create domain public.plain_code as text;
create function public.slugify(t text) returns text language sql immutable as $$ select lower(t) $$;
create table public.prices (id int primary key, label varchar(20), amount numeric(10,2), qty public.positive_qty,
                            code public.plain_code, nn int not null, maybe int);
create unique index prices_nn_key on public.prices (nn);
create unique index prices_maybe_key on public.prices (maybe);
alter table public.prices add constraint label_present check (label is not null) not valid;
alter table public.prices validate constraint label_present;
alter table public.prices add constraint amount_present check (amount is not null) not valid;
create table public.gone (id int, note varchar(5));
drop table public.gone;
create table public.m (id int, ts date) partition by range (ts);
create table public.m_2023 (id int, ts date, constraint y check (ts is not null and ts >= '2023-01-01'
                                                                 and ts < '2024-01-01'));
create table public.m_weak (id int, ts date, constraint y check (ts >= '2023-01-01' and ts < '2024-01-01'));
create table public.m_later (id int, ts date);
alter table public.m_later add constraint y check (ts is not null and ts between '2023-01-01' and '2023-12-31') not valid;
"""
# (statement, whether it is risky given EARLIER): each judged from the declared schema alone
DECLARED = [
    ("alter table public.prices alter column label type varchar(50);", False),
    ("alter table public.prices alter column label type text;", False),
    ("alter table public.prices alter column label type varchar(10);", True),
    ("alter table public.prices alter column amount type numeric(12,2);", False),
    ("alter table public.prices alter column amount type numeric(12,4);", True),
    ("alter table public.prices alter column qty type int;", False),  # a domain to its base type
    ("alter table public.prices alter column label type int using length(label);", True),
    ("alter table public.prices alter column label set not null;", False),  # the validated CHECK proves it
    ("alter table public.prices alter column amount set not null;", True),  # its CHECK is still NOT VALID
    ("alter table public.prices alter column nn set not null;", False),
    ("alter table public.prices add column q public.positive_qty;", True),
    ("alter table public.prices add column c public.plain_code;", False),
    ("alter table public.prices add column slug text default public.slugify('x');", False),
    ("alter table public.prices add constraint pk primary key using index prices_nn_key;", False),
    ("alter table public.prices add constraint pk primary key using index prices_maybe_key;", True),
    ("create index if not exists prices_nn_key on public.prices (nn);", False),
    ("alter table public.prices set logged;", False),
    ("alter table public.prices set unlogged;", True),
    ("alter table public.prices set tablespace pg_default;", False),
    ("alter table public.gone alter column note type varchar(10);", True),  # dropped: unknown again
    ("alter table public.other alter column note type text;", True),  # never declared: unknown
    # ATTACH PARTITION: PostgreSQL skips the scan when the valid CHECK proves the bound, IS NOT NULL included
    ("alter table public.m attach partition public.m_2023 for values from ('2023-01-01') to ('2024-01-01');", False),
    ("alter table public.m attach partition public.m_2023 for values from ('2023-02-01') to ('2024-01-01');", True),
    ("alter table public.m attach partition public.m_weak for values from ('2023-01-01') to ('2024-01-01');", True),
    ("alter table public.m attach partition public.m_later for values from ('2023-01-01') to ('2024-01-01');", True),
    ("alter table public.m_later validate constraint y;\n"
     "alter table public.m attach partition public.m_later for values from ('2023-01-01') to ('2024-01-01');", False),
]


@pytest.mark.parametrize(("statement", "risky"), DECLARED, ids=[s[:60] for s, _ in DECLARED])
def test_a_file_is_judged_against_what_the_earlier_files_declare(tmp_path: Path, statement: str, risky: bool) -> None:
    earlier = tmp_path / "20240101000000_schema.sql"
    earlier.write_text(EARLIER)
    path = tmp_path / "20240102000000_change.sql"
    path.write_text(statement + "\n")
    flagged = [f for f in lint_paths([path], display_root=tmp_path, context=[earlier])
               if f.category in ("locking", "destructive")]
    assert bool(flagged) == risky, (statement, flagged)
    alone = [f for f in lint_paths([path], display_root=tmp_path) if f.category in ("locking", "destructive")]
    if "positive_qty" not in statement:  # without the declarations: the conservative verdict
        assert alone or not risky, statement


def test_guard_lint_of_one_file_reads_the_files_before_it_in_its_folder(project: Project) -> None:
    project.add("20240101000000_schema.sql", EARLIER)
    project.add("20240102000000_change.sql", "alter table public.prices alter column label type text;\n"
                                             "alter table public.prices alter column amount set not null;\n")
    project.add("20240103000000_later.sql", "alter table public.prices alter column amount type text;\n")
    result = project.guard("lint", "--format", "json", "--database-url", "",
                           "supabase/migrations/20240102000000_change.sql")
    findings = json.loads(result.stdout)
    # the earlier file declares label varchar(20) (text keeps the values) and amount's NOT VALID CHECK;
    # the later file is neither linted nor read
    assert [(f["line"], f["rule"]) for f in findings] == [(2, "set-not-null")], findings


def test_a_verdict_the_lint_cannot_check_says_it_is_assumed(tmp_path: Path) -> None:
    path = tmp_path / "20240102000000_change.sql"
    path.write_text("alter table public.prices alter column label type text;\n")
    alone = [f for f in lint_paths([path], display_root=tmp_path) if f.rule == "alter-column-type"]
    assert len(alone) == 1 and "assumed: guard cannot see public.prices" in alone[0].message
    earlier = tmp_path / "20240101000000_schema.sql"
    earlier.write_text("create table public.prices (id int, label int);\n")
    known = [f for f in lint_paths([path], display_root=tmp_path, context=[earlier]) if f.rule == "alter-column-type"]
    assert len(known) == 1 and "assumed" not in known[0].message  # int -> text: a real rewrite


DYNAMIC = """do $$ declare t text; begin
  select relname into t from pg_class limit 1;
  execute format('drop table %I', t);
  execute 'alter table public.orders add column k uuid default ' || 'gen_random_uuid()';
  execute format('delete from public.%I where id = %s', t, 5);
  execute t;
end $$;
"""


def test_sql_a_do_block_builds_is_judged_as_far_as_its_constants_go(tmp_path: Path) -> None:
    path = tmp_path / "20240101000000_dyn.sql"
    path.write_text(DYNAMIC)
    found = {f.rule: f for f in lint_paths([path], display_root=tmp_path)}
    assert set(found) == {"effect-unknown", "drop-table", "volatile-default"}, found
    assert found["drop-table"].category == "destructive" and found["drop-table"].severity == "warning"
    assert "SQL built at run time" in found["drop-table"].message and "<run-time name>" in found["drop-table"].message
    # the concatenation of constants is known in full: no run-time name
    assert "run time" not in found["volatile-default"].message and "public.orders" in found["volatile-default"].message
