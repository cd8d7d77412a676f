"""The one place undo reads protective copies: an adapter over guard/protect.py's interface.

Undo builds on what protect.py registers today (``guard.copies``: source, copy, kind,
statement, rows, restore SQL; its ``CopyRecord``) and on the copy tables themselves. When that
interface changes, only this module follows it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from guard.protect import CopyRecord

if TYPE_CHECKING:
    import psycopg

COPIES_EXIST = "SELECT to_regclass('guard.copies') IS NOT NULL"
RUN_COPIES = """
SELECT source, copy, kind, statement, rows, bytes, restore_sql FROM guard.copies
 WHERE run_id = %s
 ORDER BY created_at DESC, copy DESC
"""
COPY_COLUMNS = """
SELECT attname FROM pg_attribute
 WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""


@dataclass(frozen=True)
class Copy:
    """A protective copy as undo uses it: the record and the copy table's columns in order."""

    record: CopyRecord
    columns: tuple[str, ...]
    exists: bool = True  # False: registered, but the copy table is gone (pruned)

    @property
    def column(self) -> str | None:
        """For a column copy (the key, then the column), the column it holds."""
        return self.columns[-1] if self.record.kind == "column" and self.columns else None

    @property
    def updates(self) -> bool:
        """The copy puts back values of rows that still exist (an UPDATE), not missing rows."""
        return self.record.restore_sql.lstrip().upper().startswith("UPDATE")


def run_copies(conn: psycopg.Connection[Any], run_id: str) -> list[Copy]:
    """The copies ``run_id`` made, newest first (the order that undoes them); a copy whose
    table is gone (``guard backup prune``) has ``exists`` False."""
    if conn.execute(COPIES_EXIST).fetchone() != (True,):
        return []
    found = []
    for source, copy, kind, statement, rows, size, restore_sql in conn.execute(RUN_COPIES, (run_id,)).fetchall():
        record = CopyRecord(source=source, copy=copy, kind=kind, statement=statement or "", rows=rows,
                            bytes=size, restore_sql=restore_sql or "")
        columns = tuple(r[0] for r in conn.execute(COPY_COLUMNS, (copy,)).fetchall())
        found.append(Copy(record, columns, exists=bool(columns)))
    return found
