"""The step summary is Markdown that GitHub renders: untrusted text in it (a server's error
raised by a migration, echoed in the migrations table and the restore plan) must not start a
heading, open HTML (an ``<img>`` fetches from anywhere) or close guard's own blocks."""

from __future__ import annotations

import re
from pathlib import Path

from tests.hostile.test_hostile_channels import _github
from tests.support import Project

MARKDOWN = [
    "x\n\n## \u2705 migration-guard `run`: applied FORGED",
    '<img src="https://attacker.example/pixel.png?FORGED">',
    "</details>\n<details open><summary>FORGED</summary>",
    "x\n```\n# FORGED\n```",
    "x\r\n### Restore target\r\nFORGED",
    "x\n\n> [!CAUTION]\n> FORGED",
    "<script>alert('FORGED')</script><a href=\"javascript:alert(1)\">FORGED</a>",
    "x\n\n| forged | table |\n| --- | --- |\n| FORGED | row |",
    "[FORGED link](https://attacker.example/login) ![FORGED](https://attacker.example/pixel.png)",
    "**FORGED bold** _FORGED_ ~~FORGED~~ `FORGED code`",
]


def test_untrusted_text_in_the_step_summary_is_text_only(ready: Project) -> None:
    payload = "\n".join(MARKDOWN).replace("'", "''")
    ready.add("20240101000000_a.sql", f"do $$ begin raise exception E'%', $p${payload}$p$; end $$;\n")
    env = _github(ready)
    result = ready.guard("run", **env)
    assert result.code == 1, result.output
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    assert summary.count("FORGED") >= 2 * len(MARKDOWN)  # shown (table and plan), as text
    headings = [line for line in summary.splitlines() if line.lstrip().startswith("#")]
    assert all("FORGED" not in h and "applied" not in h for h in headings), headings
    for line in summary.splitlines():
        if "FORGED" in line:
            assert not re.match(r"\s*(#|>|```|\||<)", line) or line.startswith("| 20240101000000"), line
    for tag in ("<img", "<script", "<a ", "<details open", "</details>\n<details"):
        assert tag not in summary, tag
    # inline Markdown is shown as itself: no link, image, emphasis or code span renders
    untrusted = "\n".join(line for line in summary.splitlines() if "FORGED" in line)
    for opener in ("](", "**", "~~", "_FORGED_", "`FORGED"):
        assert not re.search(r"(?<!\\)" + re.escape(opener), untrusted), opener


def test_a_providers_message_in_the_backup_status_summary_is_one_cell_of_text(ready: Project, tmp_path: Path) -> None:
    tool = tmp_path / "backup-tool"
    line = ' | '.join(m.replace("\n", " ").replace("\r", " ") for m in MARKDOWN)
    tool.write_text(f"#!/bin/sh\ncat >&2 <<'EOF_'\n{line}\nEOF_\nexit 3\n", encoding="utf-8")
    tool.chmod(0o755)
    (ready.root / "guard.yml").write_text(f"backups:\n  providers:\n    - type: command\n      run: [{tool}]\n")
    env = _github(ready)
    result = ready.guard("backup", "status", **env)
    assert result.code != 0, result.output
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text(encoding="utf-8")
    rows = [row for row in summary.splitlines() if "FORGED" in row]
    assert len(rows) == 1, summary
    assert len(re.findall(r"(?<!\\)\|", rows[0])) == 6, rows[0]  # five cells, none injected
    for tag in ("<img", "<script", "<a ", "<details"):
        assert tag not in summary, tag
