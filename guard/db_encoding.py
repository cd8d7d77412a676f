"""Can the database hold guard's own text? File names, the reason, CI facts, before any change.

guard writes text of its own into the database: a file's name into the migration history,
the reason and actor into its journal and the backup log, CI facts and file paths into
their jsonb. Its session's client_encoding is UTF8 (guard.db.connect); the server converts
every value to the database's encoding and refuses a character that encoding has no
equivalent for (SQLSTATE 22P05, PostgreSQL docs "Character Set Support", 24.3.4). Found
at the first write, that refusal stopped a run half-way with an error naming neither the
text nor where it came from; asked here first, the culprit is named and nothing changes.

SQL_ASCII converts nothing and holds any byte (but NUL); UTF8 holds every character. No
PostgreSQL text holds a NUL byte, nor the lone surrogates Python makes of a file name's
bytes that are not UTF-8 (os.fsdecode's surrogateescape): those are refused in any database.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

SERVER_ENCODING = "SELECT pg_catalog.current_setting('server_encoding')"
# A value the server converts from the client's encoding as it arrives: 22P05 (or 22021,
# invalid for the encoding) when one of its characters has no equivalent.
PROBE = "SELECT %s::text"
NO_CONVERSION = ("UTF8", "SQL_ASCII")


def server_encoding(conn: psycopg.Connection[Any]) -> str:
    """The database's encoding as PostgreSQL names it (``UTF8``, ``LATIN1``, ``SQL_ASCII``...):
    the server reports it when the session starts (a GUC_REPORT parameter), no round trip."""
    reported = conn.info.parameter_status("server_encoding")
    if reported:
        return reported.decode() if isinstance(reported, bytes) else str(reported)
    row = conn.execute(SERVER_ENCODING).fetchone()
    return str(row[0]) if row else "UTF8"


def character(char: str) -> str:
    """``'😀' (U+1F600)``: a character as a message names it (a file name's non-UTF-8 byte,
    which Python holds as a lone surrogate, as ``byte 0xe9``)."""
    if 0xDC80 <= ord(char) <= 0xDCFF:
        return f"byte 0x{ord(char) - 0xDC00:02x}"
    if char == "\x00":
        return "a NUL byte (0x00)"
    return f"{char!r} (U+{ord(char):04X})"


def printable(text: str) -> str:
    """``text`` with a file name's non-UTF-8 bytes as ``\\xe9`` (as Python shows bytes), so that
    a message naming it is UTF-8 text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


# NUL, and the surrogates (a file name's non-UTF-8 bytes, held by Python as lone surrogates).
_NEVER_HELD = re.compile("[\x00\ud800-\udfff]")


def _never_held(text: str) -> str | None:
    """The first character no PostgreSQL text holds as guard sends it, whatever the encoding."""
    found = _NEVER_HELD.search(text)
    return found.group() if found else None


def unheld(conn: psycopg.Connection[Any], texts: Mapping[str, str]) -> dict[str, str]:
    """``{culprit: why}`` for each of ``texts`` (``{culprit: text}``, the culprit naming where
    the text comes from) that the database cannot hold; empty when all fit.

    ``why`` is one clause, e.g. ``it holds '😀' (U+1F600), which the database's encoding
    LATIN1 cannot hold``. Reads only, and only for non-ASCII text in a database that converts
    (every server encoding holds ASCII): one query for all its characters together, one per
    character only when that fails. psycopg errors other than the server's refusal propagate."""
    found: dict[str, str] = {}
    for culprit, text in texts.items():
        bad = _never_held(text)
        if bad is not None:
            what = " and is not UTF-8 text" if bad != "\x00" else ", which no PostgreSQL text holds"
            found[culprit] = f"it holds {character(bad)}{what}"
    wide = {c for culprit, text in texts.items() if culprit not in found and not text.isascii()
            for c in text if not c.isascii()}
    if not wide:
        return found
    encoding = server_encoding(conn)
    if encoding in NO_CONVERSION or _holds(conn, "".join(sorted(wide))):
        return found
    refused = {c for c in wide if not _holds(conn, c)}
    for culprit, text in texts.items():
        bad = next((c for c in text if c in refused), None)
        if culprit not in found and bad is not None:
            found[culprit] = f"it holds {character(bad)}, which the database's encoding {encoding} cannot hold"
    return found


def _holds(conn: psycopg.Connection[Any], text: str) -> bool:
    import psycopg

    try:
        with conn.transaction():  # a savepoint inside the caller's transaction: it goes on
            conn.execute(PROBE, (text,))
    except (psycopg.errors.UntranslatableCharacter, psycopg.errors.CharacterNotInRepertoire):
        return False
    return True


def refuse_unheld(conn: psycopg.Connection[Any], texts: Mapping[str, str]) -> None:
    """UsageError (exit 2), one line naming the first culprit of ``texts`` (``{culprit: text}``,
    e.g. ``{"--reason": ...}``) the database cannot hold (see :func:`unheld`); nothing written."""
    from guard.errors import UsageError

    problems = unheld(conn, texts)
    if problems:
        culprit, why = next(iter(problems.items()))
        raise UsageError(f"{printable(culprit)}: {why}; nothing was changed",
                         hint="use text the database's encoding holds")
