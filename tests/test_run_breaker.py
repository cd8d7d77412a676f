"""Inputs a breaker found against the guarded run: each is a migration psql applies (or a
database a real project has) that guard must apply as written, with the invariant kept (the
data before, the run, then the report's restore SQL gives the same data back)."""

from __future__ import annotations

import psycopg
import pytest

from tests.safety_support import DATA, data, restore, run_with_copies
from tests.support import Project

ITEMS = ("CREATE TABLE public.items (id int PRIMARY KEY, label text, deleted boolean NOT NULL DEFAULT false);"
         "INSERT INTO public.items (id, label) SELECT g, 'item ' || g FROM generate_series(1, 10) g;"
         "CREATE TABLE public.audit (id serial PRIMARY KEY, note text);")

# Rules on the table a DELETE or UPDATE names: PostgreSQL refuses a data-modifying WITH
# over them ("DO ALSO rules are not supported for data-modifying statements in WITH",
# "cannot perform DELETE RETURNING ... no unconditional ON DELETE DO INSTEAD rule with a
# RETURNING clause"), where psql runs the statement as written. Guard's rewrite into
# WITH ... RETURNING made such a file fail (exit 1) that psql applies.
RULES = {
    "soft delete (DO INSTEAD UPDATE)":
        "CREATE RULE soft AS ON DELETE TO public.items DO INSTEAD "
        "UPDATE public.items SET deleted = true WHERE id = OLD.id",
    "audit (DO ALSO INSERT)":
        "CREATE RULE audit AS ON DELETE TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('deleted ' || OLD.id)",
    "conditional DO INSTEAD NOTHING":
        "CREATE RULE keep_one AS ON DELETE TO public.items WHERE OLD.id = 1 DO INSTEAD NOTHING",
    "update audit (DO ALSO INSERT)":
        "CREATE RULE audit_upd AS ON UPDATE TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('updated ' || OLD.id)",
    # A rule on INSERT alone: the statement is rewritten as usual, but restore SQL cannot be
    # INSERT ... ON CONFLICT ("cannot be used with table that has INSERT or UPDATE rules").
    "insert audit (ON INSERT DO ALSO)":
        "CREATE RULE audit_ins AS ON INSERT TO public.items DO ALSO "
        "INSERT INTO public.audit (note) VALUES ('inserted ' || NEW.id)",
    "update redirected (conditional DO INSTEAD)":
        "CREATE RULE frozen AS ON UPDATE TO public.items WHERE OLD.id > 8 DO INSTEAD NOTHING",
}
STATEMENTS = {
    "delete": "DELETE FROM public.items WHERE id <= 3;\n",
    "update": "UPDATE public.items SET label = 'renamed' WHERE id IN (1, 2, 9, 10);\n",
}


@pytest.mark.parametrize("rule", list(RULES))
@pytest.mark.parametrize("statement", list(STATEMENTS))
def test_a_delete_or_update_of_a_table_with_rules_runs_as_psql_runs_it(
        ready: Project, rule: str, statement: str) -> None:
    ready.query(ITEMS)
    ready.query(RULES[rule])
    before = data(ready, "public.items")
    with psycopg.connect(ready.db_url) as conn:  # what psql leaves, in a transaction rolled back
        conn.execute(STATEMENTS[statement])
        as_psql = conn.execute(DATA.format(table="public.items")).fetchone()
        conn.rollback()
    report = run_with_copies(ready, "20240101000000_a.sql", STATEMENTS[statement])
    assert report["status"] == "applied"
    assert data(ready, "public.items") == (as_psql or [None])[0]
    restore(ready, report)
    assert data(ready, "public.items") == before
