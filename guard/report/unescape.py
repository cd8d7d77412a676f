"""Text with its escapes read, each character tied to where it came from: how the masker finds a
secret that a writer or a tool spelled with escapes, in full or for only some characters.

One level reads: percent-encoded UTF-8 (``%41``, ``%c3%bc``, either hex case, as ``quote`` and
browsers write), ``\\xHH`` bytes, ``\\uXXXX`` (a UTF-16 surrogate pair joined), ``\\u{X}``,
``\\UXXXXXXXX``, octal ``\\160`` bytes, JavaScript's ``%uXXXX``, HTML numeric and named character references (with or
without the ``;``, ``&amp;`` nested), a backslash before punctuation or ``b f n r t`` (JSON,
``repr``, Markdown), and drops invisible characters (zero-width space, joiners, BOM, soft
hyphen). :func:`levels` reads again what a level produced (``%2541`` is ``%41`` is ``A``; JSON
inside JSON), up to three times; then, for a text beyond ASCII, its look-alikes folded (NFKC).
"""

from __future__ import annotations

import html.entities
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterator

# A text without any of these has no escape to read.
STARTERS = re.compile("[%\\\\&\u200b\u200c\u200d\u2060\ufeff\u00ad]")
_ESCAPE = re.compile(
    r"%(?P<pct>[0-9A-Fa-f]{2})"
    r"|\\x(?P<bx>[0-9A-Fa-f]{2})"
    r"|\\u\{(?P<ub>[0-9A-Fa-f]{1,6})\}"
    r"|\\u(?P<u4>[0-9A-Fa-f]{4})"
    r"|\\U(?P<u8>[0-9A-Fa-f]{8})"
    r"|\\(?P<oct>[0-3][0-7]{2})"  # C, PostgreSQL E'' strings and bytea's escape format
    r"|%[uU](?P<pu>[0-9A-Fa-f]{4})"
    r"|&(?:amp;)*#(?:(?P<dec>[0-9]{1,7})|[xX](?P<hx>[0-9A-Fa-f]{1,6}));?"
    r"|&(?:amp;)*(?P<name>[A-Za-z][A-Za-z0-9]{1,31};?)"
    r"|\\(?P<esc>[bfnrt]|[^0-9A-Za-z\s%&\u200b\u200c\u200d\u2060\ufeff\u00ad])"  # not before % or &: a backslash of the text, then an escape
    r"|(?P<inv>[\u200b\u200c\u200d\u2060\ufeff\u00ad])"
)
# Markdown and shells escape & and % too (\\& \\%): a second reading takes them so, where the
# first took the backslash as the text's own, before an escape (\\&#116;).
_ESCAPE_ALL = re.compile(_ESCAPE.pattern.replace("%&\\u200b", "\\u200b"))
_SHORT = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


