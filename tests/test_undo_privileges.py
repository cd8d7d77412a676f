"""`guard undo` and privileges: an owner or an ACL the run changed is not inverted, and undo
said "the database is as before" (exit 0) with a GRANT to another role still in place. The
catalog fingerprint holds each object's owner and ACL now (guard/fingerprint.py _PRIVILEGES):
what is left differs, so the undo is partial (exit 4), says what, and the history keeps the
version; a grant taken back within the run, or an object the undo drops, leaves no trace."""

from __future__ import annotations

import pytest

from tests.support import Project

ROLE = "undo_priv_reader"
BEFORE = f"""
DO $$ BEGIN CREATE ROLE {ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END $$;
CREATE TABLE public.existing (id int, note text);
INSERT INTO public.existing VALUES (1, 'a');
CREATE FUNCTION public.answer() RETURNS int LANGUAGE sql AS 'SELECT 42';
CREATE SCHEMA app;
"""
ADDS = "create table public.newer (id int);\n"

CHANGES = {  # what the run does besides adding a table -> the fingerprint entry left changed
    "table grant": (f"grant select on public.existing to {ROLE};\n", "table privileges public.existing changed"),
    "grant to public": ("grant select on public.existing to public;\n", "table privileges public.existing changed"),
    "column grant": (f"grant update (note) on public.existing to {ROLE};\n", "column privileges public.existing.note added"),
    "function revoke": ("revoke execute on function public.answer() from public;\n",
                        "function privileges public.answer() changed"),
    "schema grant": (f"grant usage on schema app to {ROLE};\n", "schema privileges app changed"),
    "owner": (f"alter table public.existing owner to {ROLE};\n", "table privileges public.existing changed"),
    "default privileges": (f"alter default privileges in schema app grant select on tables to {ROLE};\n",
                           f"default privileges {'postgres'} app r added"),
}


@pytest.fixture
def project_before(ready: Project) -> Project:
    assert ready.guard("init").code == 0
    ready.query(BEFORE)
    return ready


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_privilege_the_run_changed_leaves_the_undo_partial_and_named(project_before: Project, change: str) -> None:
    sql, left = CHANGES[change]
    project_before.add("20240101000000_p.sql", ADDS + sql)
    assert project_before.guard("run").code == 0
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 4, undone.output
    role = project_before.query("SELECT current_user")[0][0]
    assert left.replace("postgres", role) in undone.output, undone.output
    assert "the database is as before" not in undone.output
    assert project_before.history() == ["20240101000000"]  # kept: the release is not undone whole
    assert not project_before.table_exists("public.newer")  # what could be inverted was


def test_a_grant_taken_back_within_the_run_leaves_no_trace(project_before: Project) -> None:
    project_before.add("20240101000000_p.sql", ADDS + f"grant select, insert on public.existing to {ROLE};\n"
                       f"revoke select, insert on public.existing from {ROLE};\n"
                       "grant all on public.existing to public;\nrevoke all on public.existing from public;\n"
                       "revoke all on public.existing from public;\n"  # PUBLIC had nothing: no change
                       "grant select on public.newer to public;\n")
    assert project_before.guard("run").code == 0
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert "the database is as before" in undone.output and project_before.history() == []


def test_a_run_recorded_before_privileges_were_read_is_undone_as_before(project_before: Project) -> None:
    """A fingerprint stored by an earlier guard holds no owners or ACLs: they are left out of
    the comparison, not reported as all added."""
    project_before.add("20240101000000_p.sql", ADDS)
    assert project_before.guard("run").code == 0
    project_before.query(
        "UPDATE guard.run_catalogs SET fingerprint = (SELECT COALESCE(jsonb_object_agg(key, value), '{}') "
        "FROM jsonb_each(fingerprint) WHERE key NOT LIKE '%privileges %') WHERE phase = 'before'")
    assert project_before.query("SELECT count(*) FROM guard.run_catalogs, jsonb_object_keys(fingerprint) k "
                                "WHERE phase = 'before' AND k LIKE '%privileges%'") == [(0,)]
    undone = project_before.guard("undo", "--yes")
    assert undone.code == 0, undone.output
    assert project_before.history() == []


def test_a_wrapped_tool_that_grants_is_seen_changing_that_table(project_before: Project) -> None:
    script = project_before.root / "grant.sh"
    script.write_text(f"#!/bin/sh\npsql -X -q -d \"$GUARD_DATABASE_URL\" -c 'grant select on public.existing to {ROLE}'\n")
    script.chmod(0o755)
    result = project_before.guard("run", "--reason", "grant", "--", str(script))
    assert result.code == 0, result.output
    changes = result.report["wrapped"]["changes"] if result.report else []
    names = [f"{c['kind']} {c['name']} {c['action']}" for c in changes]
    assert names == ["table privileges public.existing changed"], names
