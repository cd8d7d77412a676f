"""Lint accuracy on the labelled corpus (tests/lint_corpus/): guard and squawk side by side.

    python bench/lint_score.py            # prints a Markdown section
    python bench/lint_score.py --details  # also every case a tool gets wrong

Each case is a migration file; the last statement carries the label. A tool "flags" a case when
it reports something on that statement:
- guard: a finding of category destructive, locking or breaking; once static (no database),
  once with the corpus schema loaded in a throw-away database (what `guard check` has);
- squawk (`squawk` on PATH, from `pip install squawk-cli`): any violation on the statement's
  lines, except squawk's style and hygiene rules (SQUAWK_STYLE_RULES: timeouts, IF NOT EXISTS,
  preferred types), which say nothing about the statement's risk.
Recall = risky cases flagged / risky cases; specificity = safe cases not flagged / safe cases.
Target (issue #18): recall >= 0.97 at specificity >= 0.98.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.lint_corpus import SETUP, Case, load  # noqa: E402

TARGET_RECALL = 0.97
TARGET_SPECIFICITY = 0.98
SQUAWK_STYLE_RULES = frozenset({
    "require-lock-timeout", "require-statement-timeout", "require-timeout-settings", "prefer-robust-stmts",
    "prefer-bigint-over-int", "prefer-bigint-over-smallint", "prefer-big-int", "prefer-identity",
    "prefer-text-field", "prefer-timestamptz", "ban-char-field", "ban-create-domain-with-constraint",
    "transaction-nesting", "ban-uncommitted-transaction", "require-table-schema",
})


@dataclass(frozen=True)
class Score:
    tool: str
    flagged: dict[str, bool]  # case id -> flagged

    def rates(self, cases: Sequence[Case]) -> tuple[float, float]:
        risky = [c for c in cases if c.risky]
        safe = [c for c in cases if not c.risky]
        recall = sum(self.flagged[c.id] for c in risky) / len(risky)
        specificity = sum(not self.flagged[c.id] for c in safe) / len(safe)
        return recall, specificity

    def misses(self, cases: Sequence[Case]) -> list[Case]:
        return [c for c in cases if self.flagged[c.id] != c.risky]


def _last_statement_line(case: Case) -> int:
    """1-based line where the case's last statement starts."""
    start = case.sql.rfind(case.statements[-1])
    return case.sql[:start].count("\n") + 1


def guard_score(cases: Sequence[Case], url: str | None = None, *, migration_set: bool = False) -> Score:
    """guard's lint on each case as its own migration file: static (url None), or with the
    corpus schema (setup.sql) loaded in the database at `url`, as `guard check` lints.
    migration_set (static): setup.sql is the folder's earlier, applied file, whose declarations
    the lint reads (guard.lint.declared), as `guard lint FILE` does with the files before FILE."""
    from guard.lint import RISK_CATEGORIES, lint_paths
    from guard.lint.catalog import PgCatalog

    flagged: dict[str, bool] = {}
    conn = None
    if url is not None:
        import psycopg

        conn = psycopg.connect(url, autocommit=True)
        conn.execute(SETUP.read_text())
    catalog = PgCatalog(conn) if conn is not None else None
    try:
        with tempfile.TemporaryDirectory(prefix="lint-score-") as tmp:
            context = [Path(tmp) / "20230101000000_setup.sql"] if migration_set else []
            if context:
                context[0].write_text(SETUP.read_text())
            for case in cases:
                path = Path(tmp) / f"20240101000000_{case.id}.sql"
                path.write_text(case.sql)
                findings = lint_paths([path], display_root=Path(tmp), server_major=15, catalog=catalog,
                                      existing_tables=catalog.exists if catalog else None, context=context)
                last = len(case.statements) - 1
                flagged[case.id] = any(f.category in RISK_CATEGORIES and f.statement_index == last for f in findings)
    finally:
        if conn is not None:
            conn.close()
    tool = "guard (with database)" if url else "guard (static, with the migration set)" if migration_set \
        else "guard (static, file alone)"
    return Score(tool, flagged)


def guard_with_database(cases: Sequence[Case]) -> Score:
    """guard_score on a throw-away cluster (guard.embedded: system binaries or pgserver)."""
    from guard.embedded import Cluster

    with Cluster(password=None) as cluster:
        return guard_score(cases, cluster.url("postgres"))


def squawk_score(cases: Sequence[Case], squawk: str) -> Score:
    """squawk on the same files, one run over all of them (JSON reporter, PostgreSQL 15)."""
    with tempfile.TemporaryDirectory(prefix="lint-score-") as tmp:
        paths = {}
        for case in cases:
            path = Path(tmp) / f"{case.id}.sql"
            path.write_text(case.sql)
            paths[path.name] = case
        proc = subprocess.run([squawk, "--reporter", "json", "--pg-version", "15.0", *sorted(str(p) for p in
                               Path(tmp).glob("*.sql"))], capture_output=True, text=True, timeout=300)
        if proc.returncode not in (0, 1):
            raise SystemExit(f"squawk failed (exit {proc.returncode}): {proc.stderr.strip()[:300]}")
        violations = json.loads(proc.stdout or "[]")
    flagged = {c.id: False for c in cases}
    for v in violations:
        case = paths.get(Path(v["file"]).name)
        if case is None or v.get("rule_name") in SQUAWK_STYLE_RULES:
            continue
        if v["line"] + 1 >= _last_statement_line(case):  # squawk counts lines from 0
            flagged[case.id] = True
    return Score("squawk", flagged)


