"""The labelled lint corpus: `load()` reads the cases of tests/lint_corpus/*.sql.

A case starts at a line `-- case: <id>[ | <note>]`; its statements run in one transaction
(one migration file), and the last one is the one labelled by its file's name: destructive,
locking, breaking or safe. Notes: `trace: non-transactional` (PostgreSQL refuses it in a
transaction block: not traced), `needs: catalog` (right only with a database at hand),
`trace: lock held` (an explicit LOCK: confirmed by the lock it holds, not by a scan),
`after: [SQLSTATE ]SQL` (what a later client meets, checked in the case's transaction:
tests/test_lint_corpus.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
LABELS = ("destructive", "locking", "breaking", "safe")
SETUP = HERE / "setup.sql"
_CASE = re.compile(r"^-- case: (?P<id>\S+)(?: \| (?P<note>.*))?$", re.M)


@dataclass(frozen=True)
class Case:
    id: str
    label: str
    sql: str  # the whole case, as a migration file holds it
    statements: tuple[str, ...]
    note: str = ""

    @property
    def risky(self) -> bool:
        return self.label != "safe"


def load() -> list[Case]:
    """Every case, in file order; raises ValueError for a file or case that breaks the format."""
    from pglast import parser

    cases: list[Case] = []
    for label in LABELS:
        text = (HERE / f"{label}.sql").read_text()
        marks = list(_CASE.finditer(text))
        for n, mark in enumerate(marks):
            end = marks[n + 1].start() if n + 1 < len(marks) else len(text)
            sql = text[mark.end():end].strip() + "\n"
            statements = tuple(s.strip() for s in parser.split(sql))
            if not statements:
                raise ValueError(f"{label}.sql: case {mark.group('id')} has no statement")
            cases.append(Case(mark.group("id"), label, sql, statements, (mark.group("note") or "").strip()))
    return cases
