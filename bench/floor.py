"""The floor for many files: psql's reference script (bench/run.py psql_script: per file
BEGIN, the file, its history row, COMMIT) sent by a bare Python client as ONE simple-query
message, so no round trip is paid between statements.

    python bench/floor.py URL SCRIPT

It guards nothing (no lock, backup check, journal, session reset, timeouts, lint, catalogs,
report) and parses nothing: the interpreter, psycopg's import, one connection and the
server's own work for the same statements psql sends. guard's time above it is what guarding
costs; psql's time above it is psql's round trips. A statement that fails stops the message
(PostgreSQL abandons the rest of a simple query string), and the exit code says so.
"""

from __future__ import annotations

import sys
from pathlib import Path

import psycopg


def main() -> int:
    url, script = sys.argv[1], Path(sys.argv[2])
    with psycopg.connect(url, autocommit=True) as conn:
        # No parameters: psycopg sends a simple Query message, several statements allowed.
        conn.execute(script.read_text(encoding="utf-8"), prepare=False)  # type: ignore[call-overload]
    return 0


if __name__ == "__main__":
    sys.exit(main())
