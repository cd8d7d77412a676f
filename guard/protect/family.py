"""Inheritance families: a statement on a parent table without ONLY reaches its children.

``DELETE FROM parent`` deletes rows of every table that inherits from it, ``UPDATE parent``
changes them, ``TRUNCATE parent`` empties them all and ``DROP TABLE parent CASCADE`` drops
them (ddl-inherit.html). A child may have columns of its own that the parent's RETURNING
cannot return, and its rows belong back in the child, not in the parent. So each table of the
family gets a copy of its own, read with ONLY, and restore SQL that puts its rows back where
they were. Partitioned tables are not families here: their partitions share the parent's
columns, and an INSERT into the parent routes each row back to its partition.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

from guard.protect import identity
from guard.protect.catalog import LOCK_WRITERS, Resolved, has_rules
from guard.protect.targets import Member, capture_family

if TYPE_CHECKING:
    import psycopg

# The Protector (guard.protect) calls in with itself: typed Any, so this module does not import
# its caller back.
Protector = Any

# Every table inheriting from %s, at any depth (PostgreSQL's find_all_inheritors), but
# temporary ones (this session's: nothing that existed before the run), with their direct
# parents. Partitions are not looked for: a partitioned table is read whole.
DESCENDANTS = """
WITH RECURSIVE tree(oid) AS (
  SELECT inhrelid FROM pg_inherits WHERE inhparent = %s
  UNION
  SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid
)
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname),
       (SELECT array_agg(p.inhparent::regclass::text ORDER BY p.inhseqno) FROM pg_inherits p WHERE p.inhrelid = c.oid)
  FROM tree JOIN pg_class c ON c.oid = tree.oid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'f') AND c.relpersistence <> 't'
 ORDER BY c.oid
"""


def descendants(protector: Protector, conn: psycopg.Connection[Any], parent: Resolved, where: str) -> list[Resolved]:
    """The tables that inherit from ``parent`` (a table, not a partitioned one), resolved as
    the Protector resolves a target; a child too large to copy is in ``protector.skipped``."""
    if parent.relkind != "r":
        return []
    found = []
    for name, parents in conn.execute(DESCENDANTS, (parent.oid,)).fetchall():
        resolved = protector._resolve(conn, name, where)  # noqa: SLF001 - the Protector's own helper
        if resolved is not None:
            resolved.parents = list(parents or ())
            found.append(resolved)
    return found


def capture(
    protector: Protector, conn: psycopg.Connection[Any], tables: list[Resolved], where: str, text: str,
    *, update: bool,
) -> str | None:
    """Empty copies, one per table of the family (``tables[0]`` the parent), that the rewritten
    DELETE or UPDATE ``text`` fills itself (None: not rewritable, so whole copies first)."""
    p = protector
    me = p._identity  # noqa: SLF001
    if update:  # the parent's lock covers the whole family, foreign tables but
        conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(tables[0].name)))
    others = [t.oid for t in tables[1:]]
    foreign = any(t.relkind == "f" for t in tables)  # no ctid to find a row by
    if (me is not None and not identity.can_read(conn, me, tables[0].oid, family=others)) or foreign or (
            _not_single(text, update)) or has_rules(conn, tables[0].oid, "2" if update else "4"):
        for table in tables:
            if table.relkind != "f":  # LOCK TABLE takes no foreign table
                conn.execute(sql.SQL(LOCK_WRITERS).format(rel=sql.SQL(table.own)))
            p._copy_table(conn, table, where, merge=True)  # noqa: SLF001
        return None
    count = me is None or not me.switched
    members: list[Member] = []
    for table in tables:
        copy, copy_text = p._new_copy(conn, table)  # noqa: SLF001
        columns = p._columns(conn, table)  # noqa: SLF001
        conn.execute(sql.SQL("CREATE TABLE {copy} AS SELECT {cols} FROM {source} WITH NO DATA").format(
            copy=copy, cols=columns, source=sql.SQL(table.own)))
        p._lock_down(conn, copy, rls=count)  # noqa: SLF001
        if not count and me is not None:
            identity.let_write(conn, me, p.schema, copy, copy_text)
        restore = p._update_back(conn, table, copy_text) if update else p._insert(conn, table, copy_text)  # noqa: SLF001
        p._register(conn, table, copy_text, "rows", where, None, restore)  # noqa: SLF001
        p._seen.add(table.oid)  # noqa: SLF001
        members.append(Member(table.oid, table.name, columns.as_string(conn), copy_text, copy_text))
    return capture_family(text, members, tables[0].name, update=update, count=count)


def _not_single(text: str, update: bool) -> bool:
    from guard.protect.targets import _single

    return _single(text, "UpdateStmt" if update else "DeleteStmt") is None

