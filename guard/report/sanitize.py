"""Untrusted text made harmless on its way to a terminal, a CI log or a step summary.

Text guard echoes may come from people it does not trust: a server's error message raised
by a pull request's SQL, a file name, ``--reason``, a ``backup_logs.reason``, a wrapped
command's output. Two things make such text dangerous:

- control characters: ``\\r`` ends a line for the GitHub runner (it reads lines the way
  .NET's ``StreamReader.ReadLine`` does: ``\\n``, ``\\r`` or ``\\r\\n``), ESC drives the terminal,
  bidirectional overrides reorder what a reader sees;
- workflow commands: the runner treats a line that starts, after leading white space, with
  ``::`` (``::error``, ``::add-mask``, ``::stop-commands``...) as a command
  (actions/runner, ``ActionCommand.TryParseV2``), and a line holding ``##[`` *anywhere*
  (``ActionCommand.TryParse``, the older form, finds it with ``IndexOf``: ``x ##[add-mask]y``
  is a command too).

:func:`one_line` escapes every control character (newlines included) for a value shown
inside a line; :func:`lines` escapes all but ``\\n`` and ``\\t`` and defuses any line that could
start a workflow command, for whole blocks of output. guard's own annotations bypass it
(``Context.workflow``) and escape their data as the runner expects (guard.report.github).
"""

from __future__ import annotations

import re

# C0 (but tab and newline), DEL, C1, line/paragraph separators, bidi embeddings/overrides/isolates.
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_CONTROL_KEEP_NEWLINE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\x1b": "\\e"}
# A line that the runner would read as a workflow command (after white space it trims).
_COMMAND_LINE = re.compile(r"^([^\S\n]*)(::|##\[)", re.MULTILINE)
# The older command form, which the runner finds anywhere in a line.
_OLD_COMMAND = re.compile(r"##\[")


def _escape(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def one_line(text: str) -> str:
    """``text`` with every control character (newlines too) shown as an escape: one line,
    which cannot start a workflow command either."""
    return defuse(_CONTROL.sub(_escape, text))


def defuse(text: str) -> str:
    """``text`` with the start of any line that could be a workflow command escaped
    (``::error`` -> ``%3A:error``, ``##[`` -> ``%23#[``), and ``##[`` anywhere else too
    (``x ##[error]`` -> ``x #%23[error]``)."""
    text = _COMMAND_LINE.sub(lambda m: m.group(1) + "%" + format(ord(m.group(2)[0]), "X") + m.group(2)[1:], text)
    return _OLD_COMMAND.sub("#%23[", text)


def lines(text: str) -> str:
    """A block of output made safe: control characters but newline and tab escaped, no line
    able to start a workflow command."""
    return defuse(_CONTROL_KEEP_NEWLINE.sub(_escape, text.replace("\r\n", "\n")))


def markdown_text(text: str) -> str:
    """Untrusted text (a server's error, a file name, a reason) as part of one Markdown
    paragraph of a step summary, which GitHub renders: HTML escaped (an ``<img>`` fetches from
    anywhere; ``html.escape``'s spelling is one the Masker knows), line breaks as spaces (no
    line of it can start a heading, a quote, a table or a fence)."""
    from html import escape

    return markdown_inline(escape(text, quote=True)).replace("\r", " ").replace("\n", " ")


# ASCII punctuation that opens inline Markdown (links and images, emphasis, code spans,
# strikethrough): a name like ``x[a](http://e.test)`` would render as a link. A backslash
# before any ASCII punctuation is an escape (CommonMark 0.30, section 2.4 "Backslash escapes").
_INLINE = re.compile(r"([\\`*_\[\]!~])")


def markdown_inline(text: str) -> str:
    """``text`` with Markdown's inline punctuation backslash-escaped (shown as itself)."""
    return _INLINE.sub(r"\\\1", text)


def markdown_cell(text: str) -> str:
    """:func:`markdown_text` for a Markdown table cell (``|`` escaped)."""
    return markdown_text(text).replace("|", "\\|")