class Reading:
    """One level's text and where its characters came from: segments, each a run of the
    text before (``literal``: character for character) or the characters one escape gave."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.at = 0  # the length of the text so far
        self.starts: list[int] = []  # where each segment starts in this text
        self.sources: list[tuple[int, int, bool]] = []  # (start, end in the text before, literal)

    def add(self, chars: str, start: int, end: int, literal: bool) -> None:
        if not chars:
            return
        self.parts.append(chars)
        self.starts.append(self.at)
        self.sources.append((start, end, literal))
        self.at += len(chars)

    def span(self, start: int, end: int) -> tuple[int, int]:
        """The span of the text before that characters ``start:end`` of this one came from."""
        first, last = bisect_right(self.starts, start) - 1, bisect_right(self.starts, end - 1) - 1
        s0, e0, lit0 = self.sources[first]
        s1, e1, lit1 = self.sources[last]
        return (s0 + (start - self.starts[first]) if lit0 else s0,
                s1 + (end - self.starts[last]) if lit1 else e1)


def _bytes(reading: Reading, pending: list[tuple[int, int, int]]) -> None:
    """Percent-encoded or \\x bytes, as UTF-8 characters (U+FFFD where they are not UTF-8)."""
    i = 0
    while i < len(pending):
        lead = pending[i][0]
        size = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 1
        chunk = pending[i:i + size]
        try:
            char = bytes(b for b, _, _ in chunk).decode("utf-8")
        except UnicodeDecodeError:
            char, chunk = "\ufffd", chunk[:1]
        reading.add(char, chunk[0][1], chunk[-1][2], False)
        i += len(chunk)
    pending.clear()


def _read(text: str, escape: re.Pattern[str] = _ESCAPE) -> Reading:
    """One level: ``text`` with its escapes read."""
    reading = Reading()
    pending: list[tuple[int, int, int]] = []
    at = 0
    for m in escape.finditer(text):
        kind = m.lastgroup or ""
        value = m.group(kind) if kind else ""
        if kind in ("pct", "bx", "oct") and m.start() == at and pending:
            pending.append((int(value, 8 if kind == "oct" else 16), m.start(), m.end()))
            at = m.end()
            continue
        _bytes(reading, pending)
        reading.add(text[at:m.start()], at, m.start(), True)
        at = m.end()
        if kind in ("pct", "bx", "oct"):
            pending.append((int(value, 8 if kind == "oct" else 16), m.start(), m.end()))
        elif kind in ("ub", "u4", "u8", "pu", "hx", "dec"):
            point = int(value, 10 if kind == "dec" else 16)
            char = chr(point) if point <= 0x10FFFF else "\ufffd"
            if (0xDC00 <= point <= 0xDFFF and reading.parts and len(reading.parts[-1]) == 1
                    and 0xD800 <= ord(reading.parts[-1]) <= 0xDBFF and not reading.sources[-1][2]
                    and reading.sources[-1][1] == m.start()):  # a UTF-16 surrogate pair, as JSON writes one
                high = ord(reading.parts.pop())
                reading.at -= 1
                reading.starts.pop()
                begin = reading.sources.pop()[0]
                reading.add(chr(0x10000 + ((high - 0xD800) << 10) + (point - 0xDC00)), begin, m.end(), False)
                continue
            reading.add(char, m.start(), m.end(), False)
        elif kind == "name":
            found = html.entities.html5.get(value)
            reading.add(found if found is not None else m.group(0), m.start(), m.end(), found is None)
        elif kind == "esc":
            reading.add(_SHORT.get(value, value), m.start(), m.end(), False)
        # inv: dropped
    _bytes(reading, pending)
    reading.add(text[at:], at, len(text), True)
    return reading


def levels(text: str, most: int = 3, *, escaped_punctuation: bool = False
           ) -> Iterator[tuple[str, Callable[[int, int], tuple[int, int]]]]:
    """Each reading of ``text`` that differs from the one before (up to ``most``), with a
    function giving, for characters ``start:end`` of it, the span of ``text`` they came from.
    With ``escaped_punctuation``, a backslash before ``&`` or ``%`` escapes it."""
    chain: list[Reading] = []
    current = text

    def original(start: int, end: int) -> tuple[int, int]:
        for reading in reversed(chain):
            start, end = reading.span(start, end)
        return start, end

    for _ in range(most):
        if not STARTERS.search(current):
            break
        reading = _read(current, _ESCAPE_ALL if escaped_punctuation else _ESCAPE)
        read = "".join(reading.parts)
        if read == current:
            break
        chain.append(reading)
        current = read
        yield current, original
    if not current.isascii():  # look-alikes last: fullwidth ｐ, ligatures, ... (NFKC)
        reading = _fold(current)
        read = "".join(reading.parts)
        if read != current:
            chain.append(reading)
            yield read, original


def _fold(text: str) -> Reading:
    """``text`` with each character in Unicode compatibility form (NFKC: fullwidth ``ｐ`` is
    ``p``), the way a reader's eye takes it."""
    reading = Reading()
    at = 0
    for i, char in enumerate(text):
        if char.isascii():
            continue
        folded = unicodedata.normalize("NFKC", char)
        if folded != char:
            reading.add(text[at:i], at, i, True)
            reading.add(folded, i, i + 1, False)
            at = i + 1
    reading.add(text[at:], at, len(text), True)
    return reading
