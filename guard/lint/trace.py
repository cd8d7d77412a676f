"""The server as the oracle: run statements and record what each one locked, scanned and rewrote.

Per statement, on the tables that existed before the first one (with their rows):
- the locks the transaction holds once it ran (`pg_locks` of this backend: locks are kept to
  the end of the transaction, so a lock taken by an earlier statement of the same file
  counts: it is held while this one works);
- rewritten: `pg_class.relfilenode` changed (the table got a new file);
- scanned: `pg_stat_xact_user_tables.seq_scan` grew within the transaction (the view shows
  the current transaction's own counts, read before and after the statement);
- seconds: how long the statement ran, i.e. held its new locks before the next statement.

Source: PostgreSQL 15 docs, "pg_locks" (view-pg-locks.html) and "The Cumulative Statistics
System" (monitoring-stats.html, pg_stat_xact_user_tables).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from msgspec import Struct, field

from guard.lint import locks

TABLES = """
SELECT c.oid, format('%I.%I', n.nspname, c.relname), c.relfilenode,
       coalesce(s.seq_scan, 0), coalesce(s.n_tup_del + s.n_tup_upd, 0),
       (SELECT count(*) FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attisdropped),
       c.relkind::text, c.relispopulated
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_stat_xact_user_tables s ON s.relid = c.oid
 WHERE c.relkind IN ('r', 'm', 'p')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
   AND n.nspname NOT LIKE 'pg_temp%%'
"""
HELD_LOCKS = """
SELECT relation, mode FROM pg_locks
 WHERE pid = pg_backend_pid() AND locktype = 'relation' AND granted
"""


class TraceResult(Struct, frozen=True):
    """What one statement did. locks: table -> strongest mode the transaction holds on it
    (PostgreSQL's names, e.g. "ACCESS EXCLUSIVE"); rewritten / scanned: tables; seconds: its
    run time; error: the server's message when it failed (later statements are not run)."""

    sql: str
    locks: dict[str, str] = field(default_factory=dict)
    rewritten: tuple[str, ...] = ()
    scanned: tuple[str, ...] = ()
    seconds: float = 0.0
    error: str | None = None
    sqlstate: str | None = None
    destroyed: tuple[str, ...] = ()  # dropped, emptied (new file), lost a column, or rows deleted/updated
    matviews: tuple[str, ...] = ()  # materialized views among the tables above (no client writes them)

    @property
    def strongest(self) -> str | None:
        return locks.strongest(list(self.locks.values()))

    @property
    def blocking_work(self) -> tuple[str, ...]:
        """Tables this statement read or rewrote in full while writers (or readers) were blocked:
        the observed meaning of the lint's "locking". Only REFRESH writes a materialized view,
        so there only a lock blocking reads counts (REFRESH ... CONCURRENTLY's EXCLUSIVE lets
        readers through: docs, REFRESH MATERIALIZED VIEW)."""
        worked = set(self.rewritten) | set(self.scanned)
        return tuple(sorted(t for t in worked if self.locks.get(t) in
                            (locks.BLOCKS_READS if t in self.matviews else locks.BLOCKS_WRITES)))

    def as_dict(self) -> dict[str, object]:
        return {"sql": self.sql, "locks": self.locks, "rewritten": list(self.rewritten),
                "scanned": list(self.scanned), "destroyed": list(self.destroyed),
                "seconds": round(self.seconds, 6), "error": self.error}


# oid -> name, relfilenode, seq_scan, del+upd, dropped columns, relkind, relispopulated
Snapshot = dict[int, tuple[str, int, int, int, int, str, bool]]


def _tables(conn: Any) -> Snapshot:
    return {row[0]: tuple(row[1:]) for row in conn.execute(TABLES).fetchall()}


def trace_statements(conn: Any, statements: Sequence[str], *, commit: bool = False,
                     setup: Callable[[Any], object] | None = None) -> list[TraceResult]:
    """Run `statements` in one transaction on `conn` (a psycopg connection, e.g. to a shadow
    database whose tables hold rows), one TraceResult each, then roll back (commit=True keeps
    the changes). `setup(conn)` runs first in the same transaction (e.g. rows seeded by
    guard.lint.seed): the locks it took are not counted as the statements'. A failing statement
    gets its error and ends the trace. Statements PostgreSQL refuses in a transaction block fail
    with SQLSTATE 25001: run those outside a trace. Raises psycopg errors only for the trace's
    own catalog reads (and whatever `setup` raises)."""
    import psycopg

    autocommit = conn.autocommit
    conn.autocommit = True
    results: list[TraceResult] = []
    try:
        conn.execute("BEGIN")
        if setup is not None:
            setup(conn)
        baseline = {(r, m) for r, m in conn.execute(HELD_LOCKS).fetchall()}
        before = _tables(conn)
        for sql in statements:
            now = _tables(conn)
            started = time.perf_counter()
            try:
                conn.execute(sql, prepare=False)
            except psycopg.Error as exc:
                diag = getattr(exc, "diag", None)
                results.append(TraceResult(sql, seconds=time.perf_counter() - started,
                                           error=str(exc).strip().splitlines()[0] if str(exc) else type(exc).__name__,
                                           sqlstate=getattr(diag, "sqlstate", None)))
                break
            seconds = time.perf_counter() - started
            results.append(_observe(conn, sql, before, now, seconds, baseline))
        conn.execute("COMMIT" if commit and not any(r.error for r in results) else "ROLLBACK")
    finally:
        if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
            conn.execute("ROLLBACK")
        conn.autocommit = autocommit
    return results


def _observe(conn: Any, sql: str, before: Snapshot, now: Snapshot, seconds: float,
             baseline: set[tuple[int, str]]) -> TraceResult:
    after = _tables(conn)
    held: dict[str, str] = {}
    for relation, mode in conn.execute(HELD_LOCKS).fetchall():
        if relation in before and (relation, mode) not in baseline:
            name = before[relation][0]
            modes = [locks.PG_LOCKS_MODE.get(mode, mode)] + ([held[name]] if name in held else [])
            held[name] = locks.strongest(modes) or mode
    both = [o for o in before if o in now and o in after]
    rewritten = tuple(sorted(before[o][0] for o in both if after[o][1] != now[o][1]))
    scanned = tuple(sorted(before[o][0] for o in both if after[o][2] > now[o][2]))
    destroyed = {before[o][0] for o in before if o in now and o not in after}
    destroyed |= {before[o][0] for o in both if after[o][3] > now[o][3] or after[o][4] > now[o][4]}
    destroyed |= {before[o][0] for o in rewritten_emptied(conn, both, now, after)}
    matviews = tuple(sorted(before[o][0] for o in before if before[o][5] == "m"))
    return TraceResult(sql, held, rewritten, scanned, seconds, destroyed=tuple(sorted(destroyed)),
                       matviews=matviews)


def rewritten_emptied(conn: Any, oids: list[int], now: Snapshot, after: Snapshot) -> list[int]:
    """Tables that got a new file and hold no row now (TRUNCATE moves no row counter), or
    materialized views left unpopulated (REFRESH ... WITH NO DATA: reading one is an error)."""
    out = []
    for oid in oids:
        if after[oid][1] != now[oid][1] and not after[oid][6]:
            out.append(oid)
        elif after[oid][1] != now[oid][1]:
            row = conn.execute(f"SELECT NOT EXISTS (SELECT FROM {after[oid][0]})").fetchone()
            if row and row[0]:
                out.append(oid)
    return out
