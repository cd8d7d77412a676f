"""guard never reports a file applied whose bookkeeping rows did not land.

PostgreSQL lets a rule or a trigger on a table discard an INSERT without an error: a DO
INSTEAD NOTHING rule, a conditional or redirecting DO INSTEAD rule, a DO ALSO rule that
deletes the row again, a BEFORE trigger returning NULL, an AFTER trigger deleting the row.
On the history table (``supabase_migrations.schema_migrations``) that would make guard say
"applied", exit 0, and apply the file again next time; on ``guard.run_commits`` the journal
would miss a committed file. Each kind is tried on both tables, made before the run or by an
earlier file of the release, in every path a file can take (streamed, one at a time,
``transaction: all``): the file whose row did not land fails, rolled back, and the files after
it never start.
"""

from __future__ import annotations

import itertools
import os

import psycopg
import pytest

from guard import journal
from guard.migrations.history import CREATE_HISTORY
from tests.support import Project, Result

BASE = 20240101000000
HISTORY = "supabase_migrations.schema_migrations"
JOURNAL = "guard.run_commits"

# Each discards the INSERT of a row whose version is >= {v} into {t}, without an error.
TRAPS = {
    "rule instead nothing": "CREATE RULE guard_trap AS ON INSERT TO {t} DO INSTEAD NOTHING",
    "conditional rule": "CREATE RULE guard_trap AS ON INSERT TO {t} WHERE NEW.version >= '{v}' DO INSTEAD NOTHING",
    "redirecting rule": (
        "CREATE TABLE public.elsewhere (version text);\n"
        "CREATE RULE guard_trap AS ON INSERT TO {t} WHERE NEW.version >= '{v}' "
        "DO INSTEAD INSERT INTO public.elsewhere VALUES (NEW.version)"
    ),
    "rule also deleting": (
        "CREATE RULE guard_trap AS ON INSERT TO {t} WHERE NEW.version >= '{v}' "
        "DO ALSO DELETE FROM {t} WHERE version = NEW.version"
    ),
    "before trigger returning null": (
        "CREATE FUNCTION public.guard_trap() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;\n"
        "CREATE TRIGGER guard_trap BEFORE INSERT ON {t} FOR EACH ROW WHEN (NEW.version >= '{v}') "
        "EXECUTE FUNCTION public.guard_trap()"
    ),
    "before trigger changing the version": (
        "CREATE FUNCTION public.guard_trap() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN NEW.version := NEW.version || '_moved'; RETURN NEW; END$$;\n"
        "CREATE TRIGGER guard_trap BEFORE INSERT ON {t} FOR EACH ROW WHEN (NEW.version >= '{v}') "
        "EXECUTE FUNCTION public.guard_trap()"
    ),
    "after trigger deleting": (
        "CREATE FUNCTION public.guard_trap() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN DELETE FROM {t} WHERE version = NEW.version; RETURN NULL; END$$;\n"
        "CREATE TRIGGER guard_trap AFTER INSERT ON {t} FOR EACH ROW WHEN (NEW.version >= '{v}') "
        "EXECUTE FUNCTION public.guard_trap()"
    ),
    # Fires at COMMIT, after every check in the transaction, unless something fires it sooner.
    "deferred trigger deleting": (
        "CREATE FUNCTION public.guard_trap() RETURNS trigger LANGUAGE plpgsql AS "
        "$$BEGIN DELETE FROM {t} WHERE version = NEW.version; RETURN NULL; END$$;\n"
        "CREATE CONSTRAINT TRIGGER guard_trap AFTER INSERT ON {t} DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW WHEN (NEW.version >= '{v}') EXECUTE FUNCTION public.guard_trap()"
    ),
}
PATHS = {  # guard.yml for each path a file can take
    "pipeline": "",
    "single": "migrations:\n  lock_retries: 1\n",
    "all": "migrations:\n  transaction: all\n",
}


