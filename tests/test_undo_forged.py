"""`guard undo` over guard's own records changed since the run (guard.copies, guard.run_catalogs):
it builds no SQL from a forged name, uses no table a forged registry row points to, changes
nothing and says why. Real PostgreSQL, the real CLI."""

from __future__ import annotations

import json

import pytest

from guard.protect import CREATE_REGISTRY
from tests.support import Project
from tests.test_undo import SCHEMA, state
from tests.test_undo_safety import _run


@pytest.fixture
def shop(ready: Project) -> Project:
    ready.query(SCHEMA)
    return ready


@pytest.mark.parametrize("forged", ["public.evil", '"guard_backup"."other_copy"'])
def test_a_copy_name_changed_in_the_registry_is_refused(shop: Project, forged: str) -> None:
    run_id = _run(shop, "delete from public.orders where id <= 20;\n")
    shop.query("CREATE TABLE public.evil (id int, account int, total numeric);"
               "CREATE TABLE guard_backup.other_copy (id int, account int, total numeric);"
               "INSERT INTO public.evil SELECT g, 1, 0 FROM generate_series(1000, 1010) g;"
               "INSERT INTO guard_backup.other_copy SELECT g, 1, 0 FROM generate_series(2000, 2010) g")
    shop.query("UPDATE guard.copies SET copy = %s WHERE run_id = %s", (forged, run_id))
    after = state(shop)
    for args in (("undo",), ("undo", "--yes"), ("undo", "--yes", "--force")):
        refused = shop.guard(*args)
        assert refused.code == 3, refused.output
        assert f"copy {forged} of public.orders is not among the copies recorded at the end of the run" in refused.stdout
    assert state(shop) == after and shop.history() == ["20240101000001"]


def test_a_copy_row_added_to_the_registry_for_a_run_without_copies_is_refused(shop: Project) -> None:
    run_id = _run(shop, "create index orders_total on public.orders (total);\n")
    shop.query("CREATE TABLE public.evil (id int, account int, total numeric);"
               "INSERT INTO public.evil SELECT g, 1, 0 FROM generate_series(1000, 1010) g")
    shop.query(CREATE_REGISTRY)
    shop.query("INSERT INTO guard.copies (copy, run_id, source, kind, statement, rows, restore_sql) "
               "VALUES ('public.evil', %s, 'public.orders', 'rows', 'forged', 11, 'INSERT INTO public.orders')", (run_id,))
    refused = shop.guard("undo", "--yes")
    assert refused.code == 3, refused.output
    assert shop.query("SELECT count(*) FROM public.orders WHERE id >= 1000") == [(0,)]
    assert shop.query("SELECT count(*) FROM pg_indexes WHERE indexname = 'orders_total'") == [(1,)]


@pytest.mark.parametrize("where, forged", [
    ("indexes", "public.orders_total; DROP TABLE public.victim"),
    ("indexes", "public.orders_total CASCADE"),
    ("tables", 'public."orders"; DROP TABLE public.victim; --'),
    ("tables", "public.victim"),  # well formed, but the checksum and identity are the run's: see below
])
def test_a_name_forged_in_the_catalog_record_runs_no_sql_of_its_own(shop: Project, where: str, forged: str) -> None:
    run_id = _run(shop, "create index orders_total on public.orders (total);\n"
                  "alter table public.orders rename to purchases;\n")
    shop.query("CREATE TABLE public.victim (id int); INSERT INTO public.victim VALUES (1)")
    catalog = shop.query("SELECT catalog FROM guard.run_catalogs WHERE run_id = %s AND phase = 'after'", (run_id,))[0][0]
    for entry_key, entry in catalog[where].items():
        if where == "indexes" and entry["name"] == "public.orders_total":
            entry["name"] = forged
        if where == "tables" and entry == "public.purchases":
            catalog[where][entry_key] = forged
    shop.query("UPDATE guard.run_catalogs SET catalog = %s::jsonb WHERE run_id = %s AND phase = 'after'",
               (json.dumps(catalog), run_id))
    result = shop.guard("undo", "--yes")
    assert "Traceback" not in result.output
    assert shop.query("SELECT count(*) FROM public.victim") == [(1,)], result.output
    if ";" in forged or " " in forged:
        assert result.code == 1, result.output
        assert "could not plan the undo, nothing changed: guard.run_catalogs holds" in result.stdout
        assert shop.history() == ["20240101000001"]


def test_undo_json_is_valid_in_every_outcome(shop: Project) -> None:
    outcomes = [shop.guard("undo", "--json"), shop.guard("undo", "nosuch", "--json"),
                shop.guard("undo", "--json", "--database-url", "postgresql://u:hunter2secret@127.0.0.1:1/x")]
    for refused in outcomes:
        assert refused.code == 3 and json.loads(refused.stdout)["exit_code"] == 3, refused.output
        assert json.loads(refused.stdout)["message"] and "hunter2secret" not in refused.output
    run_id = _run(shop, "delete from public.orders where id <= 20;\n")
    outcomes += [shop.guard("undo", "--json"), shop.guard("undo", "--yes", "--json"), shop.guard("undo", "--yes", "--json")]
    shop.query("UPDATE guard.copies SET copy = 'public.accounts' WHERE run_id = %s", (run_id,))
    outcomes.append(shop.guard("undo", run_id, "--yes", "--json"))
    for result in outcomes:
        data = json.loads(result.stdout)
        assert isinstance(data, dict), result.output
        assert "Traceback" not in result.output
