"""`guard check --shadow` with the lock trace on hostile input: tables made-up rows cannot
satisfy, many tables, generated columns, names needing quotes or carrying Markdown, statements
that fail only with rows or run long. Never a traceback, a hang or state left behind."""

from __future__ import annotations

from tests.conftest import Project
from tests.test_lint_trace import scratch_url  # noqa: F401 - the fixture

HOSTILE_BASE = """
create table public."we|ird`**x**<b>[a](http://e.test)" (id int primary key, "n|ote" text);
create table public.neg (id int primary key, n int not null check (n < 0), email text check (email like '%@%'));
create table public.parent (id int primary key);
create table public.child (id int primary key, parent_id int not null references public.parent (id),
                           total numeric generated always as (id * 2) stored);
create table public.trig (id int primary key);
create function public.refuse() returns trigger language plpgsql as $$ begin raise exception 'no rows'; end $$;
create trigger refuse before insert on public.trig for each row execute function public.refuse();
""" + "".join(f"create table public.many_{n} (id int, note text);\n" for n in range(60))


def test_check_shadow_trace_survives_hostile_tables(ready: Project, scratch_url: str) -> None:  # noqa: F811
    ready.add("20240101000000_base.sql", HOSTILE_BASE)
    assert ready.guard("run", "--reason", "base").code == 0
    ready.add("20240102000000_a.sql",
              'alter table public."we|ird`**x**<b>[a](http://e.test)" alter column "n|ote" set not null;\n'
              "alter table public.neg add column c int default 1;\n"
              "create index on public.child (parent_id);\n"
              "alter table public.trig add column t text;\n"
              + "".join(f"alter table public.many_{n} add column k int;\n" for n in range(60)))
    ready.add("20240103000000_b.sql", "create unique index on public.neg (n);\n"
                                      "select pg_sleep(0.2);\n")
    summary = ready.root / "summary.md"
    result = ready.guard("check", "--shadow", scratch_url, "--summary", str(summary))
    assert "Traceback" not in result.output, result.output
    assert result.code in (0, 3), result.output
    assert result.report is not None
    rows = result.report["shadow"]["trace"]
    assert rows and all(r["verdict"] != "failed" for r in rows), [r for r in rows if r["verdict"] == "failed"]
    markdown = summary.read_text()
    trace = markdown[markdown.index("### Lock trace on the shadow"):].split("\n\n")[1].splitlines()
    weird = [line for line in trace if "ird" in line]
    assert weird, markdown
    for line in weird:  # the name stays inside code spans: it cannot end the cell, link, embolden or inject HTML
        cells = [c for c in line.split(" | ")]
        assert len(cells) == 6, line
        for cell in (c for c in cells if "ird" in c):
            assert cell.startswith("`` ") and cell.endswith(" ``"), line
            assert 'public."we\\|ird`**x**<b>[a](http://e.test)"' in cell, line
    # the many tables: seeded up to guard.lint.seed.MAX_TABLES, the rest traced empty, nothing failed
    assert ready.history() == ["20240101000000"]
    assert ready.query('SELECT count(*) FROM public."we|ird`**x**<b>[a](http://e.test)"') == [(0,)]


def test_check_shadow_trace_of_a_slow_file_ends_within_the_statement_timeout(ready: Project,
                                                                             scratch_url: str) -> None:  # noqa: F811
    ready.add("20240101000000_slow.sql", "create table public.t (id int);\nselect pg_sleep(60);\n")
    result = ready.guard("check", "--shadow", scratch_url, GUARD_MIGRATIONS_STATEMENT_TIMEOUT="1s")
    assert "Traceback" not in result.output, result.output
    assert result.report is not None and result.code != 0
    rows = result.report["shadow"]["trace"]
    slow = [r for r in rows if "pg_sleep" in r["statement"]]
    assert slow and slow[0]["verdict"] == "failed" and "timeout" in slow[0]["error"], rows
