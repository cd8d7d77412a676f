"""Checksums for the safety-net tests: a table's data and the parts of its definition that
restore SQL must bring back."""

from __future__ import annotations

from typing import Any

import psycopg

from guard.protect.order import restore_order
from tests.support import Project

DATA = "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {table} t"
SHAPE = """
SELECT concat_ws(E'\\n',
  (SELECT string_agg(format('%%s %%s %%s %%s %%s %%s', a.attname, format_type(a.atttypid, a.atttypmod),
                            a.attnotnull, pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated),
                     ', ' ORDER BY a.attnum)
     FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
    WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
  (SELECT string_agg(conname || ' ' || pg_get_constraintdef(oid), ', ' ORDER BY conname)
     FROM pg_constraint WHERE conrelid = c.oid),
  (SELECT string_agg(pg_get_indexdef(indexrelid), ', ' ORDER BY 1) FROM pg_index WHERE indrelid = c.oid),
  (SELECT string_agg(polname || ' ' || polcmd::text || ' ' || coalesce(pg_get_expr(polqual, polrelid), '')
                     || ' ' || coalesce(pg_get_expr(polwithcheck, polrelid), '') || ' ' || polroles::text,
                     ', ' ORDER BY polname) FROM pg_policy WHERE polrelid = c.oid),
  c.relacl::text, c.relrowsecurity::text, pg_get_userbyid(c.relowner))
  FROM pg_class c WHERE c.oid = to_regclass(%s)
"""


def data(project: Project, table: str) -> str:
    """md5 of every row of ``table`` (order-independent)."""
    return str(project.query(DATA.format(table=table))[0][0])


def shape(project: Project, table: str) -> str:
    """Columns (types, defaults, not null, identity, generated), constraints, indexes, RLS
    policies, grants, row level security and owner of ``table``."""
    rows = project.query(SHAPE, (table,))
    return str(rows[0][0]) if rows else "<missing>"


def run_with_copies(project: Project, name: str, sql: str) -> dict[str, Any]:
    """Add ``sql`` as the migration file ``name`` and run guard: exit 0 with protective
    copies; its report."""
    project.add(name, sql)
    result = project.guard("run")
    assert result.code == 0, result.output
    assert result.report is not None and result.report["protective_copies"], result.output
    return result.report


def restore(project: Project, report: dict[str, Any], *, only: int | None = None) -> None:
    """Run the restore SQL of the report's copies (all, in the order the restore plan gives,
    the last destruction first; or one)."""
    copies = report["protective_copies"]
    chosen = restore_order(copies) if only is None else [copies[only]]
    with psycopg.connect(project.db_url, autocommit=True) as conn:
        for copy in chosen:
            conn.execute(copy["restore_sql"].encode())
