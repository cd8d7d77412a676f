"""The order in which protective copies' restore SQL runs: last destruction first.

A run may destroy the same data in steps (``DELETE`` some rows, later ``DROP TABLE``): the
``DELETE``'s copy can only go back into a table the ``DROP``'s restore SQL recreated, and an
``UPDATE`` after a ``DELETE`` must be undone before the deleted rows come back. So restore SQL
undoes statements in the reverse order of the run. The copies of one statement (a schema's
tables, an inheritance family, tables reached by ``CASCADE``) keep their own order: the later
ones' restore SQL may need the earlier ones' tables (foreign keys, ``INHERIT``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

C = TypeVar("C", bound=Mapping[str, Any])


def restore_order(copies: Sequence[C]) -> list[C]:
    """``copies`` (report entries with ``statement``: ``file:line``, in the order they were
    made) in the order their restore SQL must run: statement groups reversed, each group's
    copies in their own order."""
    groups: list[list[C]] = []
    for copy in copies:
        if groups and groups[-1][0].get("statement") == copy.get("statement"):
            groups[-1].append(copy)
        else:
            groups.append([copy])
    return [copy for group in reversed(groups) for copy in group]