TITLE = "Lint accuracy (issue #18)"


def parts(cases: Sequence[Case], scores: Sequence[Score]) -> tuple[list[str], list[str], list[list[str]], list[str]]:
    """(intro paragraphs, table head, table rows, notes) of the bench section."""
    counts = {label: sum(c.label == label for c in cases) for label in ("destructive", "locking", "breaking", "safe")}
    intro = [f"Corpus: {len(cases)} labelled statements (" + ", ".join(f"{n} {k}" for k, n in counts.items())
             + "), every label confirmed on PostgreSQL 15 by tests/test_lint_corpus.py (lock, relfilenode, "
             f"seq_scan, rows; for {sum('after: ' in c.note for c in cases)} cases also what a later client "
             "meets: a duplicate key, rows hidden by row security, an orphan row accepted). "
             f"Target: recall >= {TARGET_RECALL} at specificity >= {TARGET_SPECIFICITY}."]
    head = ["tool", "recall (risky flagged)", "specificity (safe not flagged)",
            *(f"{k} flagged" for k in counts), "target"]
    rows = []
    for score in scores:
        recall, specificity = score.rates(cases)
        per = [sum(score.flagged[c.id] for c in cases if c.label == k) for k in counts]
        ok = recall >= TARGET_RECALL and specificity >= TARGET_SPECIFICITY
        rows.append([score.tool, f"{recall:.3f}", f"{specificity:.3f}",
                     *(f"{n}/{counts[k]}" for n, k in zip(per, counts, strict=True)), "holds" if ok else "**MISSED**"])
    plain = [c for c in cases if not c.risky and "needs: catalog" not in c.note]
    notes = [f"{score.tool}: specificity {sum(not score.flagged[c.id] for c in plain) / len(plain):.3f} on the "
             f"{len(plain)} safe cases not marked `needs: catalog` (those a lint cannot tell apart without the "
             "table's current shape: a type change that keeps the stored values, a user function's volatility, "
             "a CHECK proving a partition's bound, ...)."
             for score in scores if score.tool == "guard (static, file alone)" and plain]
    notes += ["guard (static, file alone): each case's file linted by itself, nothing else known (its verdicts "
              "that rest on the table's shape say \"assumed\"). guard (static, with the migration set): the same "
              "file after setup.sql as the folder's earlier, applied migration, whose declarations the lint reads "
              "(guard/lint/declared.py), as `guard lint FILE` reads the files before FILE and `guard check` "
              "without a database URL reads each file's predecessors. guard (with database): setup.sql loaded in a "
              "throw-away PostgreSQL, the lint reading its catalog, as `guard check` / `guard run` do."]
    notes += ["squawk's style rules are not counted: " + ", ".join(sorted(SQUAWK_STYLE_RULES)) + ".",
             "The first 321 cases were written with guard's rules, the rest by an independent review that then "
             "fixed the rules: read guard's figures as \"no known miss\" beyond the cases it still gets wrong "
             "(bench/lint_score.py --details lists them)."]
    return intro, head, rows, notes


def section(cases: Sequence[Case], scores: Sequence[Score], details: bool = False) -> list[str]:
    """The Markdown lines of the bench section."""
    intro, head, rows, notes = parts(cases, scores)
    lines = [f"## {TITLE}", "", *intro, "", "| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    lines += ["", *notes]
    if details:
        for score in scores:
            lines += ["", f"### {score.tool}: cases it gets wrong", ""]
            lines += [f"- {c.id} ({c.label}): `{c.statements[-1][:100]}`" for c in score.misses(cases)]
    return lines


def scores(squawk: str | None = None, database: bool = True) -> tuple[list[Case], list[Score], bool]:
    """The corpus, the tools' scores, and whether squawk was found."""
    cases = load()
    scorers: list[Callable[[], Score]] = [lambda: guard_score(cases), lambda: guard_score(cases, migration_set=True)]
    if database:
        scorers.append(lambda: guard_with_database(cases))
    found = squawk or shutil.which("squawk") or str(Path(sys.executable).parent / "squawk")
    have_squawk = Path(found).exists() or shutil.which(found) is not None
    if have_squawk:
        scorers.append(lambda: squawk_score(cases, found))
    return cases, [s() for s in scorers], have_squawk


def run(details: bool = False, squawk: str | None = None, database: bool = True) -> list[str]:
    """The Markdown section: guard (static, and with a database unless database=False), and
    squawk when it is installed (else the section says so)."""
    cases, found, have_squawk = scores(squawk, database)
    lines = section(cases, found, details)
    if not have_squawk:
        lines.append("squawk is not installed (`pip install squawk-cli`): its row is missing.")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--details", action="store_true", help="list the cases each tool gets wrong")
    parser.add_argument("--squawk", default=None, help="the squawk binary (default: on PATH or next to python)")
    parser.add_argument("--no-database", action="store_true", help="skip the run with a throw-away database")
    args = parser.parse_args(argv)
    print("\n".join(run(args.details, args.squawk, not args.no_database)))


if __name__ == "__main__":
    main()
