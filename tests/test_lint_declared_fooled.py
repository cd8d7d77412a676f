"""Earlier files that try to fool the declared-schema reading into a false "safe".

Each case: migration files in order; the last file is linted with the earlier ones as what the
migration set declares (and, separately, the files after the first linted as one batch, with
the first as context). The verdict must be risky, and PostgreSQL must agree: the files run on a
real database whose table holds rows, and the trace of the last file's last statement shows a
scan or a rewrite under a lock blocking writes. A false "safe" is worse than a false alarm.
"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from guard.lint import lint_paths
from guard.lint.trace import trace_statements

ROWS = "insert into items (id, note) select g, 'x' from generate_series(1, 50) g;"
TABLE = "create table items (id int, note text, price int, code varchar(20){});\n" + ROWS
SET_NN = "alter table items alter column note set not null;"

CASES: dict[str, list[str]] = {
    # an unnamed CHECK is dropped by the name PostgreSQL gave it (items_note_check)
    "unnamed-check-dropped": [TABLE.format(", check (note is not null)"),
                              "alter table items drop constraint items_note_check;", SET_NN],
    "check-renamed-then-dropped": [TABLE.format(", constraint c1 check (note is not null)"),
                                   "alter table items rename constraint c1 to c2;\n"
                                   "alter table items drop constraint c2;", SET_NN],
    # the CHECK follows its column (attnum) to its new name; a new column takes the old name
    "column-renamed-new-one-added": [TABLE.format(", constraint c1 check (note is not null)"),
                                     "alter table items rename column note to memo;\n"
                                     "alter table items add column note text default 'y';", SET_NN],
    # dropping the column drops its CHECK
    "column-dropped-and-re-added": [TABLE.format(", constraint c1 check (note is not null)"),
                                    "alter table items drop column note;\n"
                                    "alter table items add column note text default 'y';", SET_NN],
    # IF NOT EXISTS meets the table: PostgreSQL keeps the old one (no CHECK, code text)
    "create-if-not-exists-no-op": [TABLE.format(""),
                                   "create table if not exists items (id int, note text, constraint c1 "
                                   "check (note is not null));", SET_NN],
    "create-if-not-exists-keeps-type": [TABLE.format("").replace("varchar(20)", "text"),
                                        "create table if not exists items (id int, code varchar(20));",
                                        "alter table items alter column code type varchar(50);"],
    # a later NOT VALID CHECK on another column is validated, not the one on note
    "other-check-validated": [TABLE.format(""),
                              "alter table items add constraint c1 check (note is not null) not valid,\n"
                              "  add constraint c2 check (price > 0 or price is null) not valid;",
                              "alter table items validate constraint c2;", SET_NN],
    # (plpgsql: a SQL function whose body is a constant is inlined, volatile or not)
    "function-made-volatile": [TABLE.format("") + "\ncreate function f() returns int language plpgsql "
                                                  "immutable as 'begin return 1; end';",
                               "alter function f() volatile;",
                               "alter table items add column c int default f();"],
    # pg_catalog is searched first: the unqualified call is the built-in, volatile one
    "builtin-shadowed-elsewhere": [TABLE.format("") + "\ncreate schema app;\ncreate function app.gen_random_uuid() "
                                                      "returns uuid language sql immutable as 'select null::uuid';",
                                   "alter table items add column c uuid default gen_random_uuid();"],
    "domain-of-same-name-elsewhere": [TABLE.format("") + "\ncreate schema app;\ncreate domain app.email as text "
                                                         "check (value like '%@%');\ncreate domain public.email as text;",
                                      "alter table items add column e app.email;"],
}


def _files(tmp_path: Path, texts: list[str]) -> list[Path]:
    paths = []
    for n, text in enumerate(texts):
        path = tmp_path / f"2024010{n + 1}000000_step.sql"
        path.write_text(text + "\n")
        paths.append(path)
    return paths


@pytest.mark.parametrize("name", sorted(CASES))
def test_earlier_files_cannot_make_a_risky_statement_look_safe(name: str, tmp_path: Path, db_url: str) -> None:
    texts = CASES[name]
    paths = _files(tmp_path, texts)
    risky = ("locking", "destructive")
    declared = [f for f in lint_paths(paths[-1:], display_root=tmp_path, context=paths[:-1]) if f.category in risky]
    assert declared, f"{name}: judged safe from the declarations"
    batch = [f for f in lint_paths(paths[1:], display_root=tmp_path, context=paths[:1])
             if f.category in risky and f.file.endswith(paths[-1].name)]
    assert batch, f"{name}: judged safe within the batch"
    with psycopg.connect(db_url, autocommit=True) as conn:
        for text in texts[:-1]:
            conn.execute(text)
        *before, last = [s.strip().rstrip(";") + ";" for s in texts[-1].split(";\n") if s.strip().rstrip(";")]
        for sql in before:
            conn.execute(sql)
        result = trace_statements(conn, [last])[-1]
    assert result.error is None, result.error
    assert result.blocking_work, f"{name}: PostgreSQL did no blocking work: {result.as_dict()}"


# The same reading keeps what still proves the statement safe (no false alarm).
STILL_SAFE: dict[str, list[str]] = {
    "unnamed-check-kept": [TABLE.format(", check (note is not null)"), SET_NN],
    "check-renamed": [TABLE.format(", constraint c1 check (note is not null)"),
                      "alter table items rename constraint c1 to c2;", SET_NN],
    "column-renamed-with-its-check": [TABLE.format(", constraint c1 check (note is not null)"),
                                      "alter table items rename column note to memo;",
                                      "alter table items alter column memo set not null;"],
    "unnamed-not-valid-validated-by-its-name": [TABLE.format(""),
                                                "alter table items add check (note is not null) not valid;",
                                                "alter table items validate constraint items_note_check;", SET_NN],
    "other-column-dropped": [TABLE.format(", constraint c1 check (note is not null)"),
                             "alter table items drop column price;", SET_NN],
}


@pytest.mark.parametrize("name", sorted(STILL_SAFE))
def test_what_still_proves_a_statement_safe_is_kept(name: str, tmp_path: Path, db_url: str) -> None:
    texts = STILL_SAFE[name]
    paths = _files(tmp_path, texts)
    risky = ("locking", "destructive")
    declared = [f for f in lint_paths(paths[-1:], display_root=tmp_path, context=paths[:-1]) if f.category in risky]
    assert not declared, f"{name}: {declared}"
    with psycopg.connect(db_url, autocommit=True) as conn:
        for text in texts[:-1]:
            conn.execute(text)
        result = trace_statements(conn, [texts[-1]])[-1]
    assert result.error is None and not result.blocking_work, result.as_dict()
