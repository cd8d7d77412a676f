"""Inheritance and partitioning (issue #13): a statement on a parent without ONLY reaches the
tables below it. Every row destroyed is copied with its table's own columns and comes back
into its own table (checksum of every table, ONLY, before the run and after the restore)."""

from __future__ import annotations

import pytest

from tests.safety_support import data, restore, run_with_copies
from tests.support import Project

FAMILY = (
    "CREATE TABLE public.base (id int PRIMARY KEY, v text);"
    "CREATE TABLE public.kid (id int PRIMARY KEY, extra int NOT NULL) INHERITS (public.base);"
    "CREATE TABLE public.kid2 (id int PRIMARY KEY) INHERITS (public.base);"
    "CREATE TABLE public.grandkid (id int PRIMARY KEY, deep text) INHERITS (public.kid);"
    "INSERT INTO public.base SELECT g, 'b' || g FROM generate_series(1, 40) g;"
    "INSERT INTO public.kid SELECT g, 'k' || g, g * 10 FROM generate_series(41, 80) g;"
    "INSERT INTO public.kid2 SELECT g, 'q' || g FROM generate_series(81, 120) g;"
    "INSERT INTO public.grandkid SELECT g, 'g' || g, g, 'deep' || g FROM generate_series(121, 160) g;"
)
TABLES = ("public.base", "public.kid", "public.kid2", "public.grandkid")


@pytest.fixture
def family(ready: Project) -> Project:
    ready.query(FAMILY)
    return ready


def _each(project: Project) -> dict[str, str]:
    return {t: data(project, f"(SELECT * FROM ONLY {t})") if project.table_exists(t) else "<gone>" for t in TABLES}


def _round_trip(project: Project, sql: str) -> dict:  # type: ignore[type-arg]
    before = _each(project)
    report = run_with_copies(project, "20240101000000_family.sql", sql)
    assert _each(project) != before
    restore(project, report)
    assert _each(project) == before
    return report


@pytest.mark.parametrize("sql", [
    "delete from base where id % 3 = 0;\n",
    "delete from base;\n",
    "delete from base where id in (select id from base order by random() limit 25);\n",
    "delete from base as b where b.v like 'k%' or b.v like 'g%';\n",
    "with doomed as (select id from base where id % 4 = 0) delete from base b using doomed d where b.id = d.id;\n",
    "delete from kid where id % 2 = 0;\n",
    "update base set v = upper(v) where id % 5 = 0;\n",
    "update base set v = 'same for all';\n",
    "update kid set v = v || '!', extra = extra + 1 where id > 70;\n",
    "truncate base;\n",
    "truncate kid;\n",
    "truncate only base;\n",
    "delete from only base where id < 30;\n",
    "update only base set v = 'x';\n",
    "merge into base t using (select 1 as id) s on t.id = s.id when matched then delete;\n",
])
def test_a_family_is_copied_table_by_table_and_restored(family: Project, sql: str) -> None:
    _round_trip(family, sql)


def test_each_table_gets_its_own_copy(family: Project) -> None:
    report = _round_trip(family, "delete from base where id % 10 = 0;\n")
    rows = {c["source"]: c["rows"] for c in report["protective_copies"]}
    assert rows == {"public.base": 4, "public.kid": 4, "public.kid2": 4, "public.grandkid": 4}


def test_only_touches_no_child_and_copies_none(family: Project) -> None:
    report = _round_trip(family, "truncate only base;\n")
    assert [c["source"] for c in report["protective_copies"]] == ["public.base"]


def test_drop_cascade_of_a_parent_recreates_the_family(family: Project) -> None:
    whole = data(family, "public.base")
    _round_trip(family, "drop table base cascade;\n")
    assert data(family, "public.base") == whole  # the children are children again


