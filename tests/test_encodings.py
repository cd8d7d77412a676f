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
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from tests.support import Project, Result

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


# --- guard's own text: file names, the reason, CI facts -----------------------------------------
# What guard itself writes (the history's name column, its journal, the backup log entry) must
# fit the database's encoding too. One it cannot hold is refused before any change, naming the
# file or the flag and the encoding: before, the run stopped at its journal with an internal
# error naming neither (LATIN1), or applied and could not close its journal (SQL_ASCII: jsonb
# takes no \u escape of a non-ASCII character there).

def _guard_rows(project: Project) -> list[tuple[Any, ...]]:
    if not project.table_exists("guard.runs"):
        return []
    return project.query("SELECT run_id FROM guard.runs")


def _one_error_line(result: Any, *needles: str) -> str:
    assert "internal error" not in result.output and "Traceback" not in result.output, result.output
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def _untouched(project: Project) -> None:
    assert _guard_rows(project) == [] and project.manual_entries() == []
    assert project.history() == [] and not project.table_exists("public.t1")


_UNHELD = [  # (encoding, a name with a character it cannot hold)
    ("LATIN1", "caf\u00e9_\U0001F600"), ("LATIN1", "price_\u20ac"), ("LATIN1", "\u8fc1\u79fb"),
    ("LATIN1", "\u043c\u0438\u0433\u0440\u0430\u0446\u0438\u044f"),
    ("WIN1251", "\u043c\u0438\u0433\u0440\u0430\u0446\u0438\u044f_\u0e01"), ("WIN1251", "caf\u00e9"),
]


@pytest.mark.parametrize(("encoded", "name"), _UNHELD, indirect=["encoded"])
@pytest.mark.parametrize("lock_retries", [0, 1])  # streamed, and one file at a time
def test_a_file_name_the_database_cannot_hold_is_refused_before_any_change(
    encoded: tuple[Project, str], name: str, lock_retries: int,
) -> None:
    project, encoding = encoded
    _files(project, {}, lock_retries)
    (project.migrations / f"{BASE + 2}_f2.sql").unlink()
    bad = project.add(f"{BASE + 2}_{name}.sql", "create table public.bad (v text);\n")
    for command, code in (("run", 3), ("check", 3)):
        result = project.guard(command)
        assert result.code == code, result.output
        if command == "run":
            _one_error_line(result, bad.name, encoding)
        else:
            assert bad.name in result.output and encoding in result.output, result.output
        _untouched(project)


@pytest.mark.parametrize("encoded", ["LATIN1", "WIN1251", "SQL_ASCII"], indirect=True)
@pytest.mark.parametrize("lock_retries", [0, 1])
def test_a_file_name_the_database_holds_applies_and_the_journal_closes(
    encoded: tuple[Project, str], lock_retries: int,
) -> None:
    """SQL_ASCII holds any byte: a name with an emoji applies there, and the journal closes."""
    project, encoding = encoded
    name = {"LATIN1": "caf\u00e9_\u00fcber", "WIN1251": "\u043c\u0438\u0433\u0440\u0430\u0446\u0438\u044f",
            "SQL_ASCII": "caf\u00e9_\U0001F600_\u8fc1\u79fb"}[encoding]
    name += "_\u20ac" if encoding != "LATIN1" else ""  # WIN1251 holds the euro sign
    _files(project, {}, lock_retries)
    (project.migrations / f"{BASE + 2}_f2.sql").unlink()
    project.add(f"{BASE + 2}_{name}.sql", "create table public.t2 (v text);\n")
    result = project.guard("run", "--reason", f"ship {name}", GITHUB_REF=f"refs/heads/{name}")
    assert result.code == 0, result.output
    assert "Warning" not in result.stdout, result.stdout
    assert project.history() == _versions(FILES)
    assert project.query("SELECT name FROM supabase_migrations.schema_migrations WHERE version = %s",
                         (str(BASE + 2),)) == [(name,)]
    rows = project.query("SELECT status, finished_at IS NOT NULL, reason, report -> 'ci' ->> 'ref' FROM guard.runs")
    assert rows == [("applied", True, f"ship {name}", f"refs/heads/{name}")]
    assert [e["reason"] for e in project.manual_entries()] == [f"ship {name}"]


@pytest.mark.parametrize("encoded", ["LATIN1"], indirect=True)
@pytest.mark.parametrize("how", ["flag", "env", "config", "ci", "acknowledge", "wrapped"])
def test_a_reason_or_ci_fact_the_database_cannot_hold_is_refused_before_any_change(
    encoded: tuple[Project, str], how: str,
) -> None:
    project, encoding = encoded
    _files(project, {}, 0)
    text = "rollout \U0001F680"
    args, env, culprit = {
        "flag": (["--reason", text], {}, "--reason"),
        "env": ([], {"GUARD_REASON": text}, "reason"),
        "config": ([], {}, "reason"),
        "ci": ([], {"GITHUB_ACTIONS": "true", "GITHUB_REF": f"refs/heads/{text}"}, "GITHUB_REF"),
        # refused before the journal is read, let alone the acknowledgement written
        "acknowledge": (["--acknowledge", "20240101000000-abcde", "--reason", text], {}, "--reason"),
        "wrapped": (["--reason", text, "--", "true"], {}, "--reason"),
    }[how]
    if how == "config":
        (project.root / "guard.yml").write_text(f'reason: "{text}"\n', encoding="utf-8")
    result = project.guard("run", *args, **env)
    assert result.code == 2, result.output
    _one_error_line(result, culprit, encoding)
    _untouched(project)


