"""What the safety net's runtime tripwire costs (issue #13): before/after figures.

    python bench/tripwire.py                 # ~1 min; prints a Markdown table
    python bench/tripwire.py --runs 9 --tables 500 --rows 100000

1. A file deleting 100k rows: the same transaction timed without the tripwire (before) and
   with it (after: its snapshot statement after BEGIN and its check before COMMIT), in a
   database with ``--tables`` other tables (the tripwire's work grows with the number of tables,
   not rows). Both register the statement's protective copy, so only the tripwire differs.
   Interleaved, a fresh table each time, median of ``--runs``.
2. 1,000 plain DDL files (the benchmark of bench/run.py): how many files the tripwire is armed
   for (none: plain DDL needs none, so no statement is added) and what deciding that costs,
   against one `guard run` of those files.

Starts its own throw-away PostgreSQL (guard.embedded.Cluster). Target: < 5% in both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from guard.backups.table import install  # noqa: E402
from guard.config import BackupLogConfig  # noqa: E402
from guard.embedded import Cluster  # noqa: E402
from guard.migrations.files import discover, load  # noqa: E402
from guard.protect.targets import capture_delete  # noqa: E402
from guard.tripwire import BEFORE_RUN, CHECK, START, needs_tripwire  # noqa: E402

REGISTER = """
CREATE SCHEMA IF NOT EXISTS guard;
CREATE TABLE IF NOT EXISTS guard.copies (copy text PRIMARY KEY, run_id text, source text, kind text,
  rows bigint, source_oid oid, expires_at timestamptz, xact xid8 DEFAULT pg_current_xact_id())
"""
COPY_ROW = ("INSERT INTO guard.copies (copy, run_id, source, kind, rows, source_oid) "
            "VALUES (%s, 'bench', 'public.items', 'rows', %s, 'public.items'::regclass)")
# The register as guard creates it (guard.protect.CREATE_REGISTRY), minus what the bench needs not.


def setup(url: str, tables: int) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(REGISTER)
        for i in range(tables):
            conn.execute(f"CREATE TABLE IF NOT EXISTS public.other_{i} (id int PRIMARY KEY, v text)")
            conn.execute(f"INSERT INTO public.other_{i} VALUES (1, 'x') ON CONFLICT DO NOTHING")
        # As autovacuum leaves a live database: statistics say which tables hold rows (the
        # tripwire measures the size of a table only when its statistics say it is empty).
        conn.execute("ANALYZE")


def one_delete(
    conn: psycopg.Connection[Any], rows: int, *, tripwire: bool, guarded: bool, n: int,
) -> tuple[float, float]:
    """Seconds (whole transaction, the tripwire's two statements) for BEGIN ... DELETE of
    ``rows`` rows ... COMMIT, with or without the tripwire; ``guarded``: as guard runs it, the
    DELETE rewritten to copy the rows it deletes. ``conn``: one session for every file, as
    guard applies a release (its catalog caches are warm after the first file)."""
    conn.execute("DROP TABLE IF EXISTS public.items; "
                 "CREATE TABLE public.items (id int PRIMARY KEY, payload text)")
    conn.execute("INSERT INTO public.items SELECT g, md5(g::text) FROM generate_series(1, %s) g", (rows,))
    conn.execute("VACUUM ANALYZE public.items")
    conn.execute("DROP TABLE IF EXISTS guard.bench_copy")
    row = conn.execute(BEFORE_RUN, ("guard_backup",)).fetchone()
    before_run = row[0] if row else "{}"
    statement = "DELETE FROM public.items"
    if guarded:
        conn.execute("CREATE TABLE guard.bench_copy AS SELECT * FROM public.items WITH NO DATA")
        statement = capture_delete(statement, "guard.bench_copy", f"copy_{n}") or statement
    started = time.perf_counter()
    conn.execute("BEGIN")
    own = 0.0
    if tripwire:
        conn.execute(START, (before_run,))
        own += time.perf_counter() - started
    conn.execute(COPY_ROW, (f"copy_{n}", None if guarded else rows))
    conn.execute(statement)
    if tripwire:
        checking = time.perf_counter()
        conn.execute(CHECK)
        own += time.perf_counter() - checking
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - started
    assert conn.execute("SELECT count(*) FROM public.items").fetchone() == (0,)
    return elapsed, own


def deletes(
    cluster: Cluster, runs: int, rows: int, tables: int, *, guarded: bool
) -> tuple[float, list[float], list[float]]:
    """Median ms without the tripwire, and per interleaved pair of ``runs``: the ratio
    after/before of the whole transaction, and the tripwire's own statements / before."""
    with psycopg.connect(cluster.url(), autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bench_tripwire")
        conn.execute("CREATE DATABASE bench_tripwire")
    url = cluster.url("bench_tripwire")
    setup(url, tables)
    before: list[float] = []
    ratios: list[float] = []
    own: list[float] = []
    with psycopg.connect(url, autocommit=True) as conn:
        one_delete(conn, rows, tripwire=True, guarded=guarded, n=-1)  # warm the caches once
        for n in range(runs):
            plain = one_delete(conn, rows, tripwire=False, guarded=guarded, n=2 * n)[0]
            total, part = one_delete(conn, rows, tripwire=True, guarded=guarded, n=2 * n + 1)
            before.append(plain)
            ratios.append(total / plain)
            own.append(part / plain)
    return statistics.median(before) * 1000, ratios, own


def many_files(cluster: Cluster, workdir: Path, count: int, runs: int) -> tuple[int, list[float], list[float]]:
    """(files armed, ms to decide for all per run, ms of each of ``runs`` guard runs of them,
    each into a fresh database)."""
    root = workdir / "many"
    migrations = root / "supabase" / "migrations"
    migrations.mkdir(parents=True)
    for i in range(count):
        (migrations / f"{20240101000000 + i}_f{i}.sql").write_text(f"create table public.t{i} (id int);\n")
    files = [load(ref) for ref in discover(migrations)]
    decide: list[float] = []
    armed = 0
    for _ in range(runs):
        started = time.perf_counter()
        armed = sum(1 for f in files if needs_tripwire(f.statements))
        decide.append((time.perf_counter() - started) * 1000)
    run_ms: list[float] = []
    for _ in range(runs):
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS bench_files")
            conn.execute("CREATE DATABASE bench_files")
        with psycopg.connect(cluster.url("bench_files"), autocommit=True) as conn:
            install(conn, BackupLogConfig())
            conn.execute("INSERT INTO public.backup_logs (kind, reason, created_by, created_at, metadata) "
                         "VALUES ('automated', 'nightly', 'bench', now() - interval '1 hour', "
                         "'{\"status\": \"completed\"}')")
        env = dict(os.environ, GUARD_DATABASE_URL=cluster.url("bench_files"))
        started = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "guard", "run"],
                              cwd=root, env=env, capture_output=True, text=True, check=False)
        run_ms.append((time.perf_counter() - started) * 1000)
        if proc.returncode != 0:
            print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"guard run of {count} files failed (exit {proc.returncode})")
    return armed, decide, run_ms


