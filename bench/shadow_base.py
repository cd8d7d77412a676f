"""What the Supabase base costs on top of an embedded shadow's start (issue #15: < 1 s).

    python bench/shadow_base.py [--runs 5]

Interleaved runs of guard.shadow.open_shadow("embedded") with base none and with the Supabase
base (the code `guard check --shadow embedded` runs: initdb, start, roles, a fresh database,
the base); the base's cost is the difference of the medians, also given as a ratio of the
plain shadow's time. Prints a Markdown table; exits 1 when the target is missed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from guard.shadow import open_shadow  # noqa: E402

TARGET_SECONDS = 1.0


def _once(base: str | None) -> float:
    started = time.perf_counter()
    with open_shadow("embedded", target_url=None, base=base, progress=lambda _m: None):
        pass
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    plain: list[float] = []
    supabase: list[float] = []
    _once(None)  # warm the page cache and the imports
    for _ in range(args.runs):
        plain.append(_once(None))
        supabase.append(_once("supabase"))
    p, s = statistics.median(plain), statistics.median(supabase)
    cost = s - p
    verdict = "holds" if cost < TARGET_SECONDS else "**MISSED**"
    print("| shadow | median s | runs |")
    print("|---|---|---|")
    print(f"| embedded, base none (reference) | {p:.3f} | {args.runs} |")
    print(f"| embedded, Supabase base | {s:.3f} | {args.runs} |")
    print()
    print(f"Supabase base: +{cost * 1000:.0f} ms ({cost / p:.2f}× the plain shadow's start and teardown); "
          f"target < {TARGET_SECONDS:.0f} s: {verdict}")
    return 0 if cost < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
