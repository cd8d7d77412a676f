"""What making the start fast (issue #20) put at risk: imports moved into the functions that
use them, and undo's tables made by `guard init` as well as by a run.

A lazily imported name that a module still uses at run time outside its function, or still
lists in ``__all__``, fails only on the rare path that reaches it (a traceback, not an
answer); the package is read with ``ast`` to find them all, nothing imported. And two guards
making undo's tables at once (`guard init` beside a first run) must both find them made.
"""

from __future__ import annotations

import ast
import threading
import time
from pathlib import Path

import psycopg

from guard.undo import catalog

GUARD = Path(__file__).resolve().parent.parent / "guard"


def _type_checking(node: ast.AST) -> bool:
    return isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)


def _bound(node: ast.AST) -> set[str]:
    """Names a module-level statement binds (imports, defs, classes, assignments)."""
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in node.names}
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets: list[ast.AST] = []
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
        targets = [node.target]
    names = set()
    for target in targets:
        names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    if isinstance(node, (ast.If, ast.Try)) and not _type_checking(node):
        for child in ast.iter_child_nodes(node):
            names |= _bound(child)
    return names


def _declared_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            return [e.value for e in ast.walk(node.value) if isinstance(e, ast.Constant) and isinstance(e.value, str)]
    return []


def test_every_name_in_all_is_bound_by_its_module() -> None:
    # guard.protect listed `targets` after the statement parser became a lazy import: `from
    # guard.protect import *` then bound the submodule guard.protect.targets, not the function.
    unbound = []
    for path in sorted(GUARD.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        bound: set[str] = set()
        for node in tree.body:
            bound |= _bound(node)
        unbound += [f"{path.relative_to(GUARD.parent)}: {name}" for name in _declared_all(tree) if name not in bound]
    assert unbound == []


def _runtime_uses(tree: ast.Module, names: set[str]) -> list[int]:
    """Lines where one of ``names`` is read at run time (not in an annotation) by code with no
    import of it of its own."""
    in_annotation: set[int] = set()
    for node in ast.walk(tree):
        for attr in ("annotation", "returns"):
            annotation = getattr(node, attr, None)
            if annotation is not None:
                in_annotation |= {id(n) for n in ast.walk(annotation)}
    lines = []

    def visit(node: ast.AST, imported: frozenset[str]) -> None:
        if _type_checking(node):
            return
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            imported = imported | {(a.asname or a.name).split(".")[0] for n in ast.walk(node)
                                   if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
        if isinstance(node, ast.Name) and node.id in names and id(node) not in in_annotation \
                and node.id not in imported:
            lines.append(node.lineno)
        for child in ast.iter_child_nodes(node):
            visit(child, imported)

    visit(tree, frozenset())
    return lines


def test_no_name_imported_only_for_type_checking_runs() -> None:
    # `except psycopg.Error`, isinstance(x, Target), a call: each needs the import where it runs.
    found = []
    for path in sorted(GUARD.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        only_typing: set[str] = set()
        bound: set[str] = set()
        for node in tree.body:
            if _type_checking(node):
                only_typing |= {(a.asname or a.name).split(".")[0] for n in ast.walk(node)
                                if isinstance(n, (ast.Import, ast.ImportFrom)) for a in n.names}
            else:
                bound |= _bound(node)
        only_typing -= bound
        found += [f"{path.relative_to(GUARD.parent)}:{line}" for line in _runtime_uses(tree, only_typing)]
    assert found == []


WAITING = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"


def _wait_until_blocked(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as watch:
        for _ in range(200):
            if watch.execute(WAITING).fetchone() == (1,):
                return
            time.sleep(0.05)
    raise AssertionError("the second guard never waited for the first")


def test_two_guards_making_undos_tables_at_once_both_find_them(db_url: str) -> None:
    # `guard init` beside a first run (init takes no run lock), guard's schema already there
    # (made by an earlier guard): the second CREATE TABLE IF NOT EXISTS waited for the first
    # and then failed on pg_type's unique index, and that run recorded nothing for undo.
    with psycopg.connect(db_url, autocommit=True) as setup:
        from guard import journal

        journal.ensure(setup)
    errors: list[Exception] = []

    def second() -> None:
        with psycopg.connect(db_url, autocommit=True) as conn:
            try:
                catalog.ensure(conn)
            except psycopg.Error as exc:
                errors.append(exc)

    with psycopg.connect(db_url) as first:  # its transaction stays open: made, not committed
        catalog.ensure(first)
        thread = threading.Thread(target=second)
        thread.start()
        try:
            _wait_until_blocked(db_url)
        finally:
            first.commit()
            thread.join(30)
    assert not thread.is_alive() and errors == []
    with psycopg.connect(db_url, autocommit=True) as check:
        assert check.execute(catalog.TABLES_EXIST).fetchone() == (True,)


ODD_POLICIES = '''
CREATE SCHEMA "fn ""s""";
CREATE FUNCTION "fn ""s""".ok(int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1 > 0';
CREATE TYPE public.mood AS ENUM ('a', 'b');
CREATE TABLE "fn ""s""".t (id int, m public.mood, t text, j jsonb, owner name);
ALTER TABLE "fn ""s""".t ENABLE ROW LEVEL SECURITY;
CREATE POLICY w ON "fn ""s""".t AS RESTRICTIVE FOR INSERT TO pg_read_all_data, lazy_paths_reader
    WITH CHECK (t::varchar(3) = 'abc'::text AND m = 'a'::public.mood);
CREATE POLICY u ON "fn ""s""".t FOR UPDATE TO PUBLIC, lazy_paths_reader USING ("fn ""s""".ok(id))
    WITH CHECK (j ? 'k' AND (j->>'k')::int > 2);
CREATE POLICY s ON "fn ""s""".t FOR SELECT TO CURRENT_USER, SESSION_USER
    USING (owner = current_user OR EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = owner));
CREATE POLICY a ON "fn ""s""".t FOR ALL WITH CHECK (now() > '2020-01-01'::timestamptz AND t ~* '^a' COLLATE "C");
GRANT USAGE ON SCHEMA "fn ""s""" TO lazy_paths_reader;
'''


def test_policy_fingerprints_match_earlier_guards_for_any_reader_and_search_path(db_url: str) -> None:
    # The pg_policies view reads pg_authid as its owner; pg_policy joined to pg_roles must give
    # a role that may not read pg_authid the same md5, whatever its search_path (names in the
    # expressions are qualified by it, in both forms alike).
    from test_catalog_reads import PG_POLICIES_FORM

    from guard import fingerprint

    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute("DO $$ BEGIN CREATE ROLE lazy_paths_reader NOLOGIN; "
                      "EXCEPTION WHEN duplicate_object THEN NULL; END $$")
        admin.execute(ODD_POLICIES)
    for setup in ("SET search_path = public", 'SET search_path = "fn ""s""", public',
                  "SET ROLE lazy_paths_reader", 'SET ROLE lazy_paths_reader; SET search_path = "fn ""s"""'):
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(setup)
            now = {name: value for (kind, name), value in fingerprint.take(conn, histories=False).objects.items()
                   if kind == "policy"}
            earlier = {r[1]: r[2] for r in conn.execute(PG_POLICIES_FORM).fetchall()}
            assert len(now) == 4 and now == earlier, setup
