"""The one place undo reads protective copies: an adapter over guard/protect.py's interface.

Undo builds on what protect.py registers today (``guard.copies``: source, copy, kind,
statement, rows, restore SQL; its ``CopyRecord``) and on the copy tables themselves. When that
interface changes, only this module follows it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct

from guard.protect import (
    CREATE_REGISTRY,
    DEFAULT_RETENTION,
    REVOKE_REGISTRY,
    WHOLE_TABLE_RESTORE,
    CopyRecord,
)

if TYPE_CHECKING:
    import psycopg

COPIES_EXIST = "SELECT to_regclass('guard.copies') IS NOT NULL"
RUN_COPIES = """
SELECT source, copy, kind, statement, rows, bytes, restore_sql, source_oid::text FROM guard.copies
 WHERE run_id = %s
 ORDER BY created_at DESC, copy DESC
"""
COPY_COLUMNS = """
SELECT attname FROM pg_attribute
 WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum
"""


class Copy(Struct, frozen=True):
    """A protective copy as undo uses it: the record and the copy table's columns in order."""

    record: CopyRecord
    columns: tuple[str, ...]
    exists: bool = True  # False: registered, but the copy table is gone (pruned)
    source_oid: str | None = None  # the copied table's oid (guard.copies.source_oid; None from an older guard)

    @property
    def column(self) -> str | None:
        """For a column copy (the key, then the column), the column it holds."""
        return self.columns[-1] if self.record.kind == "column" and self.columns else None

    @property
    def updates(self) -> bool:
        """The copy puts back values of rows that still exist (an UPDATE), not missing rows."""
        return self.record.restore_sql.lstrip().upper().startswith("UPDATE")

    @property
    def whole(self) -> bool:
        """The copy holds a whole table to put back by difference: a MERGE's (or a DELETE or
        UPDATE copied whole, guard/protect WHOLE_TABLE_RESTORE), or an undo's (WHOLE_TABLE)."""
        return self.record.restore_sql.lstrip().startswith((WHOLE_TABLE_RESTORE, WHOLE_TABLE, "-- MERGE"))


def run_copies(conn: psycopg.Connection[Any], run_id: str) -> list[Copy]:
    """The copies ``run_id`` made, newest first (the order that undoes them); a copy whose
    table is gone (``guard backup prune``) has ``exists`` False."""
    if conn.execute(COPIES_EXIST).fetchone() != (True,):
        return []
    found = []
    for source, copy, kind, statement, rows, size, restore_sql, oid in conn.execute(RUN_COPIES, (run_id,)).fetchall():
        record = CopyRecord(source=source, copy=copy, kind=kind, statement=statement or "", rows=rows,
                            bytes=size, restore_sql=restore_sql or "")
        columns = tuple(r[0] for r in conn.execute(COPY_COLUMNS, (copy,)).fetchall())
        found.append(Copy(record, columns, exists=bool(columns), source_oid=oid))
    return found


# Undo's own copies of the present state, registered like the run's so that the undo can be
# undone by the same machinery: a whole table, put back by difference (guard/undo/data.py).
WHOLE_TABLE = "-- WHOLE TABLE as it was before guard undo: rows not in the copy go, rows only in the copy come back"
REGISTER_PRESENT = """
INSERT INTO guard.copies (copy, run_id, source, kind, statement, rows, restore_sql, source_oid, expires_at)
VALUES (%s, %s, %s, 'table', 'guard undo', %s, %s, to_regclass(%s)::oid, clock_timestamp() + %s * interval '1 second')
"""
# Columns of a type outside pg_catalog are kept as text, as protect.py does: the undo of the
# undo may drop and recreate that type.
PRESENT_COLUMNS = """
SELECT CASE WHEN n.nspname = 'pg_catalog' THEN quote_ident(a.attname)
            ELSE quote_ident(a.attname) || '::text AS ' || quote_ident(a.attname) END
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""


def present_columns(conn: psycopg.Connection[Any], table: str) -> str:
    """The select list that copies ``table`` (a quoted name) with custom types as text."""
    return ", ".join(r[0] for r in conn.execute(PRESENT_COLUMNS, (table,)).fetchall())


def register_present(conn: psycopg.Connection[Any], undo_id: str, table: str, copy: str, rows: int) -> None:
    """Register an undo's copy of ``table`` in ``guard.copies`` (the registry first)."""
    conn.execute(CREATE_REGISTRY)
    conn.execute(REVOKE_REGISTRY)
    conn.execute(REGISTER_PRESENT, (copy, undo_id, table, rows, WHOLE_TABLE, table, DEFAULT_RETENTION))
