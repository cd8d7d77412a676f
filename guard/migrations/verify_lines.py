"""A migration file's own checks: ``-- guard:verify <sql>`` lines (issue #19).

Each line is one check, named ``file:line``: SQL that passes when it returns one row whose
first column is true. Read from ``MigrationFile.text`` (or the file, for a large one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile

_VERIFY = re.compile(r"^\s*--\s*guard:verify\b[ \t]*(.*?)\s*$")


@dataclass(frozen=True)
class FileCheck:
    line: int  # 1-based line of the comment
    sql: str


def file_checks(file: MigrationFile) -> list[FileCheck]:
    """The ``-- guard:verify`` lines of ``file``, in order; an empty one is a ValueError
    naming its line."""
    text = file.text if file.text is not None else file.path.read_text(encoding="utf-8")
    if "guard:verify" not in text:
        return []
    found = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _VERIFY.match(line)
        if match is None:
            continue
        sql = match.group(1).rstrip(";").strip()
        if not sql:
            raise ValueError(f"line {number}: -- guard:verify needs a query after it")
        found.append(FileCheck(number, sql))
    return found
