"""Which statements a protective copy comes before, read cheaply from their text.

``INSERT ... ON CONFLICT (...) DO UPDATE`` (an upsert) overwrites every existing row whose key
one of its rows meets (sql-insert.html, "ON CONFLICT Clause"), as an UPDATE does: the
Protector copies its target table whole, as for MERGE, before it runs. Any other INSERT
(``DO NOTHING`` too) overwrites nothing; a seed file of thousands of them must keep the fast
path (no parse, no client work between statements), so only an INSERT whose text holds both
words ``conflict`` and ``update`` is parsed (and a SELECT holding ``with`` and a writing verb:
its data-modifying WITH queries are copied whole too) (a comment cannot split a keyword; a string that
merely holds the words costs a parse, nothing more).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from guard.migrations.files import Statement

_CONFLICT = re.compile("conflict", re.IGNORECASE)
_UPDATE = re.compile("update", re.IGNORECASE)
_WITH = re.compile(r"\bwith\b", re.IGNORECASE)
_WRITES = re.compile(r"\b(?:delete|update|insert|merge)\b", re.IGNORECASE)


def may_overwrite(sql: str) -> bool:
    """Whether the INSERT ``sql`` may be an upsert that overwrites rows (the words ``conflict``
    and ``update`` both in its text); False means it certainly is not."""
    return _CONFLICT.search(sql) is not None and _UPDATE.search(sql) is not None


def copies_before(statement: Statement, kinds: Collection[str] | None) -> bool:
    """Whether a protective copy may have to come before ``statement``: its kind is one of
    ``kinds`` (None: any kind), and an INSERT only when it may overwrite rows."""
    if not statement.kind or kinds is None:
        return bool(statement.kind)
    if statement.kind not in kinds:
        return False
    if statement.kind == "SelectStmt":
        return may_write(statement.sql)
    return statement.kind != "InsertStmt" or may_overwrite(statement.sql) or may_write(statement.sql)


def may_write(sql: str) -> bool:
    """Whether the SELECT or INSERT ``sql`` may hold a data-modifying WITH query (`WITH d AS (DELETE ...)
    SELECT ...`, queries-with.html "Data-Modifying Statements in WITH"): the word WITH and one of
    DELETE, UPDATE, INSERT, MERGE; False means it certainly does not."""
    return _WITH.search(sql) is not None and _WRITES.search(sql) is not None
