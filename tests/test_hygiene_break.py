"""Small trust holes in what guard shows: a damaged backup-log row that blocked every run with no
way out named, a backup dated in the future shown as "age 0s", run ids echoed at any length.
Real CLI, real PostgreSQL."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.support import Project

# Damage a database writer (or a bad restore) can leave in backup_logs, as SQL SET clauses.
DAMAGE = {
    "metadata-string": ("metadata = '\"x\"'", "metadata is a JSON string, not an object"),
    "metadata-array": ("metadata = '[1, 2]'", "metadata is a JSON array, not an object"),
    "metadata-number": ("metadata = '42'", "metadata is a JSON number, not an object"),
    "metadata-null": ("metadata = 'null'", "metadata is a JSON null, not an object"),
    "infinity": ("created_at = 'infinity'", "created_at is infinity"),
    "year-20000": ("created_at = '20000-01-01'", "is outside the years 1 to 9999"),
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_damaged_row_is_named_with_the_command_that_clears_it(ready: Project, damage: str) -> None:
    setting, what = DAMAGE[damage]
    (row_id,) = ready.query(f"UPDATE public.backup_logs SET {setting} RETURNING id")[0]
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    command = f"guard backup remove {row_id}"
    for args in (("run",), ("backup", "status"), ("backup", "status", "--json")):
        blocked = ready.guard(*args)
        assert blocked.code == 3, blocked.output
        assert "Traceback" not in blocked.output and "internal error" not in blocked.output
        assert f"entry {row_id} of public.backup_logs is damaged" in blocked.output and what in blocked.output
        assert command in blocked.output
    assert not ready.table_exists("a")
    removed = ready.guard("backup", "remove", str(row_id))
    assert removed.code == 0, removed.output
    assert f"removed automated entry {row_id} of public.backup_logs" in removed.stdout
    assert ready.query("SELECT count(*) FROM public.backup_logs WHERE id = %s", (row_id,)) == [(0,)]
    ready.log_automated_backup(age=dt.timedelta(hours=1))
    assert ready.guard("run").code == 0


def test_an_old_damaged_row_behind_a_good_one_blocks_nothing(ready: Project) -> None:
    ready.query("INSERT INTO public.backup_logs (kind, reason, created_at, metadata)"
                " VALUES ('automated', 'old', '-infinity', '{}'), ('automated', 'bad', now() - interval '3 days', '[]')")
    ready.add("20240101000000_a.sql", "create table public.a (id int);\n")
    status = ready.guard("backup", "status")
    assert status.code == 0, status.output
    assert "damaged metadata" in status.stdout  # the recent entries list it as it is
    assert ready.guard("run").code == 0


@pytest.mark.parametrize("arg", ["0", "-1", "abc", "99999999999999999999", "1.5"])
def test_backup_remove_refuses_what_is_not_an_entry_id(ready: Project, arg: str) -> None:
    result = ready.guard("backup", "remove", "--", arg)
    assert result.code == 2, result.output
    assert "Traceback" not in result.output and len(result.stderr.strip().splitlines()) <= 4
    assert ready.query("SELECT count(*) FROM public.backup_logs") == [(1,)]


def test_backup_remove_of_a_missing_entry_says_so(ready: Project) -> None:
    result = ready.guard("backup", "remove", "987654")
    assert result.code == 2, result.output
    assert "no entry 987654 in public.backup_logs" in result.stderr
    assert ready.query("SELECT count(*) FROM public.backup_logs") == [(1,)]
