"""What the application wrote since a run: the state the run left, recorded at its end, set
against the present.

At the end of a run (``record``) guard stores, in ``guard.run_rows``, one md5 per row of what
it may later have to overwrite: the rows its UPDATEs left (``rows:<copy>``, the whole row as
``to_jsonb``), and the (key, value) pairs of each column it added or retyped
(``col:<relid>.<attnum>``). It also returns checksums of its protective copies and of every
table it copied from, for the after-catalog. Undo then knows exactly, row by row, what the
application changed since: a row whose md5 is not among those the run left. (Exact up to an
md5 collision; keyed by column name, so column order does not matter.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import sql

if TYPE_CHECKING:
    import psycopg

# The catalogs record() reads and fills are guard.undo.catalog.Catalog (which imports this module).
Catalog = Any

# Order-independent and keyed by column name (a re-added column that comes last is the same
# row); constant memory: the sum of each row's md5 (first 60 bits), not one aggregated string.
TABLE_CHECKSUM = (
    "SELECT count(*), coalesce(sum(('x' || substr(md5(to_jsonb(t)::text), 1, 15))::bit(60)::bigint), 0) "
    "FROM {table} t"
)


# One statement each: record() may make the table inside a pipelined transaction
# (guard.db.pipelined_transaction), where a query string holding two statements is refused
# ("cannot insert multiple commands into a prepared statement": the extended protocol).
CREATE_ROWS = (
    """
CREATE TABLE IF NOT EXISTS guard.run_rows (
    run_id text NOT NULL,
    part   text NOT NULL,
    hash   text NOT NULL
)""",
    "CREATE INDEX IF NOT EXISTS run_rows_part ON guard.run_rows (run_id, part, hash)",
)
REVOKE_ROWS = "REVOKE ALL ON TABLE guard.run_rows FROM PUBLIC"
ROWS_EXIST = "SELECT to_regclass('guard.run_rows') IS NOT NULL"
RUN_COPIES = "SELECT copy, source_oid::text, restore_sql, kind FROM guard.copies WHERE run_id = %s"
ROWS_AND_COPIES_EXIST = "SELECT to_regclass('guard.run_rows') IS NOT NULL, to_regclass('guard.copies') IS NOT NULL"
PRIMARY_KEY = """
SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod) FROM pg_index i
  JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
 WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
 ORDER BY array_position(i.indkey, a.attnum)
"""
DELETE_RUN_ROWS = "DELETE FROM guard.run_rows WHERE run_id = %s"


def checksum(conn: psycopg.Connection[Any], table: str) -> str:
    """``rows:sum`` of ``table`` (a quoted name), independent of row and column order."""
    row = conn.execute(sql.SQL(TABLE_CHECKSUM).format(table=sql.SQL(table))).fetchone()
    return f"{row[0]}:{row[1]}" if row else "0:"


def row_hash(alias: str) -> str:
    """md5 of a whole row, by column name."""
    return f"md5(to_jsonb({alias})::text)"


def column_hash(alias: str, keys: list[str], column: str) -> str:
    """md5 of (primary key, column) of a row; the whole row without a primary key."""
    if not keys:
        return row_hash(alias)
    listed = ", ".join(f"{alias}.{k}" for k in [*keys, column])
    return f"md5(jsonb_build_array({listed})::text)"


def key_columns(conn: psycopg.Connection[Any], table: str) -> list[tuple[str, str]]:
    """(quoted name, type) of the primary key of ``table`` (its quoted name now), in key order;
    [] without one."""
    return [(r[0], r[1]) for r in conn.execute(PRIMARY_KEY, (table,)).fetchall()]


def literal(value: str) -> str:
    return sql.Literal(value).as_string(None)


COPY_COLUMN_NAMES = "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped"


def _copy_join(conn: psycopg.Connection[Any], copy: str, source: str, keys: list[tuple[str, str]], before: Catalog,
               after: Catalog) -> str | None:
    """Rows of the table (t, its key by its names now) and of a copy (c) that are the same
    row, or None (no primary key, or a key column the copy does not name). A copy calls a
    column by its name when it was made: before a RENAME COLUMN of the run, by its name before
    the run. A copy of an UPDATE of the key keeps each row's new key as guard_new_<n>."""
    names = {r[0] for r in conn.execute(COPY_COLUMN_NAMES, (copy,)).fetchall()}
    if not keys:
        return None
    if all(f"guard_new_{i}" in names for i in range(len(keys))):
        return " AND ".join(f"t.{k} = c.guard_new_{i}::{type_}" for i, (k, type_) in enumerate(keys))
    parts = []
    for quoted, type_ in keys:
        key = next((k for k, c in after.columns.items() if c["table"] == source
                    and sql.Identifier(c["name"]).as_string(None).strip('"') == quoted.strip('"')), None)
        named = [c["name"] for c in (after.columns.get(key or ""), before.columns.get(key or "")) if c]
        held = next((n for n in named if n in names), None)
        if held is None:
            return None
        parts.append(f"t.{quoted} = c.{sql.Identifier(held).as_string(None)}::{type_}")
    return " AND ".join(parts)