@pytest.mark.parametrize("encoded", ["LATIN1"], indirect=True)
@pytest.mark.parametrize("args", [["--reason", "nightly \u2603\U0001F600"], ["--reason", "ok", "--meta", "where=\u5317\u4eac"]],
                         ids=["reason", "meta"])
def test_backup_log_refuses_text_the_database_cannot_hold(encoded: tuple[Project, str], args: list[str]) -> None:
    project, encoding = encoded
    before = project.query("SELECT count(*) FROM public.backup_logs")
    result = project.guard("backup", "log", *args)
    assert result.code == 2, result.output
    _one_error_line(result, args[-2], encoding)
    assert project.query("SELECT count(*) FROM public.backup_logs") == before
    held = project.guard("backup", "log", "--reason", "caf\u00e9", "--meta", "where=M\u00fcnchen")
    assert held.code == 0, held.output


@pytest.mark.parametrize("lock_retries", [0, 1])
def test_a_file_name_that_is_not_utf8_is_refused_before_any_change(ready: Project, lock_retries: int) -> None:
    """A name written in another encoding (Latin-1 bytes): no PostgreSQL text holds it as guard
    would send it, in any database encoding."""
    _files(ready, {}, lock_retries)
    (ready.migrations / f"{BASE + 2}_f2.sql").unlink()
    raw = bytes(ready.migrations) + f"/{BASE + 2}_caf".encode() + b"\xe9.sql"
    with open(raw, "wb") as handle:
        handle.write(b"create table public.bad (v text);\n")
    # guard prints the name's bytes as they are (as ls does): read them without failing on them
    proc = subprocess.run([sys.executable, "-m", "guard", "run"], cwd=ready.root, env=ready.env(),
                          capture_output=True, timeout=120, stdin=subprocess.DEVNULL)
    result = Result(proc.returncode, proc.stdout.decode(errors="backslashreplace"),
                    proc.stderr.decode(errors="backslashreplace"), None)
    assert result.code == 3, result.output
    _one_error_line(result, f"{BASE + 2}_caf\\xe9.sql", "byte 0xe9", "UTF-8")
    assert ready.history() == [] and not ready.table_exists("public.t1") and ready.manual_entries() == []


@pytest.mark.parametrize("encoded", ["LATIN1"], indirect=True)
def test_a_report_the_database_cannot_hold_still_closes_the_journal(encoded: tuple[Project, str]) -> None:
    """A check's output in a script LATIN1 has no equivalent for (any tool's output, a path):
    the journal records the report with such characters escaped rather than staying open,
    which would block every later run."""
    project, _encoding = encoded
    project.add(f"{BASE + 1}_f1.sql", "create table public.t1 (v text);\n")
    (project.root / "guard.yml").write_text(
        "verify:\n  - name: long\n    run: [python3, -c, \"print('\u043e' * 300); raise SystemExit(1)\"]\n",
        encoding="utf-8")
    result = project.guard("run")
    assert result.code == 4, result.output
    assert "could not close the journal" not in result.output, result.output
    rows = project.query("SELECT status, finished_at IS NOT NULL, report::text FROM guard.runs")
    assert [r[:2] for r in rows] == [("verify_failed", True)], rows
    assert "\\\\u043e" * 3 in rows[0][2], rows[0][2][:2000]
    again = project.guard("run")  # not refused as an unfinished run
    assert again.code == 0, again.output


@pytest.mark.parametrize("encoded", ["LATIN1"], indirect=True)
def test_a_migrations_directory_the_database_cannot_hold_is_named(encoded: tuple[Project, str]) -> None:
    """The files' paths (in the report guard journals) hold the directory's name too."""
    project, encoding = encoded
    folder = project.root / "\u043c\u0438\u0433\u0440\u0430\u0446\u0438\u0438"
    folder.mkdir()
    (folder / f"{BASE + 1}_one.sql").write_text("create table public.t1 (v text);\n", encoding="utf-8")
    result = project.guard("run", "--migrations-dir", folder.name)
    assert result.code == 3, result.output
    _one_error_line(result, f"{folder.name}/{BASE + 1}_one.sql", encoding, "U+043C")
    _untouched(project)
    check = project.guard("check", "--migrations-dir", folder.name)
    assert check.code == 3 and f"{folder.name}/{BASE + 1}_one.sql" in check.output, check.output