def matrix(traps: list[str]) -> list[tuple[str, str, str]]:
    """(path, trap, table) to try: every (trap, path) pair once, the table alternating, so that
    every pair of the three is tried (a pairwise cover: 21 runs instead of 42). With
    GUARD_TESTS_EXHAUSTIVE=1, every combination (the brief: exhaustive matrices in full outside
    the CI suite's budget; README "Development")."""
    tables = [HISTORY, JOURNAL]
    if os.environ.get("GUARD_TESTS_EXHAUSTIVE") == "1":
        return [(p, t, tb) for p, t, tb in itertools.product(PATHS, traps, tables)]
    return [(path, trap, tables[(i + j) % 2]) for i, trap in enumerate(traps) for j, path in enumerate(PATHS)]


def _version(n: int) -> str:
    return str(BASE + n)


def _files(project: Project, path: str, first: str = "") -> None:
    """Three files, each making a table and advancing a sequence (nextval is not rolled back:
    it tells whether a file started at all); ``first`` goes at the top of the first file."""
    project.query("CREATE SEQUENCE public.probe")
    for n in (1, 2, 3):
        sql = f"create table public.t{n} (id int);\nselect nextval('public.probe');\n"
        project.add(f"{_version(n)}_f{n}.sql", (first + ";\n" if n == 1 and first else "") + sql)
    if PATHS[path]:
        (project.root / "guard.yml").write_text(PATHS[path])


def _prepare_tables(project: Project) -> None:
    """The history table and guard's schema, as a run before this one would have left them."""
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        for statement in CREATE_HISTORY:
            conn.execute(statement)
        journal.ensure(conn)


def _state(project: Project) -> tuple[list[str], list[str], list[str], int]:
    """History, journal, the tables t1..t3 present, and how many files started."""
    journal_rows = sorted(r[0] for r in project.query(f"SELECT version FROM {JOURNAL}"))
    tables = [f"t{n}" for n in (1, 2, 3) if project.table_exists(f"public.t{n}")]
    last, called = project.query("SELECT last_value, is_called FROM public.probe")[0]
    return project.history(), journal_rows, tables, int(last) if called else 0


def _assert_failed_on(result: Result, failing: int, path: str, table: str, *, at_commit: bool = False) -> None:
    """File ``failing`` failed for its missing row in ``table``; the ones before it stayed
    committed (unless ``transaction: all``), the ones after never ran. ``at_commit``: the row
    went at the one transaction's end (a deferred trigger, ``transaction: all``), where every
    file had run: those after it rolled back with it."""
    assert "Traceback" not in result.output, result.output
    committed = 0 if path == "all" else failing - 1
    assert result.code == (4 if committed else 1), result.output
    report = result.report
    assert report is not None
    statuses = [m["status"] for m in report["migrations"]]
    before = "rolled_back" if path == "all" else "applied"
    after = "rolled_back" if at_commit else "skipped"
    assert statuses == [before] * (failing - 1) + ["failed"] + [after] * (3 - failing), statuses
    error = report["migrations"][failing - 1]["error"]
    assert table in error["message"] and "rule or trigger" in error["message"], error
    assert "\n" not in error["message"]
    assert error["message"] in result.output
    versions = [_version(n) for n in range(1, committed + 1)]
    assert report["restore_plan"].get("committed_versions", []) == versions


