"""migration-guard benchmarks: what guard costs on top of the migration itself.

    python bench/run.py [--quick] [--only startup,overhead,files,bigfile,lint,copy]

Starts its own throw-away PostgreSQL (fsync off: the figures compare tools on the same
cluster, not disks), makes a fresh database per measurement, and writes bench/RESULTS.md.
Every figure is a ratio against a reference measured in the same run, with absolute
times for context.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402

from guard.embedded import Cluster  # noqa: E402

PY = sys.executable
SUPABASE = REPO / ".tools" / "supabase" / "node_modules" / ".bin" / "supabase"
Row = tuple[str, ...]


def median_ms(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:3])} failed ({proc.returncode}): {proc.stderr[-400:]}")
    return proc


def peak_rss_mb(argv: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[float, float]:
    """(seconds, peak resident MB) of one run, via GNU time."""
    started = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed: {proc.stderr[-400:]}")
    kb = int(proc.stderr.strip().splitlines()[-1])
    return elapsed, kb / 1024


class Bench:
    def __init__(self, cluster: Cluster, workdir: Path, runs: int) -> None:
        self.cluster = cluster
        self.workdir = workdir
        self.runs = runs
        self.counter = 0
        self.psql = shutil.which("psql") or str(cluster.bin_dir / "psql")
        self.sections: list[tuple[str, list[str], list[Row], list[str]]] = []

    def fresh_db(self, *, guard_ready: bool = True) -> str:
        self.counter += 1
        name = f"bench_{self.counter}"
        with psycopg.connect(self.cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = self.cluster.url(name)
        if guard_ready:
            env = {**os.environ, "GUARD_DATABASE_URL": url}
            run([PY, "-m", "guard", "init"], env=env, cwd=self.workdir)
            run([PY, "-m", "guard", "backup", "log", "--kind", "automated", "--reason", "bench"], env=env, cwd=self.workdir)
        return url

    def project(self, files: dict[str, str]) -> Path:
        self.counter += 1
        root = self.workdir / f"p{self.counter}"
        migrations = root / "supabase" / "migrations"
        migrations.mkdir(parents=True)
        for name, text in files.items():
            (migrations / name).write_text(text)
        return root

    def guard_run(self, root: Path, url: str) -> None:
        run([PY, "-m", "guard", "run", "--report", str(root / "r.json")], cwd=root,
            env={**os.environ, "GUARD_DATABASE_URL": url})

    def psql_files(self, root: Path, url: str) -> None:
        """The reference: one psql connection, one transaction per file with its history row."""
        script = ["CREATE SCHEMA IF NOT EXISTS supabase_migrations;",
                  "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations "
                  "(version text PRIMARY KEY, statements text[], name text);"]
        for path in sorted((root / "supabase" / "migrations").glob("*.sql")):
            version, name = path.stem.split("_", 1)
            script += ["BEGIN;", f"\\i {path}",
                       f"INSERT INTO supabase_migrations.schema_migrations VALUES ('{version}', NULL, '{name}');",
                       "COMMIT;"]
        file = root / "reference.sql"
        file.write_text("\n".join(script) + "\n")
        run([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(file)])

    def add(self, title: str, head: list[str], rows: list[Row], notes: list[str]) -> None:
        self.sections.append((title, head, rows, notes))
        print(f"\n## {title}")
        for row in rows:
            print("  " + " | ".join(row))

    # ---------------------------------------------------------------- sections

    def startup(self) -> None:
        n = max(self.runs * 4, 10)
        ref = median_ms(lambda: run([PY, "-c", "pass"]), n)
        version = median_ms(lambda: run([PY, "-m", "guard", "--version"]), n)
        helptext = median_ms(lambda: run([PY, "-m", "guard", "--help"]), n)
        imports = median_ms(lambda: run([PY, "-c", "import guard.run, guard.lint, psycopg, pglast"]), n)
        self.add("Start-up", ["command", "median ms", "vs python -c pass"], [
            ("python -c pass (reference)", f"{ref:.0f}", "1.00x"),
            ("guard --version", f"{version:.0f}", f"{version / ref:.2f}x"),
            ("guard --help", f"{helptext:.0f}", f"{helptext / ref:.2f}x"),
            ("import everything a run needs", f"{imports:.0f}", f"{imports / ref:.2f}x"),
        ], [f"Target: guard --version <= 150 ms: {'met' if version <= 150 else 'MISSED'} ({version:.0f} ms)."])
        self.imports_ms, self.python_ms = imports, ref

    def overhead(self) -> None:
        files = {"20240101000000_t.sql": "create table public.t (id int);\n"}
        guard_ms, psql_ms = [], []
        for _ in range(self.runs):
            url, root = self.fresh_db(), self.project(files)
            started = time.perf_counter()
            self.guard_run(root, url)
            guard_ms.append((time.perf_counter() - started) * 1000)
            url2 = self.fresh_db(guard_ready=False)
            started = time.perf_counter()
            run([self.psql, "-X", "-q", "-1", "-d", url2, "-f", str(root / "supabase/migrations/20240101000000_t.sql")])
            psql_ms.append((time.perf_counter() - started) * 1000)
        g, p = statistics.median(guard_ms), statistics.median(psql_ms)
        imports = getattr(self, "imports_ms", 0.0)
        self.add("Fixed overhead: one trivial migration", ["tool", "median ms", "ratio"], [
            ("psql -1 -f (reference)", f"{p:.0f}", "1.00x"),
            ("guard run", f"{g:.0f}", f"{g / p:.2f}x"),
            ("difference", f"{g - p:.0f}", ""),
            ("  of which: Python start + imports (measured apart)", f"{imports:.0f}", ""),
            ("  of which: connect, lock, plan, lint, backup check, journal, log, apply, report",
             f"{max(g - p - imports, 0):.0f}", ""),
        ], [f"Target: <= 250 ms over psql: {'met' if g - p <= 250 else 'MISSED'} ({g - p:.0f} ms). "
            "The floor is the interpreter plus psycopg's import (libpq, its type system): about "
            f"{imports:.0f} ms here before guard does anything."])

    def many_files(self) -> None:
        rows: list[Row] = []
        notes = []
        counts = (1, 100) if self.runs < 3 else (1, 100, 1000)
        for count in counts:
            files = {f"{20240101000000 + i}_f{i}.sql": f"create table public.t{i} (id int);\n" for i in range(count)}
            root = self.project(files)
            url = self.fresh_db()
            started = time.perf_counter()
            self.guard_run(root, url)
            g = time.perf_counter() - started
            url = self.fresh_db(guard_ready=False)
            started = time.perf_counter()
            self.psql_files(root, url)
            p = time.perf_counter() - started
            s_text = "not installed"
            s = None
            if SUPABASE.exists():
                url = self.fresh_db(guard_ready=False)
                started = time.perf_counter()
                run([str(SUPABASE), "db", "push", "--db-url", url + "?sslmode=disable", "--yes", "--workdir", str(root)])
                s = time.perf_counter() - started
                s_text = f"{s * 1000:.0f} ({s / p:.2f}x)"
            rows.append((str(count), f"{p * 1000:.0f}", f"{g * 1000:.0f} ({g / p:.2f}x)", s_text))
            if count == 1000:
                notes.append(f"Target at 1,000 files: guard <= 1.5x psql: {'met' if g <= 1.5 * p else 'MISSED'} "
                             f"({g / p:.2f}x); faster than supabase db push: "
                             f"{'met' if s is not None and g < s else 'MISSED' if s is not None else 'n/a'}.")
        self.add("Many one-statement files", ["files", "psql ms (reference)", "guard ms", "supabase db push ms"],
                 rows, notes)

    def big_file(self) -> None:
        body = "\n".join(f"  v := v + {i};  -- a line of a large function body" for i in range(2000))
        chunks = []
        size = 0
        i = 0
        while size < 20 * 1024 * 1024:
            stmt = (f"create function public.f{i}() returns int language plpgsql as $$\ndeclare v int := 0;\nbegin\n"
                    f"{body}\n  return v;\nend $$;\ninsert into public.big values ({i}, 'row {i}');\n")
            chunks.append(stmt)
            size += len(stmt)
            i += 1
        text = "create table public.big (id int, note text);\n" + "".join(chunks)
        root = self.project({"20240101000000_big.sql": text})
        mb = len(text.encode()) / 1024 / 1024
        url = self.fresh_db()
        g_s, g_mb = peak_rss_mb([PY, "-m", "guard", "run", "--report", str(root / "r.json")], cwd=root,
                                env={**os.environ, "GUARD_DATABASE_URL": url})
        url = self.fresh_db(guard_ready=False)
        p_s, p_mb = peak_rss_mb([self.psql, "-X", "-q", "-1", "-d", url, "-f",
                                 str(root / "supabase/migrations/20240101000000_big.sql")])
        limit = 5 * mb + 100
        self.add(f"One {mb:.0f} MB migration ({i} functions)", ["tool", "seconds", "peak MB", "ratio (time)"], [
            ("psql -1 -f (reference)", f"{p_s:.1f}", f"{p_mb:.0f}", "1.00x"),
            ("guard run", f"{g_s:.1f}", f"{g_mb:.0f}", f"{g_s / p_s:.2f}x"),
        ], [f"Target: peak <= 5x file + 100 MB = {limit:.0f} MB: {'met' if g_mb <= limit else 'MISSED'} ({g_mb:.0f} MB)."])
        self.big_root = root

    def lint(self) -> None:
        root = getattr(self, "big_root", None)
        if root is None:
            self.add("Lint throughput", ["", ""], [("skipped", "needs the big-file section")], [])
            return
        path = root / "supabase/migrations/20240101000000_big.sql"
        mb = path.stat().st_size / 1024 / 1024
        lint_s = median_ms(lambda: subprocess.run([PY, "-m", "guard", "lint", str(path)], capture_output=True), 1) / 1000
        parse_s = median_ms(lambda: run([PY, "-c", f"import pglast; pglast.parser.parse_sql_json(open({str(path)!r}).read())"]), 1) / 1000
        self.add("Lint throughput", ["what", "seconds", "MB/s", "ratio"], [
            ("parse only, pglast (reference)", f"{parse_s:.1f}", f"{mb / parse_s:.1f}", "1.00x"),
            ("guard lint (parse, split, rules)", f"{lint_s:.1f}", f"{mb / lint_s:.1f}", f"{lint_s / parse_s:.2f}x"),
        ], [])

    def copy(self) -> None:
        url = self.fresh_db()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, email text, plan text, credits int)")
            conn.execute("INSERT INTO public.accounts SELECT g, 'u' || g || '@example.com', 'free', g % 100 "
                         "FROM generate_series(1, 500000) g")
        dump = shutil.which("pg_dump") or str(self.cluster.bin_dir / "pg_dump")
        started = time.perf_counter()
        run([dump, "-Fc", "-t", "public.accounts", "-f", str(self.workdir / "accounts.dump"), "-d", url])
        d = time.perf_counter() - started
        root = self.project({"20240101000000_drop.sql": "alter table public.accounts drop column plan;\n"})
        started = time.perf_counter()
        self.guard_run(root, url)
        g = time.perf_counter() - started
        root2 = self.project({"20240101000000_drop.sql": "drop table public.accounts;\n"})
        url2 = self.fresh_db()
        with psycopg.connect(url2, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, email text, plan text, credits int)")
            conn.execute("INSERT INTO public.accounts SELECT g, 'u' || g || '@example.com', 'free', g % 100 "
                         "FROM generate_series(1, 500000) g")
        started = time.perf_counter()
        self.guard_run(root2, url2)
        t = time.perf_counter() - started
        self.add("Protective copy of a 500k-row table", ["what", "seconds", "ratio"], [
            ("pg_dump -Fc -t accounts (reference)", f"{d:.2f}", "1.00x"),
            ("guard run: DROP COLUMN (copies key + column)", f"{g:.2f}", f"{g / d:.2f}x"),
            ("guard run: DROP TABLE (copies the table)", f"{t:.2f}", f"{t / d:.2f}x"),
        ], ["guard's times include the whole guarded run (start-up, checks, the copy and the migration)."])

    def write(self, path: Path) -> None:
        cpu = "unknown"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem = ""
        try:
            kb = int(Path("/proc/meminfo").read_text().split()[1])
            mem = f"{kb / 1024 / 1024:.0f} GiB"
        except (OSError, ValueError, IndexError):
            pass
        lines = [
            "# Benchmark results", "",
            f"Generated by `python bench/run.py` on {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC.", "",
            f"- Machine: {cpu}, {os.cpu_count()} cores, {mem}",
            f"- Python {platform.python_version()}, PostgreSQL {self.cluster.major} (throw-away cluster, fsync off), "
            f"repetitions: median of {self.runs}", "",
        ]
        for title, head, rows, notes in self.sections:
            lines += [f"## {title}", "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
            lines += ["| " + " | ".join(row) + " |" for row in rows]
            lines += [""] + [f"{n}" for n in notes] + [""]
        path.write_text("\n".join(lines))
        print(f"\nwrote {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="repetitions for medians (default 5)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, no 1,000-file set")
    parser.add_argument("--only", default="startup,overhead,files,bigfile,lint,copy")
    parser.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp, Cluster(password=None) as cluster:
        bench = Bench(cluster, Path(tmp), runs)
        for name in args.only.split(","):
            {"startup": bench.startup, "overhead": bench.overhead, "files": bench.many_files,
             "bigfile": bench.big_file, "lint": bench.lint, "copy": bench.copy}[name.strip()]()
        bench.write(Path(args.out))


if __name__ == "__main__":
    main()
