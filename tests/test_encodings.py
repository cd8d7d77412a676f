"""Databases whose encoding is not UTF8: guard sends the files as the UTF-8 text they are
(client_encoding UTF8, as psql in a UTF-8 locale), the server converts.

A character the database cannot hold is the failure of the file that holds it (SQLSTATE
22P05, from the server), streamed or one file at a time: the files before it commit, the
history and the journal agree. Before, the client failed to encode it and guard stopped
with an internal error, a whole stream's files unapplied; in a SQL_ASCII database (psycopg
read it as ASCII) any non-ASCII character was that internal error. A NUL byte,
which no PostgreSQL text holds, is a file guard refuses before any change.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support import Project

BASE = 20240101000000
FILES = 30  # more than the first stream (pipeline.STREAM_FIRST_FILES): a second one is built ahead


class _Utf8Project(Project):
    """The test's own connections read text as UTF-8 (psycopg returns bytes for SQL_ASCII);
    guard gets the URL as it is."""

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True, client_encoding="UTF8") as conn:
            cursor = conn.execute(sql, params or None)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description is not None else []

    def init_backup_log(self) -> None:
        from guard.backups.table import install
        from guard.config import BackupLogConfig

        with psycopg.connect(self.db_url, autocommit=True, client_encoding="UTF8") as conn:
            install(conn, BackupLogConfig())


@pytest.fixture(params=["LATIN1", "SQL_ASCII"])
def encoded(request: pytest.FixtureRequest, pg_cluster: Any, db_url: str, tmp_path: Path) -> Iterator[tuple[Project, str]]:
    """A project on a database in the parameter's encoding, with the backup log guard needs."""
    encoding = request.param
    name = db_url.rsplit("/", 1)[1].split("?")[0] + "_enc"
    ident = sql.Identifier(name)
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {} ENCODING {} LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0")
                     .format(ident, sql.Literal(encoding)))
    project = _Utf8Project(tmp_path, pg_cluster.url(name))
    try:
        project.init_backup_log()
        project.log_automated_backup(age=dt.timedelta(hours=1))
        yield project, encoding
    finally:
        with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


def _files(project: Project, special: dict[int, str], lock_retries: int) -> None:
    for n in range(1, FILES + 1):
        project.add(f"{BASE + n}_f{n}.sql", f"create table public.t{n} (v text);\n{special.get(n, '')}")
    if lock_retries:
        (project.root / "guard.yml").write_text(f"migrations:\n  lock_retries: {lock_retries}\n")


def _versions(count: int) -> list[str]:
    return [str(BASE + n) for n in range(1, count + 1)]


@pytest.mark.parametrize("encoded", ["LATIN1"], indirect=True)  # SQL_ASCII holds any byte
@pytest.mark.parametrize("lock_retries", [0, 1])  # streamed, and one file at a time
@pytest.mark.parametrize("failing", [2, 25, 27])  # first stream, its last file, the one built ahead
def test_a_character_the_database_cannot_hold_fails_its_file(
    encoded: tuple[Project, str], failing: int, lock_retries: int,
) -> None:
    project, _encoding = encoded
    _files(project, {failing: "insert into public.t1 values ('price: \u20ac');\n"}, lock_retries)
    result = project.guard("run")
    assert result.code == 4, result.output
    assert "internal error" not in result.output
    before = _versions(failing - 1)
    assert project.history() == before
    assert sorted(r[0] for r in project.query("SELECT version FROM guard.run_commits")) == before
    assert result.report is not None
    statuses = [m["status"] for m in result.report["migrations"]]
    assert statuses == ["applied"] * (failing - 1) + ["failed"] + ["skipped"] * (FILES - failing)
    error = result.report["migrations"][failing - 1]["error"]
    assert error["sqlstate"] == "22P05" and error["file"].endswith(f"{BASE + failing}_f{failing}.sql")


@pytest.mark.parametrize("lock_retries", [0, 1])
def test_characters_the_database_holds_apply_and_read_back(encoded: tuple[Project, str], lock_retries: int) -> None:
    project, _encoding = encoded
    text = "caf\u00e9 \u00fcber"  # in LATIN1; SQL_ASCII stores the UTF-8 bytes as they come
    _files(project, {3: f"insert into public.t3 values ('{text}');\n",
                     27: f"-- {text}\ninsert into public.t27 values ('{text}');\n"}, lock_retries)
    result = project.guard("run")
    assert result.code == 0, result.output
    assert project.history() == _versions(FILES)
    assert sorted(r[0] for r in project.query("SELECT version FROM guard.run_commits")) == _versions(FILES)
    assert project.query("SELECT v FROM public.t3 UNION ALL SELECT v FROM public.t27") == [(text,), (text,)]
    # The history holds the statements as the file has them.
    statements = project.query("SELECT statements FROM supabase_migrations.schema_migrations WHERE version = %s",
                               (str(BASE + 27),))
    assert statements == [(["create table public.t27 (v text)", f"-- {text}\ninsert into public.t27 values ('{text}')"],)]


@pytest.mark.parametrize("body", [
    "create table public.t3 (v text);\n-- a comment \x00\ncreate table public.hidden (v text);\n",  # after it: unseen
    "create table public.t3 (v text) -- x\x00y\n;\n",  # inside a statement's comment
    "create table public.t3 (v text);\n-- trailing\x00\n",  # the file's last comment
    "c\x00r\x00e\x00a\x00t\x00e\x00 \x00",  # UTF-16 saved without its BOM
], ids=["before-unseen-text", "in-a-statement", "trailing-comment", "utf-16"])
@pytest.mark.parametrize("lock_retries", [0, 1])
def test_a_nul_byte_in_a_file_is_refused_before_any_change(ready: Project, body: str, lock_retries: int) -> None:
    """libpq sends a statement as a C string and PostgreSQL's parser reads one: text after a
    NUL byte would be neither linted nor run. Streamed, the history row's NUL failed the whole
    stream as a "broken connection"; one file at a time, the file's history row."""
    _files(ready, {}, lock_retries)
    ready.add(f"{BASE + 3}_f3.sql", body)
    result = ready.guard("run")
    assert result.code == 3, result.output
    error = [line for line in result.stderr.splitlines() if "error:" in line]
    line = body[:body.index("\x00")].count("\n") + 1
    assert len(error) == 1 and f"{BASE + 3}_f3.sql:{line}: a NUL byte" in error[0], result.stderr
    assert ready.history() == [] and not ready.table_exists("public.t1")