def column_written(conn: psycopg.Connection[Any], run_id: str, table: str, key: str, column: str) -> int:
    """Rows of ``table`` (its name now) whose (key, ``column``) the run did not leave: values the
    application wrote since, rows it inserted with a value in ``column`` included."""
    keys = [k for k, _ in key_columns(conn, table)]
    col = sql.Identifier(column).as_string(None)
    query = (f"SELECT count(*) FROM {table} t WHERE t.{col} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM guard.run_rows r "
             f"WHERE r.run_id = {literal(run_id)} AND r.part = {literal('col:' + key)} "
             f"AND r.hash = {column_hash('t', keys, col)})")
    row = conn.execute(query.encode(), binary=True).fetchone()  # one statement (model.one_statement)
    return int(row[0]) if row else 0


def ensure(conn: psycopg.Connection[Any]) -> None:
    """``guard.run_rows``, closed to PUBLIC."""
    if conn.execute(ROWS_EXIST).fetchone() == (True,):
        return
    _create(conn)


def _create(conn: psycopg.Connection[Any]) -> None:
    from guard.guard_schema import close_schema

    for statement in CREATE_ROWS:
        conn.execute(statement)
    conn.execute(REVOKE_ROWS)
    close_schema(conn, "guard")  # whatever default privileges gave Supabase's API roles


def _inserted(conn: psycopg.Connection[Any], insert: sql.Composable, params: tuple[Any, ...]) -> int:
    """The number of rows ``insert`` (an INSERT without RETURNING) wrote, counted by the
    server: in pipeline mode (record() runs in guard.db.pipelined_transaction) a cursor's
    rowcount is -1 until its results are read, and an INSERT has no row to read."""
    row = conn.execute(sql.SQL("WITH written AS ({} RETURNING 1) SELECT count(*) FROM written").format(insert),
                       params).fetchone()
    return int(row[0]) if row else 0


def record(conn: psycopg.Connection[Any], run_id: str, before: Catalog, after: Catalog) -> None:
    """Store what the run left (in the caller's transaction): row hashes in ``guard.run_rows``
    (their parts and counts in ``after.parts``), and in ``after``: ``copies`` (copy -> checksum)
    and ``checksums`` of the tables copied from."""
    row = conn.execute(ROWS_AND_COPIES_EXIST).fetchone()  # one round trip for both
    rows_exist, copies_exist = row if row is not None else (False, False)
    if not rows_exist:
        _create(conn)
    conn.execute(DELETE_RUN_ROWS, (run_id,))
    copies = conn.execute(RUN_COPIES, (run_id,)).fetchall() if copies_exist else []
    for copy, source, restore_sql, kind in copies:
        if conn.execute("SELECT to_regclass(%s) IS NOT NULL", (copy,)).fetchone() != (True,):
            continue
        after.copies[copy] = checksum(conn, copy)
        if source in after.tables:
            after.checksums.setdefault(source, checksum(conn, after.tables[source]))
            keys = key_columns(conn, after.tables[source])
            on = _copy_join(conn, copy, source, keys, before, after) if kind == "rows" else None
            if on and restore_sql.lstrip().upper().startswith("UPDATE"):
                after.parts[f"rows:{copy}"] = _inserted(conn, sql.SQL(
                    "INSERT INTO guard.run_rows (run_id, part, hash) SELECT %s, %s, " + row_hash("t")
                    + " FROM {table} t WHERE EXISTS (SELECT 1 FROM {copy} c WHERE " + on + ")"
                ).format(table=sql.SQL(after.tables[source]), copy=sql.SQL(copy)), (run_id, f"rows:{copy}"))
    for key, col in after.columns.items():
        old = before.columns.get(key)
        if col["table"] not in before.tables or (old is not None and old["type"] == col["type"]):
            continue
        names = [k for k, _ in key_columns(conn, after.tables[col["table"]])]
        after.parts[f"col:{key}"] = _inserted(conn, sql.SQL(
            "INSERT INTO guard.run_rows (run_id, part, hash) SELECT %s, %s, "
            + column_hash("t", names, sql.Identifier(col["name"]).as_string(None)) + " FROM {table} t"
        ).format(table=sql.SQL(after.tables[col["table"]])), (run_id, f"col:{key}"))

