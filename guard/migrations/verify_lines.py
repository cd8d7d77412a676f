"""A migration file's own checks: ``-- guard:verify <sql>`` lines (issue #19).

Each line is one check, named ``file:line``: SQL that passes when it returns one row whose
first column is true. Read from ``MigrationFile.text`` (or the file, for a large one).

Only a real line comment counts, as PostgreSQL's lexer sees the text (pglast's ``scan``,
libpg_query's copy of ``scan.l``): ``guard:verify`` inside a string literal, a dollar-quoted
body (a function, a DO block) or a block comment is data, not a check. A check stands
between statements (on a line of its own, or after a statement's ``;``); one inside a
statement is an error naming its line, so that nobody believes in a check that is not one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from msgspec import Struct

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile, Statement

_VERIFY = re.compile(r"^--\s*guard:verify(?![\w:-])[ \t]*(.*?)\s*$", re.DOTALL)
MARK = "guard:verify"


class CheckLineError(ValueError):
    """A ``-- guard:verify`` line that cannot be a check: ``line`` (1-based) and ``reason``."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


class FileCheck(Struct, frozen=True):
    """One ``-- guard:verify`` line: its line number and the SQL it checks."""

    line: int  # 1-based line of the comment
    sql: str


def file_checks(file: MigrationFile) -> list[FileCheck]:
    """The ``-- guard:verify`` line comments of ``file``, in order. Raises CheckLineError
    (a ValueError) naming the line of an empty one, or of one inside a statement."""
    text = file.text if file.text is not None else file.path.read_text(encoding="utf-8")
    if MARK not in text:
        return []
    if text.startswith("\ufeff"):
        text = text[1:]  # files.load drops the BOM before splitting: keep offsets in step
    found = []
    starts = _line_starts(text)
    spans = _statement_spans(file.statements, starts)
    for offset, comment in _line_comments(text):
        match = _VERIFY.match(comment)
        if match is None:
            continue
        number = _line_of(starts, offset)
        if _inside(spans, offset):
            raise CheckLineError(number, "a -- guard:verify check must stand between statements, not inside one")
        sql = match.group(1).rstrip(";").strip()
        if not sql:
            raise CheckLineError(number, "-- guard:verify needs a query after it")
        found.append(FileCheck(number, sql))
    return found


def _line_comments(text: str) -> list[tuple[int, str]]:
    """(character offset, text) of each ``--`` comment PostgreSQL's lexer finds in ``text``
    that mentions guard:verify. pglast's tokens count characters, their end inclusive."""
    from pglast import parser

    return [(token.start, text[token.start:token.end + 1]) for token in parser.scan(text)
            if token.name == "SQL_COMMENT" and MARK in text[token.start:token.end + 1]]


def _line_starts(text: str) -> list[int]:
    starts = [0]
    at = text.find("\n")
    while at != -1:
        starts.append(at + 1)
        at = text.find("\n", at + 1)
    return starts


def _line_of(starts: list[int], offset: int) -> int:
    from bisect import bisect_right

    return bisect_right(starts, offset)


def _inside(spans: list[tuple[int, int]], offset: int) -> bool:
    """``offset`` lies in one of ``spans`` (sorted, not overlapping)."""
    from bisect import bisect_right

    at = bisect_right(spans, (offset, float("inf"))) - 1
    return at >= 0 and spans[at][0] <= offset < spans[at][1]


def _statement_spans(statements: tuple[Statement, ...], starts: list[int]) -> list[tuple[int, int]]:
    """[start, end) in characters of each statement, from its first token (leading comments,
    which the splitter keeps with the statement, are outside) to its last."""
    spans = []
    for st in statements:
        if not st.kind:
            continue  # a comment-only remainder
        first = starts[st.line - 1] + st.column - 1
        spans.append((first, st.offset + len(st.sql)))
    return spans