@pytest.mark.parametrize(("path", "trap", "table"), matrix(list(TRAPS)))
def test_a_trap_made_before_the_run_fails_the_file_whose_row_it_discards(
    ready: Project, path: str, trap: str, table: str,
) -> None:
    """The trap is on the table before the run; it catches file 2 (file 1 for the
    unconditional rule): that file fails, nothing of it stays, file 3 never starts."""
    _prepare_tables(ready)
    ready.query(TRAPS[trap].format(t=table, v=_version(2)))
    _files(ready, path)
    failing = 1 if trap == "rule instead nothing" else 2
    at_commit = path == "all" and trap.startswith("deferred")
    result = ready.guard("run")
    _assert_failed_on(result, failing, path, table, at_commit=at_commit)
    kept = [] if path == "all" else [_version(n) for n in range(1, failing)]
    history, journal_rows, tables, started = _state(ready)
    assert history == kept and journal_rows == kept
    assert tables == [f"t{n}" for n in range(1, len(kept) + 1)]
    assert started == (3 if at_commit else failing)  # the failing file ran (then rolled back), none after it
    # Without the trap, the next run applies exactly the files still pending.
    ready.query(f"DROP RULE IF EXISTS guard_trap ON {table}; DROP TRIGGER IF EXISTS guard_trap ON {table}")
    again = ready.guard("run")
    assert again.code == 0, again.output
    everything = [_version(n) for n in (1, 2, 3)]
    assert _state(ready)[:3] == (everything, everything, ["t1", "t2", "t3"])


@pytest.mark.parametrize(("path", "trap", "table"), matrix([t for t in TRAPS if t != "rule instead nothing"]))
def test_a_trap_made_by_an_earlier_file_of_the_release_fails_the_file_it_catches(
    ready: Project, path: str, trap: str, table: str,
) -> None:
    """File 1 makes the trap (for versions from file 2's on): file 1 applies, file 2 fails."""
    _prepare_tables(ready)
    _files(ready, path, first=TRAPS[trap].format(t=table, v=_version(2)))
    at_commit = path == "all" and trap.startswith("deferred")
    result = ready.guard("run")
    _assert_failed_on(result, 2, path, table, at_commit=at_commit)
    kept = [] if path == "all" else [_version(1)]
    history, journal_rows, tables, started = _state(ready)
    assert history == kept and journal_rows == kept
    assert tables == (["t1"] if kept else [])
    assert started == (3 if at_commit else 2)


@pytest.mark.parametrize("path", list(PATHS))
def test_the_file_that_makes_an_unconditional_trap_fails_itself(ready: Project, path: str) -> None:
    """A file that makes DO INSTEAD NOTHING on the history table discards its own row: it
    fails, and the rule, made in its transaction, goes with it."""
    _files(ready, path, first=TRAPS["rule instead nothing"].format(t=HISTORY, v=""))
    result = ready.guard("run")
    _assert_failed_on(result, 1, path, HISTORY)
    assert _state(ready) == ([], [], [], 1)
    assert ready.query("SELECT count(*) FROM pg_rules WHERE rulename = 'guard_trap'") == [(0,)]


@pytest.mark.parametrize("path", list(PATHS))
def test_harmless_rules_and_triggers_on_both_tables_do_not_stop_a_run(ready: Project, path: str) -> None:
    """What keeps the row (an auditing DO ALSO rule, a BEFORE trigger returning NEW, a
    trigger on other versions only) is no reason to fail."""
    _prepare_tables(ready)
    ready.query("CREATE TABLE public.audit (version text)")
    for table in (HISTORY, JOURNAL):
        name = table.replace(".", "_")
        ready.query(f"CREATE RULE audit AS ON INSERT TO {table} DO ALSO INSERT INTO public.audit VALUES (NEW.version)")
        ready.query(f"CREATE FUNCTION public.keep_{name}() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$")
        ready.query(f"CREATE TRIGGER keep BEFORE INSERT ON {table} FOR EACH ROW EXECUTE FUNCTION public.keep_{name}()")
        ready.query(TRAPS["before trigger returning null"].replace("guard_trap", f"trap_{name}")
                    .format(t=table, v="3"))  # versions from '3' on: none of this release's
    _files(ready, path)
    result = ready.guard("run")
    assert result.code == 0, result.output
    everything = [_version(n) for n in (1, 2, 3)]
    assert _state(ready) == (everything, everything, ["t1", "t2", "t3"], 3)
    assert sorted(r[0] for r in ready.query("SELECT version FROM public.audit")) == sorted(everything * 2)


