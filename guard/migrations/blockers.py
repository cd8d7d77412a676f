"""After a lock timeout: who holds locks on the relations the statement needed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    from guard.report.model import MigrationError

LOCK_NOT_AVAILABLE = "55P03"
# Who holds a lock on the relations a statement needed (after it gave up waiting).
LOCK_HOLDERS = """
SELECT DISTINCT a.pid, a.application_name, a.usename, a.state, a.xact_start,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 200), l.mode, l.relation::regclass::text
  FROM pg_locks l
  JOIN pg_stat_activity a ON a.pid = l.pid
 WHERE l.granted AND l.pid <> pg_backend_pid()
   AND l.relation IN (SELECT to_regclass(name) FROM unnest(%s::text[]) AS name)
 ORDER BY a.xact_start NULLS LAST
 LIMIT 10
"""


def relations(statement: str) -> list[str]:
    """Relation names a statement refers to (schema-qualified when written so)."""
    import json

    from pglast import parser

    try:
        tree = json.loads(parser.parse_sql_json(statement))
    except Exception:  # noqa: BLE001 - naming blockers is best effort
        return []
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            # A RangeVar is wrapped ({"RangeVar": {...}}) in node lists, bare in typed fields.
            range_var = node.get("RangeVar", node if "relname" in node else None)
            if isinstance(range_var, dict) and isinstance(range_var.get("relname"), str):
                name = range_var["relname"]
                if range_var.get("schemaname"):
                    name = f"{range_var['schemaname']}.{name}"
                if name not in found:
                    found.append(name)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(tree)
    return found


def name_blockers(conn: psycopg.Connection[Any], error: MigrationError, statement: str) -> None:
    """After a lock timeout: who holds locks on the statement's relations, and a hint."""
    import psycopg

    names = relations(statement)
    if not names or conn.broken or conn.closed:
        return
    try:
        rows = conn.execute(LOCK_HOLDERS, (names,)).fetchall()
    except psycopg.Error:
        return
    error.blockers = [
        {
            "pid": r[0], "application_name": r[1], "user": r[2], "state": r[3],
            "transaction_started": r[4].isoformat() if r[4] else None, "query": r[5],
            "mode": r[6], "relation": r[7],
        }
        for r in rows
    ]
    if rows:
        oldest = rows[0]
        error.hint = (
            f"{len(rows)} session(s) hold locks on {', '.join(sorted({r[7] for r in rows}))}: "
            f"pid {oldest[0]} ({oldest[1] or oldest[2]}, {oldest[3]}, in a transaction since "
            f"{oldest[4].isoformat() if oldest[4] else '?'}). Retry when it has finished, in a "
            "quiet period, or set migrations.lock_retries"
        )
