"""Item 4 of issue #16: no untrusted text can start a workflow command, in-process channels.

(The channels that need a database or a process are in test_hostile_channels.py.)
"""

from __future__ import annotations

import pytest

from guard.cli import Context
from guard.lint import render as lint_render
from guard.report import github
from guard.report.sanitize import lines, one_line
from tests.hostile.hostile import FORGERIES, MARKER, forged, workflow_commands

IDS = range(len(FORGERIES))


@pytest.mark.parametrize("payload", FORGERIES, ids=IDS)
def test_sanitised_blocks_and_values_forge_nothing(payload: str) -> None:
    for text in (lines(payload), lines("guard: " + payload), one_line(payload)):
        assert workflow_commands(text) == [], text
    assert "\n" not in one_line(payload) and "\r" not in one_line(payload)
    assert "\x1b" not in lines(payload)
    assert MARKER in lines(payload)  # escaped, not dropped: the reader still sees what was sent


@pytest.mark.parametrize("payload", FORGERIES, ids=IDS)
def test_own_annotation_carries_hostile_text_as_data_only(payload: str) -> None:
    line = github.annotation("error", payload, file=f"supabase/migrations/1_{payload}.sql", line=3,
                             title=f"migration-guard: {payload}")
    commands = workflow_commands(line)
    assert len(commands) == 1, line
    command, props, _data = commands[0]
    assert command == "error"
    assert forged(line) == []
    # GitHub's escaping: properties escape % \r \n : , and data % \r \n.
    assert props.count(",") == 2  # file, line, title and nothing injected between them


@pytest.mark.parametrize("payload", FORGERIES, ids=IDS)
def test_context_output_channels_forge_nothing(payload: str, capsys: pytest.CaptureFixture[str]) -> None:
    ctx = Context(verbose=False)
    ctx.out(payload + "\n")
    ctx.progress(payload)
    ctx.error(payload)
    captured = capsys.readouterr()
    assert forged(captured.out + captured.err) == []
    assert workflow_commands(captured.out + captured.err) == []


def test_lint_annotations_stay_guards_own() -> None:
    from guard.lint import Finding

    finding = Finding(rule="drop-table", severity="error", message=FORGERIES[0], file="a\r::error::x.sql",
                      line=1, column=1, category="destructive", alternative=FORGERIES[1])
    text = lint_render.github([finding])
    assert [c for c, _p, _d in workflow_commands(text)] == ["error"]
    assert forged(text) == []