@pytest.mark.parametrize("table", [HISTORY, JOURNAL])
def test_a_file_run_statement_by_statement_whose_row_is_discarded_fails_as_changed(
    ready: Project, table: str,
) -> None:
    """A file PostgreSQL will not run in a transaction (CREATE INDEX CONCURRENTLY) commits
    statement by statement, its rows after it in a transaction of their own: when the trap
    discards them, the file fails as one that changed the database (exit 4), the history does
    not list it, and the file after it never starts."""
    _prepare_tables(ready)
    ready.query(TRAPS["before trigger returning null"].format(t=table, v=_version(2)))
    _files(ready, "pipeline")
    ready.add(f"{_version(2)}_f2.sql", "create table public.t2 (id int);\nselect nextval('public.probe');\n"
              "create index concurrently t2_id on public.t2 (id);\n")
    result = ready.guard("run")
    assert "Traceback" not in result.output, result.output
    assert result.code == 4, result.output
    assert result.report is not None
    statuses = [(m["status"], m["path"]) for m in result.report["migrations"]]
    assert statuses == [("applied", "pipeline"), ("failed", "single"), ("skipped", None)], result.output
    error = result.report["migrations"][1]["error"]
    assert table in error["message"] and "rule or trigger" in error["message"], error
    assert error["message"] in result.output
    history, journal_rows, tables, started = _state(ready)
    assert history == journal_rows == [_version(1)]
    assert tables == ["t1", "t2"] and started == 2  # file 2's statements committed; file 3 never ran
    assert ready.table_exists("public.t2_id")


@pytest.mark.parametrize("trap", ["rule instead nothing", "before trigger returning null"])
def test_a_trap_on_the_runs_journal_blocks_the_run_before_any_change(ready: Project, trap: str) -> None:
    """guard.runs' row for the run is written before anything changes: discarded, the run is
    refused (exit 3) naming the table, instead of being taken for a reused run id."""
    _prepare_tables(ready)
    sql = TRAPS[trap].format(t="guard.runs", v="").replace("WHEN (NEW.version >= '')", "")
    ready.query(sql)
    _files(ready, "pipeline")
    result = ready.guard("run")
    assert "Traceback" not in result.output, result.output
    assert result.code == 3, result.output
    assert "did not land: a rule or trigger on guard.runs discarded it" in result.output
    assert "already in guard's journal" not in result.output
    assert _state(ready) == ([], [], [], 0)


@pytest.mark.parametrize("table", [HISTORY, JOURNAL])
def test_a_big_file_whose_row_is_discarded_fails(ready: Project, table: str) -> None:
    """A file too big to have its rows quoted into the text sends them as parameters (a
    pipeline of statements, apply.INLINE_RECORD_BYTES): the check goes with them."""
    from guard.migrations.apply import INLINE_RECORD_BYTES

    _prepare_tables(ready)
    ready.query(TRAPS["after trigger deleting"].format(t=table, v=_version(2)))
    _files(ready, "pipeline")
    filler = "x" * (INLINE_RECORD_BYTES + 1000)
    ready.add(f"{_version(2)}_f2.sql", f"create table public.t2 (id int);\nselect nextval('public.probe');\n"
              f"select '{filler}';\n")
    result = ready.guard("run")
    _assert_failed_on(result, 2, "pipeline", table)
    assert [m["path"] for m in result.report["migrations"]] == ["pipeline", "single", None]  # type: ignore[index]
    assert _state(ready) == ([_version(1)], [_version(1)], ["t1"], 2)


def test_a_files_own_error_in_guards_words_stays_the_files(ready: Project) -> None:
    """Only guard's own check is reworded: a statement of the file failing with the same words
    keeps PostgreSQL's error, its SQLSTATE and its line."""
    _files(ready, "pipeline")
    ready.add(f"{_version(2)}_f2.sql", "create table public.t2 (id int);\nselect nextval('public.probe');\n"
              "select 'guard''s history row for 2 did not land: a rule or trigger on x discarded it'::int;\n")
    result = ready.guard("run")
    assert result.code == 4, result.output
    assert result.report is not None
    error = result.report["migrations"][1]["error"]
    assert error["sqlstate"] == "22P02" and error["line"] == 3 and error["message"].startswith("invalid input"), error
    assert _state(ready) == ([_version(1)], [_version(1)], ["t1"], 2)


