"""Guard's own records of a run stay while it runs: the check before each file's COMMIT.

A migration file runs with the rights guard connected with, so it can drop or empty what
guard keeps of the run: the protective copies (tables in protect.schema), their rows in
guard.copies, the run's guard.runs row. Once such a file commits, what a copy held is kept
nowhere else. So, in each file's transaction, after guard's records of the file and before
its COMMIT, one statement reads them again and raises (SQLSTATE GDKPT) naming what is gone;
the file rolls back like any failing file. It is fixed text reading a transaction-local
setting that the statement before it sets (the run id and the copies made so far): both
travel in the same message as the file, no round trip of their own.

What it sees: a copy dropped (or renamed, or moved out of its schema), emptied (TRUNCATE:
a table that held rows and holds none; DELETE or UPDATE of its rows: PostgreSQL's
per-transaction counters, pg_stat_get_xact_tuples_*), its guard.copies row deleted; the
run's guard.runs row deleted; guard.runs or guard.copies dropped, renamed or altered so that
guard cannot read them. The read-back after the run's last COMMIT (run/protect.py) stays as
a second line: what COMMIT itself runs comes after this check.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from guard.protect import CopyRecord

SQLSTATE = "GDKPT"
SET_KEPT = "SELECT pg_catalog.set_config('guard.kept', %s, true)"
# Runs as guard (session.AS_GUARD: search_path pg_catalog, pg_temp), after guard's records.
# No '%' in the text: it travels in messages whose other statements have psycopg placeholders.
CHECK_KEPT = """
DO $guard_kept$
DECLARE
  kept jsonb := pg_catalog.current_setting('guard.kept')::jsonb;
  gone text[] := '{}';
  c jsonb;
  rel regclass;
  held bigint;
  empty boolean;
BEGIN
  BEGIN
    IF pg_catalog.to_regclass('guard.runs') IS NULL THEN
      gone := gone || 'the table guard.runs (guard''s journal: guard undo and restore-plan read it)'::text;
    ELSIF NOT EXISTS (SELECT FROM guard.runs WHERE run_id OPERATOR(pg_catalog.=) (kept->>'run')) THEN
      gone := gone || ('the run''s journal entry (guard.runs ' || (kept->>'run')
                       || ': guard undo and guard restore-plan cannot find the run)');
    END IF;
  EXCEPTION WHEN OTHERS THEN
    gone := gone || ('guard.runs as guard made it (reading it: ' || SQLERRM || ')');
  END;
  FOR c IN SELECT * FROM pg_catalog.jsonb_array_elements(kept->'copies') LOOP
    rel := pg_catalog.to_regclass(c->>'c');
    held := 0;
    IF rel IS NULL THEN
      gone := gone || ('the protective copy ' || (c->>'c') || ' (dropped: what it held is kept nowhere else)');
      CONTINUE;
    END IF;
    BEGIN
      IF pg_catalog.to_regclass('guard.copies') IS NULL THEN
        gone := gone || 'the table guard.copies (guard undo finds the copies there)'::text;
        EXIT;
      END IF;
      SELECT coalesce(g.rows, 0) INTO held FROM guard.copies g WHERE g.copy OPERATOR(pg_catalog.=) (c->>'c');
      IF NOT FOUND THEN
        gone := gone || ('the guard.copies row of the protective copy ' || (c->>'c')
                         || ' (guard undo no longer knows the copy)');
      END IF;
    EXCEPTION WHEN OTHERS THEN
      gone := gone || ('guard.copies as guard made it (reading it: ' || SQLERRM || ')');
      EXIT;
    END;
    held := greatest(coalesce(held, 0), (c->>'n')::bigint);
    IF pg_catalog.pg_stat_get_xact_tuples_deleted(rel) OPERATOR(pg_catalog.+)
       pg_catalog.pg_stat_get_xact_tuples_updated(rel) OPERATOR(pg_catalog.>) 0 THEN
      gone := gone || ('rows of the protective copy ' || (c->>'c') || ' (deleted or changed)');
    ELSIF (held OPERATOR(pg_catalog.>) 0 OR (SELECT relfilenode OPERATOR(pg_catalog.<>) oid FROM pg_catalog.pg_class
                                             WHERE oid OPERATOR(pg_catalog.=) rel)) THEN
      EXECUTE 'SELECT NOT EXISTS (SELECT FROM ' || rel::text || ')' INTO STRICT empty;
      IF empty THEN
        gone := gone || ('the rows of the protective copy ' || (c->>'c') || ' (emptied)');
      END IF;
    END IF;
  END LOOP;
  IF pg_catalog.cardinality(gone) OPERATOR(pg_catalog.>) 0 THEN
    RAISE EXCEPTION USING ERRCODE = 'GDKPT',
      MESSAGE = 'this file removed guard''s own records of the run: ' || pg_catalog.array_to_string(gone, '; '),
      HINT = 'the file was rolled back; a migration must leave guard''s schema and the protective copies '
             '(protect.schema) alone';
  END IF;
END
$guard_kept$
"""


# Without copies, only the run's row to read: one plain statement (no PL/pgSQL to load in the
# session, a few milliseconds of a one-file run), raising by a cast as history.check_landed
# does; guard.runs dropped or renamed fails it with PostgreSQL's own "relation ... does not exist".
RUN_ROW_KEPT = ("SELECT (CASE WHEN NOT EXISTS (SELECT FROM guard.runs WHERE run_id OPERATOR(pg_catalog.=) %s) "
                "THEN %s ELSE '1' END)::pg_catalog.int4")
_REMOVED = "this file removed guard's own records of the run: "
_RUN_ROW = "the run's journal entry (guard.runs {run}: guard undo and guard restore-plan cannot find the run)"
_FOUND = re.compile(re.escape(_REMOVED + _RUN_ROW).replace(re.escape("{run}"), "[^:]+"))


def statements(run_id: str, copies: Iterable[CopyRecord]) -> list[tuple[str, tuple[Any, ...]]]:
    """The check's statements, (sql, params) with psycopg placeholders, for a file of run
    ``run_id`` that must leave ``copies`` (the copies of the files committed before it and its
    own) in place: run in the file's transaction, as guard, before its COMMIT."""
    listed = [{"c": c.copy, "n": c.rows or 0} for c in copies]
    if not listed:
        return [(RUN_ROW_KEPT, (run_id, _REMOVED + _RUN_ROW.format(run=run_id)))]
    return [(SET_KEPT, (json.dumps({"run": run_id, "copies": listed}),)), (CHECK_KEPT, ())]


def removed(message: str) -> str | None:
    """guard's own words when PostgreSQL's error ``message`` is RUN_ROW_KEPT's (a cast's
    error quoting them); None otherwise."""
    found = _FOUND.search(message)
    return found.group(0) if found else None
