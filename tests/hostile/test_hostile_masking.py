"""Item 1 and 3 of issue #16: secrets masked in every spelling, weak ones never garble output."""

from __future__ import annotations

import base64
import html
import json
import unicodedata
from collections.abc import Callable
from urllib.parse import quote, quote_plus

import pytest

from guard.report import github
from guard.report import json as json_report
from guard.report.mask import Masker
from guard.report.model import RunReport
from guard.report.text import render_markdown, render_text
from tests.hostile.hostile import PASSWORDS, _lower_hex, leaks

# Each way a value reaches an output channel.
CHANNELS: dict[str, Callable[[str], str]] = {
    "raw": lambda s: s,
    "json": lambda s: json.dumps({"message": f"failed with {s}"}),
    "json-unicode": lambda s: json.dumps({"m": s}, ensure_ascii=False),
    "repr": lambda s: f"HttpError({s!r})",
    "repr-in-json": lambda s: json.dumps({"m": repr(s)}),
    "quote": lambda s: "https://x.example/?token=" + quote(s, safe=""),
    "quote_plus": lambda s: "a=" + quote_plus(s),
    "userinfo": lambda s: "postgresql://u:" + quote(s, safe="") + "@h/db",
    "userinfo-lower": lambda s: "postgresql://u:" + _lower_hex(quote(s, safe="")) + "@h/db",
    "annotation": lambda s: github.annotation("error", f"bad {s}", title=f"migration-guard {s}"),
    "markdown-cell": lambda s: "| " + s.replace("|", "\\|") + " |",
    "libpq-quoted": lambda s: "password='" + s.replace("\\", "\\\\").replace("'", "\\'") + "'",
}


@pytest.mark.parametrize("secret", PASSWORDS, ids=range(len(PASSWORDS)))
@pytest.mark.parametrize("channel", sorted(CHANNELS))
def test_every_spelling_of_a_secret_is_masked(secret: str, channel: str) -> None:
    masker = Masker([secret])
    text = CHANNELS[channel](secret)
    masked = masker(text)
    assert leaks(masked, secret) == [], (channel, masked)
    assert "***" in masked


# Encodings a tool or renderer may apply to a secret on its own (not only around it).
ENCODINGS: dict[str, Callable[[str], str]] = {
    "nfd": lambda s: unicodedata.normalize("NFD", s),
    "nfc": lambda s: unicodedata.normalize("NFC", s),
    "html": html.escape,
    "base64": lambda s: base64.b64encode(s.encode()).decode(),
    "json-in-json": lambda s: json.dumps(json.dumps(s))[1:-1],
}


@pytest.mark.parametrize("secret", PASSWORDS, ids=range(len(PASSWORDS)))
@pytest.mark.parametrize("encoding", sorted(ENCODINGS))
def test_encoded_secrets_are_masked_and_the_text_around_them_kept(secret: str, encoding: str) -> None:
    encoded = ENCODINGS[encoding](secret)
    masked = Masker([secret])(f"before {encoded} after")
    assert encoded.rstrip("=") not in masked and leaks(masked, secret) == []
    assert masked.startswith("before ") and masked.endswith(" after")


@pytest.mark.parametrize("secret", PASSWORDS, ids=range(len(PASSWORDS)))
def test_report_values_are_masked_before_serialising(secret: str) -> None:
    report = RunReport(command="run", run_id="20240101000000-abcde", started_at="2024-01-01T00:00:00Z")
    report.set_outcome("blocked", f"server said: {secret!r} / {secret}", changed=False)
    report.warnings.append(json.dumps({"echo": secret}))
    masker = Masker([secret])
    for text in (json_report.render(report, masker), json_report.compact(report, masker),
                 masker(render_text(report)), masker(render_markdown(report))):
        assert leaks(text, secret) == []
    assert json.loads(json_report.compact(report, masker))["message"].startswith("server said: ")


@pytest.mark.parametrize(("weak", "text"), [
    ("postgres", "settings in postgresql.conf, role postgres"),
    ("short", "the key is shorter than it should be"),
    ("pw", "pwd and pwned"),
    ("Password", "password authentication failed"),
    ("secret", "a secret-free line"),
])
def test_weak_secret_never_garbles_output_and_is_reported_once(weak: str, text: str) -> None:
    masker = Masker()
    masker.add(weak, "the password of database_url")
    assert masker(text) == text
    notices = masker.notices()
    assert len(notices) == 1 and "too short or too common" in notices[0]
    assert notices[0].startswith("the password of database_url is")
    assert masker.notices() == []


def test_a_secret_inside_another_is_masked_whole() -> None:
    masker = Masker(["abcdefgh12", "abcdefgh12345678"])
    assert masker("x abcdefgh12345678 y") == "x *** y"


def test_report_values_take_the_json_form_in_one_walk() -> None:
    """mask_values gives what json.dumps(default=str) would, then masks: tuples as lists, a
    str Enum as its text (not its name), other objects as str(), number/None keys as JSON's
    text, secrets masked in keys, values and str() forms alike."""
    import datetime as dt
    import enum
    from decimal import Decimal
    from pathlib import Path

    from guard.report.mask import mask_values

    class Level(enum.IntEnum):
        HIGH = 3

    class Kind(str, enum.Enum):
        SECRET = "s3cret-value-xyz"

    masker = Masker(["s3cret-value-xyz"])
    value = {
        "a": ("s3cret-value-xyz", 1, 2.5, None, True),
        1: Path("/tmp/s3cret-value-xyz/x"),
        None: Decimal("1.5"),
        2.5: Level.HIGH,
        "kind": Kind.SECRET,
        Kind.SECRET: [dt.date(2024, 1, 2)],
        "nested": {"s3cret-value-xyz": [("a",)]},
    }
    got = json.loads(json.dumps(mask_values(value, masker)))
    assert got == {
        "a": ["***", 1, 2.5, None, True],
        "1": "/tmp/***/x",
        "null": "1.5",
        "2.5": 3,
        "kind": "***",
        "***": ["2024-01-02"],
        "nested": {"***": [["a"]]},
    }
    with pytest.raises(TypeError, match="keys must be"):
        mask_values({(1, 2): "x"}, masker)


def test_texts_shorter_than_every_form_are_passed_over_but_nothing_that_holds_one() -> None:
    """The masker skips a text too short to hold any form of its secrets (a report is
    thousands of short values); a text exactly a form's length, a short connection string's
    password and a secret learnt after the first text are still masked."""
    secret = "Zq9-long-secret"
    masker = Masker([secret])
    assert masker(secret) == "***"
    assert masker(secret[:-1]) == secret[:-1]
    assert masker("pg://u:pw@h") == "pg://u:***@h"  # shorter than the secret, a URL's userinfo
    assert masker("") == ""
    assert masker("x") == "x"
    masker.add("Ab3$xyzw")  # shorter than the first: the threshold follows it
    assert masker("Ab3$xyzw") == "***" and masker("(Ab3$xyzw)") == "(***)"
    empty = Masker()
    assert empty("plain text") == "plain text" and empty("postgresql://u:pw@h/db") == "postgresql://u:***@h/db"