@pytest.mark.parametrize("trap", [
    "CREATE RULE keep AS ON DELETE TO supabase_migrations.schema_migrations DO INSTEAD NOTHING",
    "CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$; "
    "CREATE TRIGGER keep BEFORE DELETE ON supabase_migrations.schema_migrations "
    "FOR EACH ROW EXECUTE FUNCTION public.keep()",
    # At COMMIT, after undo's check, unless something fires it sooner: the row comes back.
    "CREATE FUNCTION public.keep() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
    "VALUES (OLD.version, OLD.name, OLD.statements); RETURN NULL; END $$; "
    "CREATE CONSTRAINT TRIGGER keep AFTER DELETE ON supabase_migrations.schema_migrations "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION public.keep()",
])
def test_an_undo_whose_history_removal_is_discarded_fails_and_changes_nothing(ready: Project, trap: str) -> None:
    """guard undo takes the undone versions out of the history; a rule or trigger that keeps
    them (no error) would leave a reverted schema with its versions listed as applied, and
    the fixed migration would never run again. The undo fails and rolls back instead."""
    ready.guard("init")
    ready.query(trap)  # before the run: part of what the run found (a DELETE rule or trigger)
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    assert ready.guard("run").code == 0
    undone = ready.guard("undo", "--yes")
    assert undone.code == 1, undone.output
    assert "did not happen: a rule or trigger discarded it" in undone.output, undone.output
    assert ready.history() == ["20240101000000"]
    assert ready.query("SELECT to_regclass('public.t') IS NOT NULL") == [(True,)]  # rolled back: still there


def test_an_undo_of_an_undo_whose_history_rows_are_discarded_fails(ready: Project) -> None:
    """Undoing an undo puts the history rows it took out back; a trigger that discards them
    (switched on only then) fails that undo (exit 1, rolled back) instead of leaving the
    schema applied and the versions unlisted."""
    ready.guard("init")
    ready.query("CREATE TABLE public.switch (lose boolean); INSERT INTO public.switch VALUES (false); "
                "CREATE FUNCTION public.lose() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN IF (SELECT lose FROM public.switch) THEN RETURN NULL; END IF; RETURN NEW; END $$; "
                "CREATE TRIGGER lose BEFORE INSERT ON supabase_migrations.schema_migrations "
                "FOR EACH ROW EXECUTE FUNCTION public.lose()")
    ready.add("20240101000000_t.sql", "create table public.t (id int);\n")
    assert ready.guard("run").code == 0
    first = ready.guard("undo", "--yes")
    assert first.code == 0, first.output
    undo_id = ready.query("SELECT run_id FROM guard.runs WHERE command = 'undo'")[0][0]
    ready.query("UPDATE public.switch SET lose = true")
    again = ready.guard("undo", undo_id, "--yes")
    assert again.code == 1, again.output
    assert "did not land: a rule or trigger discarded them" in again.output, again.output
    assert ready.history() == [] and ready.query("SELECT to_regclass('public.t')") == [(None,)]


