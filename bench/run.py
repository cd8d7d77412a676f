"""migration-guard benchmarks: what guard costs on top of the migration itself.

    python bench/run.py                      # everything, writes bench/RESULTS.md (~4 min)
    python bench/run.py --only files,startup --runs 3
    python bench/run.py --quick              # a smoke run: fewer repetitions, smaller sets
    python bench/run.py --only overhead,files --runs 3 --baseline main --history
                                             # before/after: REV's guard measured too, interleaved

With ``--baseline REV`` the guard of git revision REV of this repository (`git archive`, run
with PYTHONPATH pointing at it) is measured next to this checkout's in the overhead and files
sections, each run interleaved with psql's, and RESULTS.md gets a "Before and after" table of
the ratios; ``--history`` also appends that table to bench/HISTORY.md under today's date.

Sections: startup, overhead, files, network, bigfile, lint, protect. The script starts its own
throw-away PostgreSQL (guard.embedded.Cluster, fsync off: the figures compare tools on the
same cluster, not disks), makes a fresh database for every measurement and drops it after.
Every figure is a ratio against a reference measured in the same run, interleaved with it
(psql, `python -c pass`, the Supabase CLI), with absolute milliseconds and megabytes for
context. Peak memory is the child's maximum resident set size (wait4).

Children run with the bytecode cache on (PYTHONPYCACHEPREFIX in the scratch directory,
warmed before timing), as an installed guard has it, even when PYTHONDONTWRITEBYTECODE is
set here. The `guard` measured is the one this checkout's bench/ belongs to.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402

from guard import __version__ as GUARD_VERSION  # noqa: E402
from guard.embedded import Cluster  # noqa: E402

PY = sys.executable
PHASES_SCRIPT = REPO / "bench" / "phases.py"
SUPABASE_VERSION = "2.117.0"  # the version tests/test_supabase_cli.py proves compatibility with
SUPABASE = REPO / ".tools" / "supabase" / "node_modules" / ".bin" / "supabase"
SECTIONS = ("startup", "overhead", "files", "network", "bigfile", "lint", "protect", "accuracy")
VERSION_BASE = 20240101000000
OVERHEAD_MIN_RUNS = 15


# ------------------------------------------------------------------------------ measuring


@dataclass
class Sample:
    seconds: float
    peak_mb: float


@dataclass
class Stats:
    samples: list[Sample] = field(default_factory=list)

    def add(self, sample: Sample) -> None:
        self.samples.append(sample)

    @property
    def ms(self) -> float:
        return statistics.median(s.seconds for s in self.samples) * 1000

    @property
    def s(self) -> float:
        return self.ms / 1000

    @property
    def peak_mb(self) -> float:
        return max(s.peak_mb for s in self.samples)

    def spread(self) -> str:
        """min-max in ms, to show the noise next to the median."""
        times = [s.seconds * 1000 for s in self.samples]
        return f"{min(times):.0f}–{max(times):.0f}" if len(times) > 1 else "–"


class BenchError(RuntimeError):
    pass


GNU_TIME = Path("/usr/bin/time")


def measure(argv: Sequence[str], *, env: dict[str, str], cwd: Path | None = None, log: Path,
            ok: Sequence[int] = (0,)) -> Sample:
    """Wall time and peak RSS of one child process.

    The peak comes from GNU time, a small process that forks the command: a child forked
    from this (large) Python process would report at least this process's size, because
    Linux carries the pre-exec high-water mark into ru_maxrss. Without GNU time, wait4's
    figure is used (an upper bound).
    """
    peak_file = log.with_suffix(".peak")
    timed = [str(GNU_TIME), "-f", "%M", "-o", str(peak_file), *argv] if GNU_TIME.exists() else list(argv)
    with open(log, "wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(timed, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - started
    proc.returncode = code = os.waitstatus_to_exitcode(status)
    if code not in ok:
        tail = log.read_text(errors="replace")[-1500:]
        raise BenchError(f"{' '.join(map(str, argv[:4]))} exited {code}:\n{tail}")
    kb = float(usage.ru_maxrss)
    if GNU_TIME.exists():
        # "Command exited with non-zero status N" may come first; the figure is the last line.
        kb = float(peak_file.read_text().split()[-1])
    return Sample(elapsed, kb / 1024)


def floor_note(floor: Stats, psql: Stats) -> str:
    """The floor's place against psql, said first in a missed many-files target's reason."""
    return (f"the floor (psql's statements in one message from a bare psycopg client, no guarding) "
            f"is {ratio(floor.ms, psql.ms)} psql ({floor.ms:.0f} vs {psql.ms:.0f} ms); ")


def install_supabase() -> bool:
    """The Supabase CLI in .tools/ (as the tests install it): True when it is there, installing
    it from npm first if needed; False, with a note, when npm is missing or the install fails
    (the table then says so instead of a figure)."""
    if SUPABASE.exists():
        return True
    npm = shutil.which("npm")
    if npm is None:
        print(f"   npm not found: supabase@{SUPABASE_VERSION} cannot be installed, its column stays empty")
        return False
    print(f"   installing supabase@{SUPABASE_VERSION} from npm into .tools/supabase", flush=True)
    tools = SUPABASE.parents[2]
    tools.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run([npm, "install", "--no-audit", "--no-fund", "-E", f"supabase@{SUPABASE_VERSION}",
                           "--prefix", str(tools)], capture_output=True, text=True, timeout=900)
    if proc.returncode != 0 or not SUPABASE.exists():
        print(f"   npm install failed: {proc.stderr.strip()[-300:]}")
        return False
    return True


def median_of(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def ratio(value: float, reference: float) -> str:
    return f"{value / reference:.2f}×" if reference > 0 else "–"


def verdict(ok: bool) -> str:
    return "holds" if ok else "**MISSED**"


# ------------------------------------------------------------------------------ the bench


@dataclass
class Section:
    title: str
    intro: list[str]
    tables: list[tuple[list[str], list[list[str]]]]
    notes: list[str]


@dataclass
class Target:
    name: str
    measured: str
    ok: bool | None  # None: not measured in this run
    why: str = ""


class Bench:
    def __init__(self, cluster: Cluster, workdir: Path, runs: int, startup_runs: int,
                 file_counts: list[int], big_mb: float, rows: int, baseline: Path | None = None) -> None:
        self.cluster = cluster
        self.baseline = baseline  # another revision's guard/ (its parent folder), measured next to this one
        self.pairs: list[tuple[str, str, str]] = []  # (figure, baseline, this checkout)
        self.workdir = workdir
        self.runs = runs
        self.startup_runs = startup_runs
        self.file_counts = file_counts
        self.big_mb = big_mb
        self.rows = rows
        self.counter = 0
        self.sections: list[Section] = []
        self.targets: dict[str, Target] = {}
        self.psql = shutil.which("psql") or str(cluster.bin_dir / "psql")
        self.pg_dump = str(cluster.bin_dir / "pg_dump") if (cluster.bin_dir / "pg_dump").exists() \
            else (shutil.which("pg_dump") or "pg_dump")
        self.env = self._child_env()
        self.guard = self._guard_argv()
        self.python_ms: float | None = None
        self.overhead_min_runs = OVERHEAD_MIN_RUNS  # --quick: fewer (a smoke run, not a verdict)
        self.body_kb = 0.0
        self.big_root: Path | None = None
        self.big_statements = 0
        self.modules_file: Path | None = None
        self.log = workdir / "last.log"
        self.admin = psycopg.connect(cluster.url("postgres"), autocommit=True)
        self.server_version = str(self.admin.execute("SHOW server_version").fetchone()[0])  # type: ignore[index]
        self._guard_template()

    # ---------------------------------------------------------------- environment

    def _child_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("GUARD_", "GITHUB_", "CI_", "GITLAB_", "PG"))
               and k not in ("DATABASE_URL", "CI", "PYTHONDONTWRITEBYTECODE")}
        env["PYTHONPYCACHEPREFIX"] = str(self.workdir / "pycache")
        env["SUPABASE_TELEMETRY_DISABLED"] = "1"
        env["DO_NOT_TRACK"] = "1"
        probe = subprocess.run([PY, "-c", "import guard, sys; sys.stdout.write(guard.__file__)"],
                               env=env, capture_output=True, text=True, cwd=self.workdir)
        if Path(probe.stdout or "/nonexistent").resolve() != (REPO / "guard" / "__init__.py").resolve():
            env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        return env

    def _guard_argv(self) -> list[str]:
        """The console script next to this interpreter (the real CLI), else `python -m guard`."""
        script = Path(PY).parent / "guard"
        return [str(script)] if script.exists() else [PY, "-m", "guard"]

    def guard_env(self, url: str) -> dict[str, str]:
        return {**self.env, "GUARD_DATABASE_URL": url}

    # ---------------------------------------------------------------- databases and projects

    def _guard_template(self) -> None:
        """A database with `guard init` and an automated backup entry, copied for each guard run."""
        self.admin.execute("CREATE DATABASE bench_guard_template")
        url = self.cluster.url("bench_guard_template")
        env = self.guard_env(url)
        for args in (["init"], ["backup", "log", "--kind", "automated", "--reason", "bench: nightly"]):
            measure([*self.guard, *args], env=env, cwd=self.workdir, log=self.log)  # also warms the cache
        self.warm()

    def warm(self) -> None:
        """Compile the bytecode cache and page everything in before anything is timed."""
        for argv in ([*self.guard, "--version"], [*self.guard, "--help"],
                     [PY, "-c", "import psycopg, pglast, click, guard.run, guard.commands, guard.lint"]):
            measure(argv, env=self.env, cwd=self.workdir, log=self.log)

    def warm_baseline(self) -> None:
        """Compile the baseline's bytecode and check that its guard is the one a child imports."""
        assert self.baseline is not None
        env = {**self.env, "PYTHONPATH": str(self.baseline) + os.pathsep + self.env.get("PYTHONPATH", "")}
        probe = subprocess.run([PY, "-c", "import guard, guard.cli, guard.run, sys; sys.stdout.write(guard.__file__)"],
                               env=env, capture_output=True, text=True, cwd=self.workdir)
        if Path(probe.stdout or "/nonexistent").resolve() != (self.baseline / "guard" / "__init__.py").resolve():
            raise BenchError(f"the baseline's guard does not import from {self.baseline}: {probe.stderr[-300:]}")
        measure([*self.guard, "--help"], env=env, cwd=self.workdir, log=self.log)

    def fresh_db(self, template: str | None = "bench_guard_template") -> tuple[str, str]:
        """(name, url) of a new database: a copy of ``template``, or empty (template1)."""
        self.counter += 1
        name = f"bench_{self.counter}"
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        self.admin.execute(query)
        return name, self.cluster.url(name)

    def drop_db(self, name: str) -> None:
        self.admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def project(self, files: dict[str, str], config: str | None = None) -> Path:
        self.counter += 1
        root = self.workdir / f"project_{self.counter}"
        migrations = root / "supabase" / "migrations"
        migrations.mkdir(parents=True)
        for name, text in files.items():
            (migrations / name).write_text(text, encoding="utf-8")
        if config:
            (root / "guard.yml").write_text(config)
        return root

    def query(self, url: str, text: str) -> list[tuple[object, ...]]:
        with psycopg.connect(url, autocommit=True) as conn:
            return conn.execute(text).fetchall()

    def history_count(self, url: str) -> int:
        rows = self.query(url, "SELECT CASE WHEN to_regclass('supabase_migrations.schema_migrations') IS NULL "
                               "THEN -1 ELSE (SELECT count(*) FROM supabase_migrations.schema_migrations) END")
        return int(rows[0][0])  # type: ignore[call-overload]

    # ---------------------------------------------------------------- the tools

    def run_guard(self, root: Path, url: str, *extra: str, code: Path | None = None) -> Sample:
        """One `guard run`: this checkout's, or with ``code`` the guard package found there."""
        report = root / "guard-report.json"
        env = self.guard_env(url)
        if code is not None:
            env["PYTHONPATH"] = str(code) + os.pathsep + env.get("PYTHONPATH", "")
        sample = measure([*self.guard, "run", "--report", str(report), *extra], env=env, cwd=root, log=self.log)
        status = json.loads(report.read_text())["status"]
        if status != "applied":
            raise BenchError(f"guard run in {root}: status {status}")
        return sample

    def run_psql_file(self, path: Path, url: str) -> Sample:
        return measure([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-1", "-d", url, "-f", str(path)],
                       env=self.env, log=self.log)

    def psql_script(self, root: Path) -> Path:
        """The reference for many files: one psql connection, the history table as the Supabase
        CLI creates it, then per file BEGIN, its statements, its history row, COMMIT."""
        lines = [
            "CREATE SCHEMA IF NOT EXISTS supabase_migrations;",
            "CREATE TABLE IF NOT EXISTS supabase_migrations.schema_migrations (version text NOT NULL PRIMARY KEY);",
            "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS statements text[];",
            "ALTER TABLE supabase_migrations.schema_migrations ADD COLUMN IF NOT EXISTS name text;",
        ]
        for path in sorted((root / "supabase" / "migrations").glob("*.sql")):
            version, name = path.stem.split("_", 1)
            text = path.read_text()
            # The generated files have no ';' inside statements: a plain split is exact here.
            statements = [s.strip() for s in text.split(";") if s.strip()]
            array = "ARRAY[" + ", ".join(f"$bench${s}$bench$" for s in statements) + "]::text[]"
            lines += ["BEGIN;", text.rstrip(),
                      "INSERT INTO supabase_migrations.schema_migrations (version, name, statements) "
                      f"VALUES ('{version}', '{name}', {array});", "COMMIT;"]
        script = root / "reference.sql"
        script.write_text("\n".join(lines) + "\n")
        return script

    def run_floor(self, script: Path, url: str) -> Sample:
        """psql's script as one message from a bare psycopg client (bench/floor.py)."""
        return measure([PY, str(REPO / "bench" / "floor.py"), url, str(script)], env=self.env, log=self.log)

    def run_psql_script(self, script: Path, url: str) -> Sample:
        return measure([self.psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-f", str(script)],
                       env=self.env, log=self.log)

    def run_supabase(self, root: Path, url: str) -> Sample:
        return measure([str(SUPABASE), "db", "push", "--db-url", url + "?sslmode=disable", "--yes",
                        "--workdir", str(root)], env=self.env, log=self.log)

    def python_pass_ms(self) -> float:
        if self.python_ms is None:
            stats = Stats()
            for _ in range(max(self.startup_runs, 10)):
                stats.add(measure([PY, "-c", "pass"], env=self.env, log=self.log))
            self.python_ms = stats.ms
        return self.python_ms

    # ---------------------------------------------------------------- phases of one guard run

    def phases(self, root: Path, template: str = "bench_guard_template", runs: int = 1) -> dict[str, float]:
        """Median milliseconds per phase of instrumented `guard run`s (bench/phases.py)."""
        if self.modules_file is None:
            self.modules_file = self.workdir / "modules.json"
            name, url = self.fresh_db(template)
            measure([PY, str(PHASES_SCRIPT), "--collect", str(self.modules_file), "--", "run", "--report",
                     str(root / "collect.json")], env=self.guard_env(url), cwd=root, log=self.log)
            self.drop_db(name)
        collected: list[dict[str, float]] = []
        for _ in range(runs):
            name, url = self.fresh_db(template)
            out = self.workdir / "phases.json"
            sample = measure([PY, str(PHASES_SCRIPT), "--modules", str(self.modules_file), "--out", str(out),
                              "--", "run", "--report", str(root / "phases-report.json")],
                             env=self.guard_env(url), cwd=root, log=self.log)
            self.drop_db(name)
            data = json.loads(out.read_text())
            row = {f"import {k}": v * 1000 for k, v in data["imports"].items()}
            row.update({k: v * 1000 for k, v in data["phases"].items()})
            inside = sum(row.values())
            row["other (click dispatch, report setup)"] = max(data["total"] * 1000 - inside, 0.0)
            row["_total_in_process"] = data["total"] * 1000
            row["_harness"] = data.get("harness", 0.0) * 1000
            row["_wall"] = sample.seconds * 1000
            if data["missing"]:
                print(f"  note: bench/phases.py could not wrap {', '.join(data['missing'])}")
            collected.append(row)
        return {key: median_of([r[key] for r in collected]) for key in collected[0]}

    def phase_table(self, phases: dict[str, float], guard_ms: float) -> tuple[list[str], list[list[str]]]:
        python = self.python_pass_ms()
        rows: list[list[str]] = [["Python interpreter start (`python -c pass`, measured apart)",
                                  f"{python:.0f}", f"{python / guard_ms:.0%}"]]
        for key, value in phases.items():
            if key.startswith("_"):
                continue
            label = f"`{key}`" if key.startswith("import ") else key
            rows.append([label, f"{value:.1f}" if value < 10 else f"{value:.0f}", f"{value / guard_ms:.0%}"])
        rest = phases["_wall"] - phases["_total_in_process"] - python - phases["_harness"]
        rows.append(["interpreter exit and the rest (instrumented wall − all of the above − "
                     f"{phases['_harness']:.0f} ms of bench/phases.py's own start)",
                     f"{max(rest, 0):.0f}", f"{max(rest, 0) / guard_ms:.0%}"])
        rows.append(["**instrumented run, wall**", f"**{phases['_wall']:.0f}**",
                     f"(uninstrumented median {guard_ms:.0f})"])
        return ["where the time goes", "ms (median)", "share of guard's wall"], rows

    # ---------------------------------------------------------------- sections

    def startup(self) -> None:
        commands = [
            ("`python -c pass` (reference)", [PY, "-c", "pass"]),
            ("`guard --version`", [*self.guard, "--version"]),
            ("`guard --help`", [*self.guard, "--help"]),
            ("`python -c 'import psycopg'` (context: the driver alone)", [PY, "-c", "import psycopg"]),
        ]
        stats = {label: Stats() for label, _ in commands}
        for _ in range(self.startup_runs):  # interleaved, so drift hits every row alike
            for label, argv in commands:
                stats[label].add(measure(argv, env=self.env, cwd=self.workdir, log=self.log))
        ref = stats[commands[0][0]].ms
        self.python_ms = ref
        rows = [[label, f"{s.ms:.0f}", s.spread(), ratio(s.ms, ref), f"{s.peak_mb:.0f}"]
                for label, s in stats.items()]
        version = stats["`guard --version`"].ms
        self.targets["version"] = Target("`guard --version` ≤ 150 ms", f"{version:.0f} ms", version <= 150)
        self.sections.append(Section(
            "Start-up", [f"Median of {self.startup_runs} runs each, interleaved."],
            [(["command", "median ms", "min–max ms", "vs python -c pass", "peak MB"], rows)], []))

    def overhead(self) -> None:
        text = "create table public.t (id int);\n"
        root = self.project({f"{VERSION_BASE}_t.sql": text})
        migration = root / "supabase" / "migrations" / f"{VERSION_BASE}_t.sql"
        guard, psql, before = Stats(), Stats(), Stats()
        # A third of a second each: enough repetitions that a noisy neighbour does not decide
        # the verdict (the difference is a few tens of ms around the 250 ms target).
        runs = max(self.runs, self.overhead_min_runs)
        for _ in range(runs):
            name, url = self.fresh_db()
            guard.add(self.run_guard(root, url))
            assert self.history_count(url) == 1
            self.drop_db(name)
            name, url = self.fresh_db(None)
            psql.add(self.run_psql_file(migration, url))
            self.drop_db(name)
            if self.baseline is not None:
                name, url = self.fresh_db()
                before.add(self.run_guard(root, url, code=self.baseline))
                self.drop_db(name)
        diff = guard.ms - psql.ms
        if self.baseline is not None:
            self.pairs.append(("fixed overhead over `psql -1 -f`, one file (ms)",
                               f"{before.ms - psql.ms:.0f} ({before.ms:.0f} vs {psql.ms:.0f})",
                               f"{diff:.0f} ({guard.ms:.0f} vs {psql.ms:.0f})"))
        rows = [
            ["`psql -1 -f` (reference)", f"{psql.ms:.0f}", psql.spread(), "1.00×", f"{psql.peak_mb:.0f}"],
            ["`guard run`", f"{guard.ms:.0f}", guard.spread(), ratio(guard.ms, psql.ms), f"{guard.peak_mb:.0f}"],
            ["difference", f"{diff:.0f}", "", "", ""],
        ]
        phases = self.phases(root, runs=self.runs)
        imports = sum(v for k, v in phases.items() if k.startswith("import "))
        work = sum(v for k, v in phases.items() if not k.startswith(("import ", "_", "other")))
        top = sorted(((v, k) for k, v in phases.items() if k.startswith("import ")), reverse=True)[:2]
        why = (f"{self.python_pass_ms():.0f} ms is the interpreter starting and {imports:.0f} ms importing "
               f"({', '.join(f'{k[7:]} {v:.0f} ms' for v, k in top)}); all of guard's work against the "
               f"database (connect, lock, plan, lint, backup check, journal, log, apply, history, report) "
               f"is {work:.0f} ms")
        self.targets["overhead"] = Target("fixed overhead ≤ 250 ms over psql (one trivial file)",
                                          f"{diff:.0f} ms over psql ({guard.ms:.0f} vs {psql.ms:.0f})",
                                          diff <= 250, why)
        self.sections.append(Section(
            "Fixed overhead: one trivial migration",
            [f"`create table public.t (id int);` in one file, a fresh database per run, median of {runs} "
             "(guard and psql interleaved). "
             "Before each guard run (not timed) the database has had `guard init` (backup log, journal and "
             "history tables, as a project that uses guard has) and an automated backup entry (it is a copy "
             "of a template database prepared with the real CLI); the default table provider and table sink "
             "are used, so the run checks the backup log, journals, logs its manual backup, records the "
             "history row and applies the file."],
            [(["tool", "median ms", "min–max ms", "ratio", "peak MB"], rows),
             self.phase_table(phases, guard.ms)],
            ["The breakdown comes from `bench/phases.py`: the same command in-process, every module the run "
             "needs imported first (timed per package, in the order shown; each package is charged for the "
             "standard-library modules it pulls in first), then guard's step functions wrapped by timers "
             "(exclusive times). " + why + "."]))

    def many_files(self) -> None:
        rows: list[list[str]] = []
        results: dict[int, tuple[Stats | None, Stats | None, Stats | None]] = {}
        roots: dict[int, Path] = {}
        floors: dict[int, Stats] = {}
        have_supabase = install_supabase()
        for count in self.file_counts:
            files = {f"{VERSION_BASE + i}_f{i}.sql": f"create table public.t{i} (id int);\n" for i in range(count)}
            root = roots[count] = self.project(files)
            script = self.psql_script(root)
            guard, psql, supa, base, floor = Stats(), Stats(), Stats(), Stats(), Stats()
            for _ in range(self.runs):
                name, url = self.fresh_db(None)
                psql.add(self.run_psql_script(script, url))
                if self.history_count(url) != count:
                    raise BenchError(f"psql reference applied {self.history_count(url)} of {count}")
                self.drop_db(name)
                name, url = self.fresh_db(None)
                floor.add(self.run_floor(script, url))
                if self.history_count(url) != count:
                    raise BenchError(f"the floor client applied {self.history_count(url)} of {count}")
                self.drop_db(name)
                name, url = self.fresh_db()
                guard.add(self.run_guard(root, url))
                if self.history_count(url) != count:
                    raise BenchError(f"guard applied {self.history_count(url)} of {count}")
                self.drop_db(name)
                if self.baseline is not None:
                    name, url = self.fresh_db()
                    base.add(self.run_guard(root, url, code=self.baseline))
                    if self.history_count(url) != count:
                        raise BenchError(f"the baseline's guard applied {self.history_count(url)} of {count}")
                    self.drop_db(name)
                if have_supabase:
                    name, url = self.fresh_db(None)
                    supa.add(self.run_supabase(root, url))
                    if self.history_count(url) != count:
                        raise BenchError(f"supabase db push applied {self.history_count(url)} of {count}")
                    self.drop_db(name)
            results[count] = (psql, guard, supa if have_supabase else None)
            floors[count] = floor
            if self.baseline is not None:
                label = f"{count:,} file" + ("s" if count != 1 else "")
                self.pairs.append((f"{label}: guard / psql",
                                   f"{ratio(base.ms, psql.ms)} ({base.ms:.0f} vs {psql.ms:.0f} ms)",
                                   f"{ratio(guard.ms, psql.ms)} ({guard.ms:.0f} vs {psql.ms:.0f} ms)"))
                if have_supabase:
                    self.pairs.append((f"{label}: `supabase db push` / guard",
                                       ratio(supa.ms, base.ms), ratio(supa.ms, guard.ms)))
            rows.append([
                f"{count:,}", f"{psql.ms:.0f}", f"{floor.ms:.0f} ({ratio(floor.ms, psql.ms)})",
                f"{guard.ms:.0f} ({guard.spread()})", ratio(guard.ms, psql.ms),
                f"{supa.ms:.0f} ({supa.spread()})" if have_supabase else "not installed",
                ratio(supa.ms, psql.ms) if have_supabase else "–",
                f"{psql.peak_mb:.0f} / {guard.peak_mb:.0f} / " + (f"{supa.peak_mb:.0f}" if have_supabase else "–"),
            ])
            print(f"  {count} files: psql {psql.ms:.0f} ms, guard {guard.ms:.0f} ms"
                  + (f", supabase {supa.ms:.0f} ms" if have_supabase else ""))
        tables = [(["files", "psql ms (reference)", "floor ms (/ psql)", "guard ms (min–max)", "guard / psql",
                    "supabase db push ms (min–max)", "supabase / psql", "peak MB psql / guard / supabase"], rows)]
        notes: list[str] = []
        low, high = min(results), max(results)
        if high > low:
            per_file = ["per extra file, ms"]
            for before, after in zip(results[low], results[high], strict=True):
                per_file.append(f"{(after.s - before.s) * 1000 / (high - low):.2f}"
                                if before is not None and after is not None else "–")
            tables.append((["", "psql", "guard", "supabase db push"], [per_file]))
            notes.append(f"Per extra file: (time at {high:,} − time at {low:,}) / {high - low:,}: the marginal "
                         "cost of one more file once the tool has started.")
        if high >= 1000:
            psql, guard, supa = (stats or Stats() for stats in results[high])
            phases = self.phases(roots[high], runs=min(self.runs, 3))
            tables.append(self.phase_table(phases, guard.ms))
            notes.append(f"The second table breaks down one instrumented guard run of {high:,} files "
                         "(bench/phases.py, as in the fixed-overhead section).")
            per_phase = sorted(((v, k) for k, v in phases.items() if not k.startswith(("_", "import "))),
                               reverse=True)[:4]
            why = ("largest phases at this size: " + ", ".join(f"{k} {v:.0f} ms" for v, k in per_phase))
            first_psql, first_guard = results[low][0], results[low][1]
            if high > low and first_psql is not None and first_guard is not None:
                extra_psql = (psql.ms - first_psql.ms) / (high - low)
                extra_guard = (guard.ms - first_guard.ms) / (high - low)
                start = sum(v for k, v in phases.items() if k.startswith("import ")) + self.python_pass_ms()
                why += (f". Each file beyond the first costs guard {extra_guard:.2f} ms and psql {extra_psql:.2f} ms "
                        f"({ratio(extra_guard, extra_psql)}); the rest of the ratio is guard's fixed start "
                        f"({first_guard.ms:.0f} ms for one file, {start:.0f} ms of it the interpreter and imports), "
                        "see HISTORY.md")
            self.targets["files_psql"] = Target(f"{high:,} files: guard ≤ 1.0× psql", ratio(guard.ms, psql.ms),
                                                guard.ms <= 1.0 * psql.ms, floor_note(floors[high], psql) + why)
            if have_supabase:
                self.targets["files_supabase"] = Target(
                    f"{high:,} files: guard ≥ 2× faster than `supabase db push`",
                    f"{guard.ms:.0f} vs {supa.ms:.0f} ms ({ratio(supa.ms, guard.ms)})", supa.ms >= 2 * guard.ms, why)
            middle = results.get(100, (None, None, None))
            if middle[0] is not None and middle[1] is not None:
                self.targets["files_100"] = Target(
                    "100 files: guard ≤ 2.0× psql", ratio(middle[1].ms, middle[0].ms),
                    middle[1].ms <= 2.0 * middle[0].ms,
                    floor_note(floors[100], middle[0])
                    + "the fixed start (interpreter and imports) is most of guard's time at this size")
        self.sections.append(Section(
            "Many one-statement files",
            [f"`create table public.tN (id int);` per file, applied to an empty database, median of {self.runs} "
             "(the three tools interleaved, a fresh database each). psql (reference): one connection running "
             "one script that creates the history table as the Supabase CLI does, then per file `BEGIN`, the "
             "file, its `supabase_migrations.schema_migrations` row (version, name, statements), `COMMIT`. "
             f"Supabase CLI {self.supabase_version()}: `supabase db push --db-url ...?sslmode=disable --yes`. "
             "Floor: the same script as one message from a bare Python client (bench/floor.py: the "
             "interpreter, psycopg, one connection, the server's work; no guarding, no round trips): "
             "guard's time above it is what guarding costs, psql's is its round trips. "
             "Every run is checked: the history holds every file afterwards."],
            tables, notes))

    def network(self) -> None:
        """The many-files runs through a proxy that delays every byte (bench/network.py)."""
        sys.path.insert(0, str(REPO / "bench"))
        import network

        self.sections.append(Section(*network.section(self, Stats, ratio, BenchError, VERSION_BASE)))

    def big_file_text(self) -> tuple[str, int, int]:
        """(text, functions, statements): large plpgsql bodies and many small statements."""
        target = int(self.big_mb * 1024 * 1024)
        body = "".join(f"  v := v + {j};  -- line {j} of a large function body, kept as text\n" for j in range(800))
        self.body_kb = len(body) / 1024
        parts = ["create table public.big_items (id int primary key, name text, payload text);\n"]
        size = len(parts[0])
        functions = statements = 0
        payload = "x" * 400
        while size < target:
            if functions * 2 * len(body) < size:  # about half the bytes are function bodies
                chunk = (f"create function public.big_f{functions}() returns int language plpgsql as $$\n"
                         f"declare v int := 0;\nbegin\n{body}  return v;\nend $$;\n")
                functions += 1
            else:
                chunk = f"insert into public.big_items values ({statements}, 'item {statements}', '{payload}');\n"
            parts.append(chunk)
            size += len(chunk)
            statements += 1
        return "".join(parts), functions, statements + 1

    def big_file(self) -> None:
        text, functions, statements = self.big_file_text()
        root = self.project({f"{VERSION_BASE}_big.sql": text})
        self.big_root, self.big_statements = root, statements
        path = root / "supabase" / "migrations" / f"{VERSION_BASE}_big.sql"
        mb = path.stat().st_size / 1024 / 1024
        guard, psql = Stats(), Stats()
        for _ in range(min(self.runs, 3)):
            name, url = self.fresh_db(None)
            psql.add(self.run_psql_file(path, url))
            self.drop_db(name)
            name, url = self.fresh_db()
            guard.add(self.run_guard(root, url))
            self.drop_db(name)
        limit = 5 * mb + 100
        rows = [
            ["`psql -1 -f` (reference)", f"{psql.s:.2f}", "1.00×", f"{psql.peak_mb:.0f}", ""],
            ["`guard run`", f"{guard.s:.2f}", ratio(guard.ms, psql.ms), f"{guard.peak_mb:.0f}",
             f"{guard.peak_mb / mb:.1f}× the file"],
        ]
        self.targets["bigfile"] = Target(
            f"{mb:.0f} MB file: guard peak ≤ 5× file + 100 MB = {limit:.0f} MB", f"{guard.peak_mb:.0f} MB",
            guard.peak_mb <= limit,
            "peak RSS of the guard process (the file's text, its statements, the parse tree, the history "
            "row's statements array and the report all live at once)")
        self.sections.append(Section(
            f"One {mb:.0f} MB migration",
            [f"One file of {mb:.1f} MB: {functions} plpgsql functions with {self.body_kb:.0f} KB bodies and "
             f"{statements - functions:,} small statements (a table and its inserts), {statements:,} in all, "
             f"one transaction. Median time of {min(self.runs, 3)} runs; peak = the largest max RSS seen."],
            [(["tool", "seconds", "ratio", "peak MB", ""], rows)], []))

    def lint(self) -> None:
        if importlib.util.find_spec("guard.lint") is None:
            self.sections.append(Section("Lint throughput", ["not available: `guard.lint` does not exist in "
                                                             "this checkout"], [], []))
            return
        root = self.big_root
        if root is None:
            text, _, self.big_statements = self.big_file_text()
            root = self.big_root = self.project({f"{VERSION_BASE}_big.sql": text})
        path = root / "supabase" / "migrations" / f"{VERSION_BASE}_big.sql"
        many = self.project({f"{VERSION_BASE + i}_f{i}.sql": f"create table public.t{i} (id int);\n"
                             f"create index t{i}_id on public.t{i} (id);\n" for i in range(1000)})
        cases = [
            (f"one {path.stat().st_size / 1048576:.0f} MB file", path, root, self.big_statements),
            ("1,000 small files (2 statements each)", many / "supabase" / "migrations", many, 2000),
        ]
        rows: list[list[str]] = []
        for label, target, cwd, count in cases:
            size = sum(p.stat().st_size for p in ([target] if target.is_file() else target.glob("*.sql")))
            parse = ("import pglast, sys, pathlib\n"
                     "p = pathlib.Path(sys.argv[1])\n"
                     "for f in ([p] if p.is_file() else sorted(p.glob('*.sql'))):\n"
                     "    pglast.parser.parse_sql_json(f.read_text())\n")
            ref, lint = Stats(), Stats()
            for _ in range(min(self.runs, 3)):
                ref.add(measure([PY, "-c", parse, str(target)], env=self.env, cwd=cwd, log=self.log))
                lint.add(measure([*self.guard, "lint", str(target)], env=self.env, cwd=cwd, log=self.log, ok=(0, 3)))
            rows.append([label, f"{ref.s:.2f}", f"{lint.s:.2f}", ratio(lint.ms, ref.ms),
                         f"{size / 1048576 / lint.s:.1f}", f"{count / lint.s:,.0f}", f"{lint.peak_mb:.0f}"])
        self.sections.append(Section(
            "Lint throughput",
            ["`guard lint PATH` (no database: every statement of the files), median of "
             f"{min(self.runs, 3)}, against the floor: a Python process that only parses the same files with "
             "pglast (PostgreSQL's parser), start-up included in both."],
            [(["input", "parse only s (reference)", "guard lint s", "ratio", "guard MB/s", "guard statements/s",
               "guard peak MB"], rows)], []))

    def protect(self) -> None:
        if importlib.util.find_spec("guard.protect") is None:
            self.sections.append(Section("Protective copies", ["not available: `guard.protect` does not exist "
                                                               "in this checkout"], [], []))
            return
        rows_n = self.rows
        self.admin.execute("CREATE DATABASE bench_accounts_template TEMPLATE bench_guard_template")
        url = self.cluster.url("bench_accounts_template")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE public.accounts (id int PRIMARY KEY, email text NOT NULL, plan text, "
                         "credits int, notes text)")
            conn.execute("INSERT INTO public.accounts SELECT g, 'user' || g || '@example.com', "
                         "CASE WHEN g %% 3 = 0 THEN 'pro' ELSE 'free' END, g %% 1000, repeat('n', 60) "
                         "FROM generate_series(1, %s) g", (rows_n,))
            conn.execute("VACUUM ANALYZE public.accounts")
            table_mb = float(conn.execute("SELECT pg_table_size('public.accounts')").fetchone()[0]) / 1048576  # type: ignore[index]
        cases = [
            ("DROP TABLE", "drop table public.accounts;",
             "CREATE TABLE keep AS TABLE public.accounts; DROP TABLE public.accounts;"),
            ("DROP COLUMN", "alter table public.accounts drop column notes;",
             "CREATE TABLE keep AS SELECT id, notes FROM public.accounts; "
             "ALTER TABLE public.accounts DROP COLUMN notes;"),
            ("DELETE ... WHERE (a third of the rows)", "delete from public.accounts where plan = 'pro';",
             "CREATE TABLE keep AS SELECT * FROM public.accounts WHERE plan = 'pro'; "
             "DELETE FROM public.accounts WHERE plan = 'pro';"),
        ]
        off = "protect:\n  enabled: false\nlint:\n  destructive: warn\n"
        rows: list[list[str]] = []
        for label, statement, manual in cases:
            on_root = self.project({f"{VERSION_BASE}_d.sql": statement + "\n"})
            off_root = self.project({f"{VERSION_BASE}_d.sql": statement + "\n"}, config=off)
            manual_file = self.workdir / f"manual_{self.counter}.sql"
            manual_file.write_text(manual + "\n")
            ref, on, bare = Stats(), Stats(), Stats()
            copied: list[float] = []
            for _ in range(min(self.runs, 3)):
                ref.add(self.on_copy(functools.partial(self.run_psql_file, manual_file)))
                bare.add(self.on_copy(functools.partial(self.run_guard, off_root)))
                on.add(self.on_copy(functools.partial(self.run_guard, on_root)))
                report = json.loads((on_root / "guard-report.json").read_text())
                copies = report.get("protective_copies") or []
                if not copies:
                    raise BenchError(f"guard made no protective copy for {statement}")
                copied.append(sum(float(c.get("bytes") or 0) for c in copies) / 1048576)
            cost = on.s - bare.s
            mb = median_of(copied)
            rows.append([label, f"{ref.s:.2f}", f"{bare.s:.2f}", f"{on.s:.2f}", ratio(on.ms, ref.ms),
                         f"{cost:.2f}", f"{mb:.0f}", f"{mb / cost:.0f}" if cost > 0.01 else "–"])
        self.admin.execute("DROP DATABASE bench_accounts_template")
        self.sections.append(Section(
            "Protective copies",
            [f"A table of {rows_n:,} rows ({table_mb:.0f} MB), one destructive statement, a fresh copy of the "
             f"database per run, median of {min(self.runs, 3)}. Reference: psql doing the same copy by hand "
             "(`CREATE TABLE ... AS`, then the statement, in one transaction). guard without copies: the same "
             "run with `protect.enabled: false` and `lint.destructive: warn`; the copy costs the difference."],
            [(["statement", "psql + manual copy s (reference)", "guard, no copy s", "guard with copy s", "ratio",
               "copy cost s", "copied MB", "copy MB/s"], rows)], []))

    def on_copy(self, run: Callable[[str], Sample]) -> Sample:
        """``run`` against a fresh copy of the accounts database (file copy: it is large)."""
        self.counter += 1
        name = f"bench_{self.counter}"
        strategy = sql.SQL(" STRATEGY FILE_COPY" if self.cluster.major >= 15 else "")
        self.admin.execute(sql.SQL("CREATE DATABASE {} TEMPLATE bench_accounts_template{}").format(
            sql.Identifier(name), strategy))
        try:
            return run(self.cluster.url(name))
        finally:
            self.drop_db(name)

    # ---------------------------------------------------------------- output

    def supabase_version(self) -> str:
        if not SUPABASE.exists():
            return "(not installed)"
        out = subprocess.run([str(SUPABASE), "--version"], capture_output=True, text=True, env=self.env)
        return out.stdout.strip() or "?"

    def machine(self) -> list[str]:
        cpu = "unknown CPU"
        try:
            for line in Path("/proc/cpuinfo").read_text().splitlines():
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        except OSError:
            pass
        mem = "?"
        try:
            for line in Path("/proc/meminfo").read_text().splitlines():
                if line.startswith("MemTotal"):
                    mem = f"{int(line.split()[1]) / 1048576:.1f} GiB"
        except (OSError, ValueError):
            pass
        psql_version = subprocess.run([self.psql, "--version"], capture_output=True, text=True).stdout.strip()
        import pglast

        return [
            f"- CPU: {cpu}, {os.cpu_count()} cores; memory {mem}; {platform.system()} {platform.release()}",
            f"- PostgreSQL {self.server_version} (throw-away cluster from guard.embedded, **fsync off**, "
            f"127.0.0.1), {psql_version}",
            f"- Python {platform.python_version()}, psycopg {psycopg.__version__}, pglast {pglast.__version__}, "
            f"migration-guard {GUARD_VERSION}; Supabase CLI {self.supabase_version()} (npm)",
            "- Python children run with the bytecode cache on (warmed first), as an installed guard has it.",
        ]

    def write(self, path: Path, argv: list[str], elapsed: float) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        lines = ["# Benchmark results", "",
                 f"Generated by `python bench/{' '.join(['run.py', *argv])}` on {now:%Y-%m-%d %H:%M} UTC "
                 f"in {elapsed / 60:.1f} min.", "",
                 "Regenerate it with `python bench/run.py` (every section; `--only SECTIONS --runs N` for "
                 "some). Before and after a change, measured in one run: `python bench/run.py --only "
                 "overhead,files --runs 5 --baseline REV --history` also measures the guard of git revision "
                 "REV, adds a \"Before and after\" table here and appends it to HISTORY.md.", ""]
        lines += self.machine() + [""]
        lines += ["## Targets (issues #7 and #20)", "", "| target | measured | verdict |", "| --- | --- | --- |"]
        for target in self.targets.values():
            lines.append(f"| {target.name} | {target.measured} | {verdict(bool(target.ok))} |")
        missed = [t for t in self.targets.values() if t.ok is False]
        if missed:
            lines += ["", "Missed targets, and why (from the breakdowns below):", ""]
            lines += [f"- **{t.name}**: {t.measured}; {t.why}." for t in missed]
        lines += ["", "What was profiled and changed to meet these targets, with figures before and after "
                  "each change, is in [HISTORY.md](HISTORY.md).", ""]
        for section in self.sections:
            lines += [f"## {section.title}", ""]
            lines += [p + "\n" for p in section.intro]
            for head, rows in section.tables:
                lines += ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
                lines += ["| " + " | ".join(row) + " |" for row in rows]
                lines.append("")
            lines += [n + "\n" for n in section.notes]
        lines += self.pair_lines()
        path.write_text("\n".join(lines).rstrip() + "\n")
        print(f"wrote {path}")

    def pair_lines(self) -> list[str]:
        """The "Before and after" table (``--baseline``), in RESULTS.md and, with --history, HISTORY.md."""
        if not self.pairs:
            return []
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
        return [f"## Before and after: {self.baseline_name} vs this checkout", "",
                f"Measured in the same run, each guard interleaved with the reference; medians of {self.runs} "
                f"(the one-file overhead: of at least {self.overhead_min_runs}); load average at the end {load}.", "",
                f"| figure | before ({self.baseline_name}) | after (this checkout) |", "| --- | --- | --- |",
                *(f"| {name} | {old} | {new} |" for name, old, new in self.pairs), ""]

    baseline_name = ""

    def accuracy(self) -> None:
        """Lint accuracy on the labelled corpus, guard next to squawk (bench/lint_score.py)."""
        spec = importlib.util.spec_from_file_location("lint_score", REPO / "bench" / "lint_score.py")
        assert spec is not None and spec.loader is not None
        score = importlib.util.module_from_spec(spec)
        sys.modules["lint_score"] = score  # its dataclasses look their module up there
        spec.loader.exec_module(score)
        cases, found, have_squawk = score.scores()
        intro, head, rows, notes = score.parts(cases, found)
        if not have_squawk:
            notes.append("squawk is not installed (`pip install squawk-cli`): its row is missing.")
        self.sections.append(Section(score.TITLE, intro, [(head, rows)], notes))

    def close(self) -> None:
        self.admin.close()


def revision(rev: str) -> str:
    """The short commit id of ``rev`` in this repository (BenchError when git cannot say)."""
    done = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", rev + "^{commit}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchError(f"--baseline {rev}: not a revision of {REPO} ({done.stderr.strip()})")
    return done.stdout.strip()


def checkout(rev: str, target: Path) -> Path:
    """The files of revision ``rev`` (git archive) under ``target``; returns ``target``."""
    import io
    import tarfile

    revision(rev)
    data = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", rev], capture_output=True,
                          check=True).stdout
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        archive.extractall(target, filter="data")
    return target


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections (default all: {','.join(SECTIONS)})")
    parser.add_argument("--runs", type=int, default=5,
                        help="repetitions per measurement (medians; big file, lint, protect use at most 3)")
    parser.add_argument("--startup-runs", type=int, default=20, help="repetitions of the start-up commands")
    parser.add_argument("--files", default="1,100,1000", help="file counts for the many-files section")
    parser.add_argument("--big-mb", type=float, default=20, help="size of the big migration in MB")
    parser.add_argument("--rows", type=int, default=500_000, help="rows of the table protective copies copy")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: --runs 2 --startup-runs 3 --files 1,20 --big-mb 1 --rows 5000 (the one-file overhead too runs twice)")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "RESULTS.md")
    parser.add_argument("--baseline", metavar="REV", default=None,
                        help="also measure the guard of git revision REV (overhead, files) for a before/after table")
    parser.add_argument("--history", action="store_true",
                        help="with --baseline: append the before/after table to bench/HISTORY.md")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.startup_runs, args.files, args.big_mb, args.rows = 2, 3, "1,20", 1, 5_000
    if args.history and not args.baseline:
        parser.error("--history needs --baseline REV")
    if args.baseline:
        try:
            revision(args.baseline)
        except BenchError as exc:
            parser.error(str(exc))
    unknown = set(args.only.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s): {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    only = [s for s in SECTIONS if s in args.only.split(",")]
    with tempfile.TemporaryDirectory(prefix="guard-bench-") as tmp, Cluster(password=None) as cluster:
        baseline = checkout(args.baseline, Path(tmp) / "baseline") if args.baseline else None
        bench = Bench(cluster, Path(tmp), args.runs, args.startup_runs,
                      [int(n) for n in args.files.split(",")], args.big_mb, args.rows, baseline)
        if args.quick:
            bench.overhead_min_runs = args.runs
        if baseline is not None:
            short = revision(args.baseline)
            bench.baseline_name = f"`{args.baseline}`" + ("" if short.startswith(args.baseline) else f" ({short})")
            bench.warm_baseline()
        steps: dict[str, Callable[[], None]] = {
            "startup": bench.startup, "overhead": bench.overhead, "files": bench.many_files,
            "bigfile": bench.big_file, "lint": bench.lint, "protect": bench.protect,
            "accuracy": bench.accuracy, "network": bench.network,
        }
        try:
            for name in only:
                print(f"== {name}", flush=True)
                section_started = time.perf_counter()
                steps[name]()
                print(f"   {time.perf_counter() - section_started:.0f} s", flush=True)
            bench.write(args.out, argv, time.perf_counter() - started)
            if args.history and bench.pairs:
                history = REPO / "bench" / "HISTORY.md"
                with history.open("a", encoding="utf-8") as out:
                    out.write("\n" + "\n".join(bench.pair_lines()).replace(
                        "## Before and after", f"## {dt.date.today()}: before and after", 1))
                print(f"appended the before/after table to {history}")
        finally:
            bench.close()


if __name__ == "__main__":
    main()
