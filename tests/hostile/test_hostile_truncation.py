"""A secret cut by a shortened message is a spelling no masker knows: mask before cutting.

An API answer's error message is shortened to 120 characters before guard shows it; a server
that echoes the token after some padding used to get the token's first characters shown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from guard.backups.http_client import HttpError, HttpPolicy, request
from tests.fakes import FakeAdmin
from tests.hostile.hostile import leaks

TOKENS = ["sbp_" + "a1b2c3d4e5" * 4, "admin-key-with-quote'and\"dq-0123456789", "k" * 300]
# Where the echoed token starts in the message: whole, cut in its middle, cut after 1-19 chars.
PADDING = [0, 60, 100, 105, 112, 119]


class Echoing(FakeAdmin):
    padding: int = 0

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        return 400, {"message": "y" * self.padding + self.token + " was refused"}


@pytest.mark.parametrize("token", TOKENS, ids=range(len(TOKENS)))
def test_an_answer_echoing_the_token_is_masked_before_it_is_shortened(token: str) -> None:
    fake = Echoing(token=token).start()
    try:
        for padding in PADDING:
            fake.padding = padding
            with pytest.raises(HttpError) as caught:
                request("POST", f"{fake.url}/api/admin/backup", service="admin endpoint", token=token,
                        json_body={}, policy=HttpPolicy(timeout=2, retries=0))
            message = str(caught.value)
            assert leaks(message, token) == [] and token[:8] not in message, (padding, message)
            assert "HTTP 400 (" + "y" * min(padding, 10) in message  # the reason is still shown
    finally:
        fake.stop()


@pytest.mark.parametrize("padding", [0, 150, 190, 199], ids=str)
def test_a_backup_command_printing_its_token_is_masked_before_it_is_shortened(tmp_path: Path, padding: int) -> None:
    from guard.backups.external import CommandProvider, ProviderError

    token = TOKENS[0]
    tool = tmp_path / "tool"
    tool.write_text(f'#!/bin/sh\necho "{"y" * padding}token $BACKUP_TOKEN refused" >&2\nexit 3\n')
    tool.chmod(0o755)
    provider = CommandProvider(argv=[str(tool)], env={"BACKUP_TOKEN": token}, label="command")
    with pytest.raises(ProviderError) as caught:
        provider.run_json()
    message = str(caught.value)
    assert "exited 3" in message and token[:8] not in message and leaks(message, token) == [], message
