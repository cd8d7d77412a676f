"""The documented benchmark command still works: a smoke run of every section (--quick).

It checks that bench/run.py produces every table and a verdict for every target, not the
figures themselves (speed targets live in bench/, never in timed tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_quick_run_writes_every_section_and_target(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "run.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    text = out.read_text()
    for title in ("## Start-up", "## Fixed overhead: one trivial migration", "## Many one-statement files",
                  "## Lint throughput", "## Protective copies", "## Targets (issues #7 and #20)"):
        assert title in text, title
    assert re.search(r"## One [\d.]+ MB migration", text)
    targets = text.split("## Targets (issues #7 and #20)")[1].split("\n## ")[0]
    verdicts = re.findall(r"\| (holds|\*\*MISSED\*\*) \|", targets)
    assert len(verdicts) >= 3, targets  # --version, overhead, big-file memory (--quick has no 1,000 files)
    # Every figure is a ratio against a reference measured in the same run.
    assert "(reference)" in text and "×" in text
    assert "supabase db push" in text and "not installed" not in text
