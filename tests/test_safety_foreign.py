"""Foreign tables (issue #13): their rows live on another server, where the tripwire sees
nothing, so a DELETE, UPDATE, TRUNCATE or MERGE of one is copied by the parser layer like a
table's, and restored through it. The remote server here is the test's own database, reached
over a loopback postgres_fdw connection (as a real one would be)."""

from __future__ import annotations

from urllib.parse import urlparse

import pytest

from tests.safety_support import data, restore
from tests.support import Project


@pytest.fixture
def remote(ready: Project) -> Project:
    url = urlparse(ready.db_url)
    ready.query(
        "CREATE TABLE public.items (id int PRIMARY KEY, v text, price numeric);"
        "INSERT INTO public.items SELECT g, 'v' || g, g * 1.5 FROM generate_series(1, 80) g;"
        "CREATE EXTENSION postgres_fdw;"
        f"CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '{url.hostname}', "
        f"port '{url.port}', dbname '{url.path[1:]}');"
        f"CREATE USER MAPPING FOR CURRENT_USER SERVER loop OPTIONS (user '{url.username}', "
        f"password '{url.password or ''}');"
        "CREATE FOREIGN TABLE public.far (id int, v text, price numeric) SERVER loop OPTIONS (table_name 'items');")
    return ready


@pytest.mark.parametrize(("sql", "kind"), [
    ("delete from far where id % 4 = 0;\n", "rows"),
    ("delete from far where id in (select id from far order by random() limit 6);\n", "rows"),
    ("update far set price = 0 where id < 30;\n", "table"),
    ("truncate far;\n", "table"),
])
def test_a_foreign_table_is_copied_and_restored(remote: Project, sql: str, kind: str) -> None:
    before = data(remote, "public.items")
    remote.add("20240101000000_far.sql", sql)
    result = remote.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None
    copies = result.report["protective_copies"]
    assert [(c["source"], c["kind"]) for c in copies] == [("public.far", kind)], result.output
    assert data(remote, "public.items") != before
    restore(remote, result.report)
    assert data(remote, "public.items") == before