def test_a_family_under_a_role_with_row_level_security(family: Project) -> None:
    family.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app NOLOGIN; END IF; END $$;"
        "GRANT SELECT, DELETE ON public.base, public.kid, public.kid2, public.grandkid TO app;"
        "ALTER TABLE public.kid ENABLE ROW LEVEL SECURITY;"
        "CREATE POLICY even ON public.kid TO app USING (id % 2 = 0)")
    report = _round_trip(family, "set role app;\ndelete from base where id % 3 = 0;\n")
    # Through the parent only the parent's policies apply: the role deleted 13 rows of kid, not
    # the 7 its own policy shows it; read on its own kid would show 7, so the copies are whole.
    assert {c["source"]: c["kind"] for c in report["protective_copies"]}["public.kid"] == "table"


def test_a_family_under_a_role_without_row_level_security_copies_rows(family: Project) -> None:
    family.query(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'app') THEN CREATE ROLE app NOLOGIN; END IF; END $$;"
        "GRANT SELECT, DELETE, UPDATE ON public.base, public.kid, public.kid2, public.grandkid TO app;")
    report = _round_trip(family, "set role app;\nupdate base set v = v || '.' where id % 3 = 0;\n")
    assert {c["source"]: c["rows"] for c in report["protective_copies"]} == {
        "public.base": 13, "public.kid": 13, "public.kid2": 14, "public.grandkid": 13}


def test_a_do_block_deleting_through_a_parent_is_rolled_back(family: Project) -> None:
    before = _each(family)
    family.add("20240101000000_family.sql", "do $$ begin delete from base where id > 100; end $$;\n")
    result = family.guard("run")
    assert result.code == 1, result.output
    assert "deleted 40 row(s) of public.grandkid" in result.output
    assert _each(family) == before


PARTITIONED = (
    "CREATE TABLE public.events (id int, at date, v text, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);"
    "CREATE TABLE public.events_a PARTITION OF public.events FOR VALUES FROM ('2024-01-01') TO ('2024-07-01');"
    "CREATE TABLE public.events_b PARTITION OF public.events FOR VALUES FROM ('2024-07-01') TO ('2025-01-01')"
    "  PARTITION BY RANGE (at);"
    "CREATE TABLE public.events_b1 PARTITION OF public.events_b DEFAULT;"
    "INSERT INTO public.events SELECT g, date '2024-01-01' + g, 'v' || g FROM generate_series(1, 300) g;"
)
PARTS = ("public.events_a", "public.events_b1")


@pytest.mark.parametrize("sql", [
    "truncate events;\n",
    "truncate events_b;\n",
    "delete from events where id % 9 = 0;\n",
    "delete from events_b1 where id > 250;\n",
    "update events set v = 'w' || id where id % 4 = 0;\n",
    "drop table events_a;\n",
    "merge into events t using (select 5 as id) s on t.id = s.id when matched then delete;\n",
])
def test_partitioned_tables_are_copied_exactly(ready: Project, sql: str) -> None:
    ready.query(PARTITIONED)
    before = {t: data(ready, t) for t in PARTS}
    restore(ready, run_with_copies(ready, "20240101000000_parts.sql", sql))
    assert {t: data(ready, t) for t in PARTS} == before


def test_a_dropped_partition_comes_back_as_a_partition(ready: Project) -> None:
    ready.query(PARTITIONED)
    before = data(ready, "public.events")
    ready.add("20240101000000_parts.sql", "drop table events_a;\n")
    result = ready.guard("run")
    assert result.code == 0 and result.report is not None, result.output
    restore(ready, result.report)
    assert data(ready, "public.events") == before
    assert ready.query("SELECT relispartition FROM pg_class WHERE oid = 'public.events_a'::regclass")[0][0] is True


def test_detach_destroys_nothing_and_needs_no_copy(ready: Project) -> None:
    ready.query(PARTITIONED)
    before = data(ready, "public.events_a")
    ready.add("20240101000000_parts.sql", "alter table events detach partition events_a;\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and not result.report["protective_copies"]
    assert data(ready, "public.events_a") == before
