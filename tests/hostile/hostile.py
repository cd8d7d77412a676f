"""Hostile inputs and the detectors the hostile suite judges output with.

The detectors are written independently of guard's own masker and sanitiser: a secret's
spellings are listed here from first principles, and workflow commands are found the way the
GitHub runner finds them (a line, split at \\n, \\r or \\r\\n, whose text after leading white
space starts with ``::``, or that holds ``##[`` anywhere: actions/runner's ``TryParse``).
"""

from __future__ import annotations

import json
import re
from urllib.parse import quote, quote_plus

MARKER = "FORGED"

# Passwords and tokens of every awkward shape (each long and uncommon enough to be masked).
PASSWORDS = [
    "pässwörd-ü-2024",
    'quote"inside"pw',
    "back\\slash\\pw9",
    "single'quote'pw",
    "with spaces in it",
    "at@sign@inside",
    "colon:in:the:pw",
    "slash/in/the/pw",
    "percent%41%zz%",
    "日本語のパスワード",
    "emoji-🔑-secret",
    "tab\tinside-pw",
    "plus+and&amp=eq",
    "hash#question?pw",
    "brackets[::1]pw",
    "comma,semi;colon",
    "dollar$HOME`id`",
    "crlf\r\nsecret-x",
    "nul-free|pipe|pw",
    "%2540-already-enc",
    "ZWJ\u200dhidden-pw",
    "mixed 'q' \"d\" \\b",
    "x" * 200,
    "sbp_" + "a1b2c3d4" * 5,
]

# Text that tries to start a workflow command (or reset the terminal) from inside a value.
FORGERIES = [
    f"x\n::error file=README.md,line=1::{MARKER}",
    f"x\r::error::{MARKER}",
    f"x\r\n::add-mask::{MARKER}",
    f"x\n   ::stop-commands::{MARKER}",
    f"x\n##[error]{MARKER}",
    f"x\n\t::warning::{MARKER}",
    f"x\x0b::error::{MARKER}",
    f"x\x0c::notice::{MARKER}",
    f"x\x85::error::{MARKER}",
    f"x\u2028::error::{MARKER}",
    f"x\x1b[2K\r::error::{MARKER}",
    f"::error::{MARKER}",
    f"  ::add-mask::{MARKER}",
    f"x\n::set-output name=status::{MARKER}",
    f"x\n::set-env name=PATH::{MARKER}",
    f"x\n::add-path::{MARKER}",
    f"x\n::save-state name=a::{MARKER}",
    f"x\n::echo::on\n::debug::{MARKER}",
    f"x\n::group::{MARKER}",
    f"x\n\u00a0::error::{MARKER}",
    f"x\n\u3000::error::{MARKER}",
    f"x%0A::error::{MARKER}\n::endgroup::",
    # The runner's older form is found anywhere in a line (ActionCommand.TryParse: IndexOf).
    f"x ##[error]{MARKER}",
    f"migration failed: ##[add-mask]{MARKER}",
    f"x ###[stop-commands]{MARKER}",
    f"x #\u200b##[warning]{MARKER}",
    f"x ##[set-output name=status;]{MARKER}",
]

# Commands guard itself writes, and the titles it gives its annotations.
OWN_COMMANDS = {"error", "warning", "notice", "group", "endgroup"}
_SPLIT = re.compile(r"\r\n|\r|\n")
_COMMAND = re.compile(r"^(?:::([A-Za-z-]+)(?: ([^:]*(?:%3A[^:]*)*))?::|##\[)(.*)$")


def _lower_hex(text: str) -> str:
    return re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)


def spellings(secret: str) -> set[str]:
    """How ``secret`` could be written out by any serialiser a report or log uses."""
    out = {
        secret,
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        repr(secret)[1:-1],
        quote(secret, safe=""),
        quote(secret),
        quote_plus(secret),
        _lower_hex(quote(secret, safe="")),
    }
    return {s for s in out if len(s) >= 4}


def leaks(text: str, secret: str) -> list[str]:
    """The spellings of ``secret`` found in ``text``."""
    return sorted(s for s in spellings(secret) if s in text)


def workflow_commands(text: str) -> list[tuple[str, str, str]]:
    """(command, properties, data) for every line the runner would run as a command."""
    found = []
    for line in _SPLIT.split(text):
        stripped = line.lstrip()
        if "##[" in stripped and not stripped.startswith("::"):
            stripped = stripped[stripped.index("##["):]  # the older form: anywhere in the line
        if not stripped.startswith(("::", "##[")):
            continue
        match = _COMMAND.match(stripped)
        if match is None:
            found.append(("?", "", stripped))
        else:
            found.append((match.group(1) or "##[", match.group(2) or "", match.group(3)))
    return found


PROPERTY_KEYS = {"file", "line", "col", "endLine", "endColumn", "title"}


def _props_ok(props: str) -> bool:
    if not props:
        return True
    for item in props.split(","):
        key, eq, value = item.partition("=")
        if not eq or key not in PROPERTY_KEYS:
            return False
        if key in ("line", "col", "endLine", "endColumn") and not value.isdigit():
            return False
    return True


def forged(text: str) -> list[tuple[str, str, str]]:
    """Commands guard did not write: any other command; an annotation whose properties do
    not parse as GitHub's (an injected ``,`` or ``:``) or that lacks guard's title; a group
    named by the attacker."""
    bad = []
    for command, props, data in workflow_commands(text):
        if command not in OWN_COMMANDS or not _props_ok(props):
            bad.append((command, props, data))
        elif command in ("error", "warning", "notice") and (
                "title=" not in props or "guard" not in props.split("title=", 1)[1]):
            bad.append((command, props, data))
        elif command in ("group", "endgroup") and MARKER in data:
            bad.append((command, props, data))
    return bad
