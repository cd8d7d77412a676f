"""Secrets never reach output: values and rendered text pass through a Masker.

A secret leaves guard in many spellings: as it is, JSON-escaped (``ü`` becomes ``\\u00fc``,
``"`` becomes ``\\"``), inside a ``repr()`` (``\\\\`` doubled, quotes escaped), URL-encoded
(``quote``, ``quote_plus``, lower- or upper-case hex), quoted for a libpq ``key=value`` string,
escaped for a GitHub annotation (``%25``), a Markdown table cell (``\\|``) or HTML, in Unicode
normal form C or D, in base64, in hex. The Masker knows
every such form of each secret and replaces any of them with ``***``; and it reads a text's
escapes (guard.report.unescape: percent-encoding, ``\\uXXXX``, HTML references, ... for every
character or only some, nested up to three deep) and masks a secret that shows once they are read. Renderers mask the
values themselves before serialising (:func:`mask_values`) and the finished text after.

A secret shorter than :data:`MIN_LENGTH` or too common (:data:`COMMON`, e.g. ``postgres``,
Supabase local's default password) cannot be masked in free text without garbling ordinary
words (``postgresql.conf`` would read ``***ql.conf``): it is left alone in free text, and
:meth:`Masker.notices` says so once. Connection strings are still redacted by their
structure (guard.db.redact_url; in free text, the password of any ``scheme://user:password@``),
whatever the password.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus

from guard.report.unescape import STARTERS, levels

MASK = "***"
# user:password@ in any URL in free text: redacted by structure, whatever the password
# (a wrapped tool may print its DATABASE_URL, weak password and all).
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@'\"]*:)([^\s/@'\"]+)@")
MIN_LENGTH = 8
# Passwords and keys too common to mask in free text: the words they spell appear in output.
COMMON = frozenset({
    "postgres", "postgresql", "password", "passw0rd", "secret", "supabase", "changeme",
    "12345678", "123456789", "qwertyui", "letmein1", "administrator", "localhost",
    # Words guard's own output is made of: masked, they would make every report unreadable.
    "migration", "migrations", "database", "databases", "automated", "protective", "completed",
    "restored", "snapshot", "statement", "transaction", "schema_migrations", "supabase_migrations",
    "public.backup_logs", "backup_logs",
})


def _percent_variants(text: str) -> set[str]:
    """``text`` with its %XX escapes in upper and in lower case."""
    lower = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), text)
    return {text, lower}


def _base64_forms(secret: str) -> set[str]:
    """The base64 characters that spell ``secret`` wherever it sits in the encoded bytes: at
    each of the 3 alignments (``user:password`` in a Basic ``Authorization`` header puts it at
    any), keeping only the characters made of the secret's bits alone, in the standard and the
    URL-safe alphabet."""
    import base64

    raw = secret.encode()
    out = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw + b"\0\0").decode()
        # Character i holds bits 6i..6i+5: bytes 6i // 8 to (6i + 5) // 8.
        kept = "".join(c for i, c in enumerate(encoded)
                       if shift <= 6 * i // 8 and (6 * i + 5) // 8 < shift + len(raw))
        out |= {kept, kept.replace("+", "-").replace("/", "_")}
    return {f for f in out if len(f) >= 4}


def forms(secret: str) -> set[str]:
    """Every spelling of ``secret`` that guard's output channels can produce."""
    import base64
    import html
    import unicodedata

    from guard.report.sanitize import markdown_cell

    base = {
        secret,
        unicodedata.normalize("NFC", secret),
        unicodedata.normalize("NFD", secret),  # a tool may decompose ü into u + combining mark
        html.escape(secret),
        base64.b64encode(secret.encode()).decode().rstrip("="),
        *_base64_forms(secret),
        *_hex_forms(secret),
        repr(secret)[1:-1],
        ascii(secret)[1:-1],
        secret.replace("\\", "\\\\").replace("'", "\\'"),  # libpq key='value' quoting
        secret.replace("|", "\\|"),  # a Markdown table cell
        markdown_cell(secret),  # a Markdown paragraph or table cell of a step summary
    }
    for encoded in (quote(secret, safe=""), quote(secret), quote_plus(secret),
                    quote(secret, safe="!$&'()*+,;=")):  # RFC 3986 userinfo
        base |= _percent_variants(encoded)
        if encoded != secret:  # a URL-encoded password inside a base64'd header or config
            for variant in _percent_variants(encoded):
                base |= _base64_forms(variant)
    out = set(base)
    for form in base:
        for escaped in (json.dumps(form)[1:-1], json.dumps(form, ensure_ascii=False)[1:-1]):
            out.add(escaped)
            out.add(json.dumps(escaped)[1:-1])  # JSON inside JSON (an API answer quoted in a report)
        # GitHub workflow command data and properties (guard.report.github.escape_*).
        data = form.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        out.add(data)
        out.add(data.replace(":", "%3A").replace(",", "%2C"))
    return {f for f in out if f}


