"""A real headless Chromium-family browser for page tests: find it, screenshot a file, read
its console. No browser installed is a test failure with the reason, never a skip."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

# Debian's chromium (.ci/run installs it), Ubuntu's name for it, GitHub runners' Google Chrome.
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", "--hide-scrollbars",
         "--enable-logging=stderr", "--v=0")
# With --enable-logging, every console message of the page is logged as
# "[pid:tid:time:INFO:CONSOLE:line] "message", source: url (line)" (older builds: CONSOLE(line)).
CONSOLE = re.compile(r":CONSOLE[:(]\d*\)?\]\s*(.*)")


def browser() -> str:
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail(f"no headless browser found (looked for {', '.join(BROWSERS)} on PATH): "
                "install Debian's chromium (apt-get install chromium), as .ci/run does", pytrace=False)


def screenshot(page: Path, png: Path, *, width: int = 1100, height: int = 2400) -> str:
    """Open ``page`` (a file) and save a screenshot; the browser's log (stderr)."""
    with tempfile.TemporaryDirectory(prefix="guard-chromium-") as profile:
        proc = subprocess.run(
            [browser(), *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
             f"--screenshot={png}", page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
    assert png.is_file(), f"the browser wrote no screenshot (exit {proc.returncode}): {proc.stderr[-2000:]}"
    return proc.stderr


def console_errors(log: str) -> list[str]:
    """The page's console messages in a browser log (our pages run no script: any is wrong)."""
    return [match.group(1) for line in log.splitlines() if (match := CONSOLE.search(line))]


def print_to_pdf(page: Path, pdf: Path) -> list[tuple[float, float]]:
    """Print ``page`` as the browser does (its @page rules apply); each page's size in points."""
    with tempfile.TemporaryDirectory(prefix="guard-chromium-") as profile:
        proc = subprocess.run(
            [browser(), *FLAGS, f"--user-data-dir={profile}", "--no-pdf-header-footer", f"--print-to-pdf={pdf}",
             page.resolve().as_uri()],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
        )
    assert pdf.is_file(), f"the browser wrote no PDF (exit {proc.returncode}): {proc.stderr[-2000:]}"
    boxes = re.findall(rb"/MediaBox\s*\[\s*0\s+0\s+([\d.]+)\s+([\d.]+)\s*\]", pdf.read_bytes())
    return [(float(w), float(h)) for w, h in boxes]