def test_deferred_constraints_keep_their_deferral_across_the_files_of_one_transaction(ready: Project) -> None:
    """``transaction: all`` checks guard's rows again after firing the deferred triggers, at the
    end: a file may still leave a deferred constraint for a later file to satisfy, as in psql
    -1; a violation nobody fixes fails the release at its end, everything rolled back."""
    (ready.root / "guard.yml").write_text(PATHS["all"])
    ready.add(f"{_version(1)}_p.sql", "create table public.p (id int primary key);\n"
              "create table public.c (p int references public.p deferrable initially deferred);\n"
              "insert into public.c values (1);\n")
    ready.add(f"{_version(2)}_fix.sql", "insert into public.p values (1);\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.history() == [_version(1), _version(2)]
    ready.add(f"{_version(3)}_orphan.sql", "insert into public.c values (2);\n")
    ready.add(f"{_version(4)}_more.sql", "create table public.more (id int);\n")
    result = ready.guard("run")
    assert result.code == 1, result.output
    assert result.report is not None
    assert [m["status"] for m in result.report["migrations"]] == ["rolled_back", "failed"]
    assert "violates foreign key constraint" in result.output
    assert ready.history() == [_version(1), _version(2)] and not ready.table_exists("public.more")
    assert ready.query("SELECT count(*) FROM public.c") == [(1,)]


# A holdable cursor's query runs at COMMIT (the server materializes it), after guard's check:
# a volatile function in it deleted guard's rows, and guard said "applied".
HOLDABLE_CURSOR = (
    "create function public.eat(v text) returns int language plpgsql as "
    "$$begin delete from supabase_migrations.schema_migrations where version = v; "
    "delete from guard.run_commits where version = v; return 1; end$$;\n"
    "declare eater cursor with hold for select public.eat('{v}');\n"
)


@pytest.mark.parametrize("path", list(PATHS))
def test_a_holdable_cursor_cannot_delete_guards_rows_at_commit(ready: Project, path: str) -> None:
    """The cursor is closed before guard's check, unrun, as the streamed path's session reset
    already closed it: every file applies with its rows."""
    _prepare_tables(ready)
    _files(ready, path)
    ready.add(f"{_version(3)}_f3.sql", HOLDABLE_CURSOR.format(v=_version(3)) + "create table public.t3 (id int);\n"
              "select nextval('public.probe');\n")
    result = ready.guard("run")
    assert result.code == 0, result.output
    everything = [_version(n) for n in (1, 2, 3)]
    assert _state(ready) == (everything, everything, ["t1", "t2", "t3"], 3)


# A deferred trigger whose function names a table without its schema, as a migration may.
DEFERRED_AUDIT = (
    "create table public.audit_log (n int);\n"
    "create function public.note() returns trigger language plpgsql as "
    "$$begin insert into audit_log values (new.id); return null; end$$;\n"
    "create table public.thing (id int);\n"
    "create constraint trigger note after insert on public.thing deferrable initially deferred "
    "for each row execute function public.note();\n"
    "insert into public.thing values (7);\n"
)


@pytest.mark.parametrize("path", ["pipeline", "single"])
def test_a_files_deferred_triggers_fire_in_its_own_session(ready: Project, path: str) -> None:
    """At psql's COMMIT a deferred trigger runs under the file's search_path; guard fired it
    after taking its own (pg_catalog, pg_temp: the tripwire's check, the records), and
    ``audit_log`` did not resolve: a legitimate file failed (exit 4). (``transaction: all``
    still fires them at its end under guard's search_path: its deferral spans files.)"""
    _files(ready, path)
    ready.add(f"{_version(2)}_f2.sql", DEFERRED_AUDIT)
    result = ready.guard("run")
    assert result.code == 0, result.output
    assert ready.query("SELECT n FROM public.audit_log") == [(7,)]


@pytest.mark.parametrize("path", ["pipeline", "single"])
def test_the_tripwire_sees_what_a_files_deferred_trigger_destroyed(ready: Project, path: str) -> None:
    """A deferred trigger emptying a table fired after the tripwire's check: the rows went
    without a copy, exit 0. Fired before the check, the file fails, rolled back."""
    ready.query("CREATE TABLE public.keep (id int); INSERT INTO public.keep SELECT generate_series(1, 50)")
    _files(ready, path)
    ready.add(f"{_version(2)}_f2.sql",
              "create function public.wipe() returns trigger language plpgsql as "
              "$$begin delete from public.keep; return null; end$$;\n"
              "do $$begin create table public.thing (id int); end$$;\n"
              "create constraint trigger wipe after insert on public.thing deferrable initially deferred "
              "for each row execute function public.wipe();\n"
              "do $$begin insert into public.thing values (1); end$$;\n")
    result = ready.guard("run")
    assert "Traceback" not in result.output, result.output
    assert result.code == 4, result.output
    assert ready.query("SELECT count(*) FROM public.keep") == [(50,)]
    assert ready.history() == [_version(1)]


@pytest.mark.parametrize("table", [HISTORY, JOURNAL])
@pytest.mark.parametrize("how", ["do block", "function"])
def test_a_harmless_rule_made_unseen_by_a_file_does_not_fail_it(ready: Project, table: str, how: str) -> None:
    """An auditing DO ALSO rule made through EXECUTE (a DO block, a function the release makes)
    is invisible to the parser: guard sent the file's records as one WITH statement, which
    PostgreSQL refuses on a table with rules (0A000), and the file failed, every run again."""
    _prepare_tables(ready)
    make = f"EXECUTE 'CREATE RULE audit AS ON INSERT TO {table} DO ALSO INSERT INTO public.audit VALUES (NEW.version)'"
    rule = "create table public.audit (version text);\n" + (
        f"do $d$ begin {make}; end $d$" if how == "do block" else
        f"create function public.audit_on() returns void language plpgsql as $d$ begin {make}; end $d$;\n"
        "select public.audit_on()")
    _files(ready, "pipeline", first=rule)
    result = ready.guard("run")
    assert result.code == 0, result.output
    everything = [_version(n) for n in (1, 2, 3)]
    assert _state(ready) == (everything, everything, ["t1", "t2", "t3"], 3)
    assert sorted(r[0] for r in ready.query("SELECT version FROM public.audit")) == everything


# A deferred trigger that defers itself again outruns any number of SET CONSTRAINTS ALL
# IMMEDIATE: PostgreSQL fires deferred events at COMMIT until none remain. What COMMIT itself
# does comes after every check in the transaction; the run reads its rows back once it is done.
HOP = """
CREATE TABLE public.hop (n int, v text);
CREATE FUNCTION public.hop_next() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  SET CONSTRAINTS ALL DEFERRED;
  IF NEW.n > 0 THEN INSERT INTO public.hop VALUES (NEW.n - 1, NEW.v);
  ELSE DELETE FROM {table} WHERE version = NEW.v;
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER hop AFTER INSERT ON public.hop DEFERRABLE INITIALLY DEFERRED
  FOR EACH ROW EXECUTE FUNCTION public.hop_next();
"""


@pytest.mark.parametrize("table", [HISTORY, JOURNAL])
@pytest.mark.parametrize("path", list(PATHS))
def test_a_row_removed_at_commit_itself_is_found_after_it(ready: Project, path: str, table: str) -> None:
    _prepare_tables(ready)
    ready.query(HOP.format(table=table))
    _files(ready, path)
    second = ready.migrations / f"{_version(2)}_f2.sql"
    second.write_text(second.read_text() + f"insert into public.hop values (5, '{_version(2)}');\n")
    result = ready.guard("run")
    assert "Traceback" not in result.output, result.output
    assert result.code == 4, result.output
    report = result.report
    assert report is not None and report["status"] == "failed_partially_applied"
    assert [m["status"] for m in report["migrations"]] == ["applied"] * 3  # they are: their changes committed
    error = report["migrations"][1]["error"]
    assert error is not None and "gone after COMMIT" in error["message"] and _version(2) in report["message"]
    assert [m["error"] for m in report["migrations"][::2]] == [None, None]
    assert ready.table_exists("public.t2")
    history, journal_rows, _, _ = _state(ready)
    gone_from = history if table == HISTORY else journal_rows
    assert _version(2) not in gone_from and _version(3) in gone_from
