"""Run one `guard` CLI invocation in this process and time where it goes (used by bench/run.py).

    python bench/phases.py --collect MODULES.json -- run --report r.json
    python bench/phases.py --modules MODULES.json --out PHASES.json -- run --report r.json

``--collect`` runs the command and writes the modules it imported, in import order.
Measured runs first import exactly those modules, timed per package (so no phase below pays
for a lazy import), then run the CLI with guard's step functions wrapped by timers. A
phase's time is exclusive: a wrapped function called inside another is charged to its own
phase only. Whatever no wrapper covers (click's dispatch, the run id, setting up the report)
is "other". The output is JSON: {"imports": {group: s}, "phases": {phase: s}, "total": s,
"harness": s, "exit_code": n}; "harness" is this script's own start (argparse...), not guard's.
"""

from __future__ import annotations

import time

T0 = time.perf_counter()

import argparse  # noqa: E402
import functools  # noqa: E402
import importlib  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

# (phase, module, function). Wrapped where callers look them up: a module's globals (the
# guard.run step modules imported these names) or the module object (called as
# journal.start). Each file's history and journal rows travel with its COMMIT, so they count
# under "apply".
# A name that no longer exists is skipped and reported, so the table follows the code.
WRAPPED: tuple[tuple[str, str, str], ...] = (
    ("config", "guard.config", "load_config"),
    ("connect", "guard.run.connect", "connect"),
    ("connect", "guard.run.connect", "server_facts"),
    ("lock", "guard.run.lock", "acquire_lock"),
    ("lock", "guard.run.lock", "release_lock"),
    ("journal check", "guard.run.unfinished", "refuse_unfinished"),
    ("plan/parse", "guard.run.files", "load_migrations"),
    ("plan/parse", "guard.run.plan", "plan_pending"),
    ("lint", "guard.run.lint_gate", "lint_pending"),
    ("lint", "guard.run.lint_gate", "hard_gate"),
    ("lint", "guard.run.lint_gate", "destructive_gate"),
    ("lint", "guard.run.lint_gate", "uncopyable"),
    ("backup check", "guard.run.backup_gate", "check_providers"),
    ("restore point", "guard.run.restore_point", "mark_restore_point"),
    ("journal + log", "guard.journal", "start"),
    ("journal + log", "guard.run.backup_log", "log_manual_backup"),
    ("journal + log", "guard.journal", "mark_committed"),
    ("journal + log", "guard.run.outcome", "finish_journal"),
    ("history", "guard.migrations.history", "ensure_history"),
    ("apply", "guard.run.apply", "apply_pending"),
    ("catalogs (undo)", "guard.run.catalog", "record_before"),
    ("catalogs (undo)", "guard.run.catalog", "record_after"),
    ("verify", "guard.run.verify", "in_transaction"),
    ("verify", "guard.run.verify", "after_commit"),
    ("report", "guard.run.outcome", "build_plan"),
    ("report", "guard.commands.run", "finish"),
)
PHASES = tuple(dict.fromkeys(phase for phase, _, _ in WRAPPED))
# Import groups, in the order they are imported: each group is charged for the standard
# library modules it pulls in first.
IMPORT_GROUPS = (("psycopg", ("psycopg", "psycopg_binary", "psycopg_c")), ("pglast", ("pglast",)),
                 ("click", ("click",)), ("guard", ("guard",)))


class Timers:
    def __init__(self) -> None:
        self.totals: dict[str, float] = dict.fromkeys(PHASES, 0.0)
        self.stack: list[list[float]] = []
        self.missing: list[str] = []

    def wrap(self, phase: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            self.stack.append([0.0])
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - started
                children = self.stack.pop()[0]
                self.totals[phase] += elapsed - children
                if self.stack:
                    self.stack[-1][0] += elapsed

        return timed

    def install(self) -> None:
        for phase, module_name, name in WRAPPED:
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                self.missing.append(f"{module_name}.{name}")
                continue
            fn = getattr(module, name, None)
            if not callable(fn):
                self.missing.append(f"{module_name}.{name}")
                continue
            setattr(module, name, self.wrap(phase, fn))


def import_modules(names: list[str]) -> dict[str, float]:
    """Import ``names`` group by group; seconds per group ("other": the rest)."""
    spent: dict[str, float] = {}
    remaining = [n for n in names if n != "__main__" and not n.startswith("bench")]
    for group, prefixes in (*IMPORT_GROUPS, ("other", ("",))):
        mine = [n for n in remaining if n.split(".")[0] in prefixes or prefixes == ("",)]
        remaining = [n for n in remaining if n not in mine]
        started = time.perf_counter()
        for name in mine:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001, S112 - private or platform modules: their importer loads them
                continue
        spent[group] = time.perf_counter() - started
    return spent


def run_cli(argv: list[str]) -> int:
    from guard import cli

    # dispatch() runs the CLI in-process; older guards (before/after comparisons) had main().
    entry = getattr(cli, "dispatch", cli.main)
    sys.argv = ["guard", *argv]
    try:
        entry()
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--collect", type=Path, help="write the modules the command imports here")
    parser.add_argument("--modules", type=Path, help="modules to import before the command")
    parser.add_argument("--out", type=Path, help="where the JSON timings go")
    parser.add_argument("guard_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    guard_args = args.guard_args[1:] if args.guard_args[:1] == ["--"] else args.guard_args
    if args.collect:
        code = run_cli(guard_args)
        args.collect.write_text(json.dumps(list(sys.modules)))
        sys.exit(code)
    # Time from here: what came before (this script's own imports, argparse) is the harness's.
    started = time.perf_counter()
    imports = import_modules(json.loads(args.modules.read_text())) if args.modules else {}
    timers = Timers()
    timers.install()
    code = run_cli(guard_args)
    total = time.perf_counter() - started
    result = {"imports": imports, "phases": timers.totals, "total": total, "harness": started - T0,
              "exit_code": code,
              "missing": timers.missing}
    if args.out:
        args.out.write_text(json.dumps(result))
    else:
        print(json.dumps(result), file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