def _hex_forms(secret: str) -> set[str]:
    """``secret``'s UTF-8 bytes in hex (``\\x7061...``, a bytea, a hex dump), lower and upper
    case, the bytes together or separated by a space, a colon or a hyphen."""
    data = secret.encode("utf-8", "surrogatepass")
    return {sep.join(f"{b:02x}" for b in data) for sep in ("", " ", ":", "-")} | {
        sep.join(f"{b:02X}" for b in data) for sep in ("", " ", ":", "-")}


def too_weak(secret: str) -> bool:
    """Whether ``secret`` is too short or too common to be masked in free text. Fewer than 12
    digits alone count as common: every timestamp and run id (20261125013000-a1b2c) holds them."""
    return (len(secret) < MIN_LENGTH or secret.lower() in COMMON
            or (secret.isascii() and secret.isdigit() and len(secret) < 12))


class Masker:
    """Replaces each known secret, in every form :func:`forms` lists, with ``***``.

    ``masker(text)`` masks a string; ``masker.add(secret, what)`` learns one more secret;
    ``masker.notices()`` returns, once each, the lines saying which secrets were too weak to
    be masked in free text.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._forms: set[str] = set()
        self._plain: set[str] = set()  # each secret, NFC and NFD: sought in the text as escapes read it
        self._shortest = 1 << 62  # the shortest form's length: a shorter text holds none
        self._pattern: re.Pattern[str] | None = None  # every form of forms(), as it is
        self._mixed: re.Pattern[str] | None = None  # every secret of _plain
        self._dirty = False
        self._weak: dict[str, str] = {}  # weak secret -> how to name it (the first name given)
        self._told: set[str] = set()
        for secret in secrets:
            self.add(secret)

    def add(self, secret: str, what: str = "a secret") -> None:
        if not isinstance(secret, str) or not secret:
            return
        if too_weak(secret):
            self._weak.setdefault(secret, what)
            return
        import unicodedata

        new = forms(secret) - self._forms
        for form in {unicodedata.normalize("NFC", secret), unicodedata.normalize("NFD", secret)}:
            # As escapes are read (guard.report.unescape), a space may stay a quote_plus '+'.
            self._plain |= {form, form.replace(" ", "+")}
        if new:
            self._forms |= new
            self._shortest = min(self._shortest, *map(len, new))
            self._pattern = None  # compiled again when next used
            self._dirty = True

    def notices(self) -> list[str]:
        """Lines to print once: secrets too short or too common to be masked in free text."""
        out = []
        for secret, what in self._weak.items():
            if secret not in self._told:
                self._told.add(secret)
                out.append(f"{what} is too short or too common to be masked in free text "
                           "(connection strings are still redacted): use a long random one")
        return out

    def __call__(self, text: str) -> str:
        if len(text) < self._shortest and "://" not in text:
            return text  # no form fits in it (a report is thousands of short values)
        if self._dirty:
            # Longest first, so a secret containing another is replaced whole.
            ordered = sorted(self._forms, key=len, reverse=True)
            self._pattern = re.compile("|".join(re.escape(f) for f in ordered))
            by_length = sorted(self._plain, key=len, reverse=True)
            self._mixed = re.compile("|".join(map(re.escape, by_length))) if by_length else None
            self._dirty = False
        if self._mixed is not None and (STARTERS.search(text) or not text.isascii()):
            text = self._unescaped(text)  # each secret in any mix of escapes, first
        if self._pattern is not None:
            text = self._pattern.sub(MASK, text)
        return _URL_USERINFO.sub(lambda m: m.group(1) + MASK + "@", text) if "://" in text else text

    def _unescaped(self, text: str) -> str:
        """``text`` with each secret masked that shows once escapes are read (every character
        of it escaped, or only some; guard.report.unescape.levels), the whole span it spans."""
        assert self._mixed is not None
        readings = [levels(text)]
        if "\\&" in text or "\\%" in text:
            readings.append(levels(text, escaped_punctuation=True))
        hits = sorted(original(m.start(), m.end())
                      for reading in readings for read, original in reading for m in self._mixed.finditer(read))
        out: list[str] = []
        at = 0
        for start, end in hits:
            if start < at:  # overlaps the one before: one mask for both
                out[-1] = MASK
                at = max(at, end)
                continue
            out += [text[at:start], MASK]
            at = end
        return "".join(out) + text[at:] if hits else text


def mask_values(value: Any, mask: Callable[[str], str]) -> Any:
    """``value`` as JSON will hold it (json.dumps with ``default=str``: dicts, lists for lists
    and tuples, numbers, booleans and None as they are, anything else as its str()) with
    every string, keys included, passed through ``mask``: masking before serialising, so no
    escaping can change a secret's spelling before the masker sees it. A number, boolean or
    None key becomes the text JSON gives it ("1", "true", "null")."""
    if isinstance(value, str):
        return mask(str.__str__(value))  # a str subclass's text, as JSON writes it
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {mask_key(k, mask): mask_values(v, mask) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask_values(v, mask) for v in value]
    return mask(str(value))


def mask_key(key: Any, mask: Callable[[str], str]) -> str:
    """A dict key as JSON writes it (a string), masked."""
    if isinstance(key, str):
        return mask(str.__str__(key))
    if key is None or isinstance(key, (bool, int, float)):
        return json.dumps(key)  # as json.dumps writes a key: 1.5, true, null, NaN, Infinity
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


# Compiled when first used (re caches it; ~5 ms case-insensitive): only a wrapped command needs it.
_SECRET_FLAG = r"^--?[A-Za-z0-9_-]*(?:password|passwd|pwd|token|secret|key)[A-Za-z0-9_-]*$"


def argv_secrets(argv: Iterable[str]) -> list[str]:
    """Values a wrapped command's arguments carry as secrets: after a flag named like
    ``--password``/``--token``/``--api-key`` (``--flag VALUE`` or ``--flag=VALUE``) and the
    password of any connection string among them."""
    from guard import conninfo

    args = list(argv)
    found: list[str] = []
    for i, arg in enumerate(args):
        name, eq, value = arg.partition("=")
        if re.match(_SECRET_FLAG, name, re.IGNORECASE):
            if eq:
                found.append(value)
            elif i + 1 < len(args):
                found.append(args[i + 1])
        if "://" in arg or "password=" in arg:
            found += conninfo.secrets(arg)
    return [f for f in found if f]


# Environment variables whose values are secrets even when guard.yml does not mention them.
SECRET_ENV_HINTS = ("PASSWORD", "TOKEN", "SECRET", "KEY", "DATABASE_URL")


def env_masker(environ: Mapping[str, str]) -> Masker:
    """A Masker that knows the secrets of the environment: the passwords of ``*_URL``
    connection strings (every reading of them) and the values of variables named like
    :data:`SECRET_ENV_HINTS` (8 characters or more)."""
    from guard import conninfo

    masker = Masker()
    for name, value in environ.items():
        if not value:
            continue
        if name.endswith("_URL"):
            for secret in conninfo.secrets(value):
                masker.add(secret, f"the password in ${name}")
        elif any(hint in name.upper() for hint in SECRET_ENV_HINTS) and len(value) >= 8:
            masker.add(value, f"${name}")
    return masker
