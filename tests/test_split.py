"""Splitting big files in pieces gives exactly what one parse of the whole file gives."""

from __future__ import annotations

import pytest
from pglast import parser

from guard.errors import MigrationFileError
from guard.migrations import files

# Every construct in which a ';' at the end of a line is not the end of a statement.
TRICKY = [
    "create function public.f{i}() returns int language plpgsql as $body$\n"
    "declare v int := 0;\nbegin\n  v := v + 1;\n  return v;\nend $body$;\n",
    "insert into public.t values ('a;\n b;\n', $$ x;\n $$);\n",
    "/* a block comment;\n still the comment;\n */ select 1;\n",
    "create function public.g{i}() returns int language sql begin atomic\n  select 1;\n  select 2;\nend;\n",
    "create rule r{i} as on insert to public.t do also (\n  insert into public.a values (1);\n"
    "  insert into public.b values (2)\n);\n",
    "-- a line comment;\nselect 'it''s';\n",
    "select $tag$ nested $$ ;\n $$ still $tag$;\n",
    "do $$ begin perform 1;\n end $$;\n",
]


def _sql(repeat: int) -> str:
    return "".join(part.format(i=i) for i in range(repeat) for part in TRICKY)


@pytest.mark.parametrize("piece", [37, 200, 1000])
def test_pieces_split_exactly_like_one_parse(monkeypatch: pytest.MonkeyPatch, piece: int) -> None:
    text = _sql(12)
    whole = files.split_statements(text)
    monkeypatch.setattr(files, "PARSE_PIECE_CHARS", piece)
    calls: list[int] = []
    original = parser.parse_sql_json

    def counting(sql: str) -> str:
        calls.append(len(sql))
        return original(sql)

    monkeypatch.setattr(parser, "parse_sql_json", counting)
    assert files.split_statements(text) == whole
    assert len(whole) == 12 * len(TRICKY)  # one statement each: no cut inside any of them
    assert len(calls) > 1 and max(calls) < len(text)  # really in pieces, never the whole file at once


def test_syntax_error_in_a_later_piece_names_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _sql(6) + "select 1;\nselect from where;\n" + _sql(2)
    monkeypatch.setattr(files, "PARSE_PIECE_CHARS", 150)
    with pytest.raises(MigrationFileError) as caught:
        files.split_statements(text, "big.sql")
    bad_line = text[: text.index("select from where")].count("\n") + 1
    assert caught.value.line == bad_line, caught.value


def test_unterminated_dollar_quote_is_reported_where_it_opens(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _sql(4) + "create function public.h() returns int language sql as $x$ select 1;\n" + "select 2;\n" * 50
    monkeypatch.setattr(files, "PARSE_PIECE_CHARS", 100)
    with pytest.raises(MigrationFileError) as caught:
        files.split_statements(text, "big.sql")
    assert caught.value.line == text[: text.index("$x$")].count("\n") + 1
    assert "unterminated dollar-quoted string" in str(caught.value)
