"""Breaking the safety net's state on the server: a file that puts another snapshot in place of
the tripwire's (guard.tripwire, a transaction-local setting any statement may set) had its
check compare with that and let a DELETE through with exit 0; a file run without the tripwire
must still pass the check before a whole-table copy."""

from __future__ import annotations

import json
import re

import pytest

from tests.safety_support import data
from tests.support import Project

ITEMS = (
    "CREATE TABLE public.items (id int PRIMARY KEY, name text NOT NULL, price numeric);"
    "INSERT INTO public.items SELECT g, 'item ' || g, g * 1.5 FROM generate_series(1, 50) g;"
)
DELETE = "do $$ begin execute 'delete from public.items where id > 3'; end $$;\n"


@pytest.fixture
def items(ready: Project) -> Project:
    ready.query(ITEMS)
    return ready


def _refused(project: Project, sql: str, *needles: str) -> None:
    before = data(project, "public.items")
    project.add("20240101000000_unseen.sql", sql)
    result = project.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    failed = next(m for m in result.report["migrations"] if m["status"] == "failed")
    for needle in needles:
        assert needle in failed["error"]["message"], failed["error"]["message"]
    assert data(project, "public.items") == before
    assert "20240101000000" not in project.history()


@pytest.mark.parametrize("forged", [
    "SET LOCAL guard.tripwire = '{}';",
    "SET guard.tripwire = '{}';",
    "SELECT set_config('guard.tripwire', '{}', false);",
    "SELECT set_config('guard.tripwire', '{\"k\": \"x\"}', true);",
    "SET LOCAL guard.tripwire = '[]';",
    # a copy of the real snapshot with the table taken out: its seal no longer matches
    "SELECT set_config('guard.tripwire', (current_setting('guard.tripwire')::jsonb - 'public.items'::regclass::oid::text)::text, true);",
    "do $$ begin perform set_config('guard.tripwire', '{}', true); end $$;",
])
def test_a_file_that_replaces_the_snapshot_is_refused(items: Project, forged: str) -> None:
    """SET guard.tripwire = '{}' made the check compare with no tables: 47 rows deleted, exit 0."""
    _refused(items, f"{forged}\n{DELETE}", "reset guard's snapshot")


def test_a_trigger_that_replaces_the_snapshot_is_refused(items: Project) -> None:
    items.query("CREATE TABLE public.log (id int);"
                "CREATE FUNCTION public.hide() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN PERFORM set_config('guard.tripwire', '{}', true); DELETE FROM public.items WHERE id > 10;"
                " RETURN NEW; END $$;"
                "CREATE TRIGGER hide AFTER INSERT ON public.log FOR EACH ROW EXECUTE FUNCTION public.hide()")
    _refused(items, "insert into public.log values (1);\n", "reset guard's snapshot")


@pytest.mark.parametrize("setting", [
    "SET guard.tripwire_key = 'x';", "SET LOCAL guard.tripwire_only = '1';",
    "SAVEPOINT a; SELECT 1; ROLLBACK TO SAVEPOINT a;", "SET session_replication_role = replica;",
    "SET search_path = pg_temp;", "SET default_transaction_read_only = on;", "COMMIT;",
])
def test_settings_around_the_snapshot_do_not_hide_a_delete(items: Project, setting: str) -> None:
    _refused(items, f"{setting}\n{DELETE}", "deleted 47 row(s) of public.items")


@pytest.mark.parametrize("sql", [
    "create table public.other (id int);\ninsert into public.other values (1);\n",
    "do $$ begin update public.items set name = name where false; end $$;\n",
    "SAVEPOINT a;\ndo $$ begin perform 1; end $$;\nRELEASE a;\n",
])
def test_a_file_that_destroys_nothing_passes(items: Project, sql: str) -> None:
    before = data(items, "public.items")
    items.add("20240101000000_fine.sql", sql)
    result = items.guard("run")
    assert result.code == 0, result.output
    assert data(items, "public.items") == before


def test_truncate_accepted_by_lint_warn_runs_with_its_copy(items: Project) -> None:
    """No tripwire (lint.destructive: warn): the check before the whole-table copy has no snapshot
    to compare with, and must not refuse the file for that."""
    (items.root / "guard.yml").write_text("lint:\n  destructive: warn\n")
    items.add("20240101000000_wipe.sql", "truncate public.items;\n")
    result = items.guard("run")
    assert result.code == 0, result.output
    assert items.query("SELECT count(*) FROM public.items")[0][0] == 0


@pytest.mark.parametrize("token", ["k3y/with space:&x#9", "Päss wörd/🔑:x#9;z", "plain-but-long_Token42"])
def test_base64_of_a_url_encoded_secret_is_masked(items: Project, token: str) -> None:
    """A secret URL-encoded, then base64'd (a Basic header or a config blob built from a URL)
    was shown as it was; the report stays valid JSON with it masked."""
    import base64
    from urllib.parse import quote, quote_plus

    spelled = [base64.b64encode(f(token).encode()).decode()
               for f in (lambda t: quote(t, safe=""), quote_plus, lambda t: re.sub("%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(t, safe="")))]
    body = " ".join(spelled)
    items.add("20240101000000_leak.sql", f"do $$ begin raise exception 'blob {body}'; end $$;\n")
    result = items.guard("run", SERVICE_TOKEN=token)
    assert result.code == 1, result.output
    assert result.report is not None  # still JSON
    text = result.output + json.dumps(result.report)
    for spelling in spelled:
        assert spelling.rstrip("=")[2:-2] not in text, spelling
    assert "blob" in text


@pytest.mark.parametrize("off", [
    "SET track_counts = off;", "SET LOCAL track_counts = off;", "SELECT set_config('track_counts', 'off', false);",
    "do $$ begin perform set_config('track_counts', 'off', true); end $$;",
])
def test_a_file_that_turns_track_counts_off_is_refused(items: Project, off: str) -> None:
    """With track_counts off PostgreSQL counts no deleted rows: the check saw none, 47 rows
    deleted, exit 0."""
    _refused(items, f"{off}\n{DELETE}", "track_counts")