def spread(values: list[float]) -> str:
    """Median and range of ratios, as percentages over 1."""
    pct = [100 * (v - 1) for v in values]
    return f"{statistics.median(pct):+.1f}% ({min(pct):+.1f}% … {max(pct):+.1f}%)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--tables", type=int, default=100)
    parser.add_argument("--files", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="guard-tripwire-") as tmp, Cluster(password=None) as cluster:
        figures = {guarded: deletes(cluster, args.runs, args.rows, args.tables, guarded=guarded)
                   for guarded in (True, False)}
        armed, decide, run_ms = many_files(cluster, Path(tmp), args.files, max(3, args.runs // 3))
    load_avg = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"load average (1/5/15 min) at the end: {load_avg}; {os.cpu_count()} CPUs\n")
    print("| case | before (no tripwire), median | after / before: median (min … max) "
          "| tripwire's own statements / before: median (min … max) |")
    print("| --- | --- | --- | --- |")
    for guarded, (before, ratios, own) in figures.items():
        what = "as guard runs it (the DELETE copies its rows)" if guarded else "the bare DELETE alone"
        print(f"| file deleting {args.rows:,} rows, {what}; {args.tables} other tables; {args.runs} pairs "
              f"| {before:.1f} ms | {spread(ratios)} | {spread([1 + o for o in own])} |")
    shares = [1 + d / r for d, r in zip(decide, run_ms, strict=True)]
    print(f"| {args.files:,} plain DDL files: armed for {armed}, so no statement is sent; {len(run_ms)} runs "
          f"| {statistics.median(run_ms):.0f} ms (guard run) | {spread(shares)} (deciding: "
          f"{statistics.median(decide):.1f} ms) | none |")

if __name__ == "__main__":
    main()
