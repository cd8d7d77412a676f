"""EXECUTE in DO blocks read through variables holding a constant, concat(), concat_ws() and
quote_ident(): the SQL a migration builds that way is judged like the same SQL written out."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.lint import lint_paths

SCHEMA = "create table public.items (id int, note text);\n"
# (DO block, rule expected among the findings, or None for no risk finding)
CASES = [
    ("do $$ declare s text := 'create index on public.items (note)'; begin execute s; end $$;", "create-index"),
    ("do $$ declare s constant text := 'alter table public.items alter column note set not null'; "
     "begin execute s; end $$;", "set-not-null"),
    ("do $$ begin execute concat('alter table public.items ', 'alter column note set not null'); end $$;",
     "set-not-null"),
    ("do $$ begin execute concat_ws(' ', 'truncate', 'public.items'); end $$;", "truncate"),
    ("do $$ declare t text := 'items'; begin execute 'truncate public.' || quote_ident(t); end $$;", "truncate"),
    ("do $$ declare s text := 'comment on table public.items is ''x'''; begin execute s; end $$;", None),
    # assigned in the body, by :=, INTO or GET DIAGNOSTICS: no longer the declared constant
    ("do $$ declare s text := 'comment on table public.items is ''x'''; begin "
     "s := 'truncate public.items'; execute s; end $$;", None),
    ("do $$ declare t text := 'nope'; begin select 'items' into t; execute format('create index on public.%I (note)', t); "
     "end $$;", "create-index"),  # the name is known only at run time: still an index build
]


@pytest.mark.parametrize(("block", "rule"), CASES, ids=[c[0][:60] for c in CASES])
def test_execute_of_constants_is_read(tmp_path: Path, block: str, rule: str | None) -> None:
    earlier = tmp_path / "20240101000000_schema.sql"
    earlier.write_text(SCHEMA)
    path = tmp_path / "20240102000000_do.sql"
    path.write_text(block + "\n")
    rules = {f.rule for f in lint_paths([path], display_root=tmp_path, context=[earlier])
             if f.category in ("locking", "destructive")}
    assert rules == ({rule} if rule else set()), (block, rules)
