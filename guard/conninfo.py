"""Connection strings read the way libpq reads them, and shown without their secrets.

libpq accepts a URI (``postgresql://`` or ``postgres://``) or ``key=value`` pairs (libpq docs,
"Connection Strings"; ``conninfo_uri_parse_options`` in ``src/interfaces/libpq/fe-connect.c``).
Its reading of a URI differs from Python's ``urlsplit`` in ways that matter for secrets: libpq
ends the user:password part at the *first* ``@`` (Python at the last), so in
``postgresql://u:abc@def@host/db`` libpq connects to host ``def@host`` and would print it.
guard therefore parses with libpq itself (psycopg's ``conninfo_to_dict`` calls
``PQconninfoParse``), refuses strings that readers disagree on, and never echoes a string
nor a parser's message about one: libpq's messages quote the string, password included.
"""

from __future__ import annotations

import re
from urllib.parse import unquote

from guard.errors import UsageError

URI_PREFIXES = ("postgresql://", "postgres://")
# Keys whose values are secrets in a connection string (libpq's "password"; sslpassword
# unlocks the client key).
SECRET_KEYS = frozenset({"password", "sslpassword"})
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_HINT = "percent-encode reserved characters of the user and password (@ is %40, / is %2F, : is %3A)"


def _refuse(what: str, hint: str = _HINT) -> UsageError:
    return UsageError(f"the connection string {what} (not shown: it may hold a password)", hint=hint)


def _check_uri(text: str) -> None:
    """UsageError for a URI that libpq and a reader would split differently."""
    if _CONTROL.search(text):
        raise _refuse("contains control characters or line breaks", "remove them")
    rest = text.split("://", 1)[1]
    authority, slash, after = rest.partition("/")
    if authority.count("@") > 1:
        raise _refuse("has more than one unencoded @ before the host")
    path = after.split("?", 1)[0] if slash else ""
    if "@" in path:
        raise _refuse("has an @ after the first /, e.g. a password with an unencoded /")
    hostpart = authority.rsplit("@", 1)[-1]
    for host in hostpart.split(","):
        if host.startswith("[") and "]" not in host:
            raise _refuse("has an IPv6 host without its closing ]", "write IPv6 hosts as [::1]")
        if host.startswith("[]"):
            raise _refuse("has an empty IPv6 host []", "write IPv6 hosts as [::1]")
        if "]" in host and not re.fullmatch(r"\[[0-9A-Fa-f:.%\w]+\](:\d*)?", host.split("?", 1)[0]):
            raise _refuse("has a malformed IPv6 host", "write IPv6 hosts as [::1] or [::1]:5432")


def parse(text: str) -> dict[str, str]:
    """libpq's reading of ``text`` (URI or key=value): keyword -> value, percent-decoding done.

    Raises UsageError (one line, never quoting ``text``) for a string libpq rejects, a URI with
    another scheme, or one readers would split differently (more than one unencoded ``@``,
    an ``@`` in the path, a malformed IPv6 host, control characters)."""
    from psycopg.conninfo import conninfo_to_dict

    if not isinstance(text, str) or not text.strip():
        raise UsageError("the connection string is empty", hint="set database_url or DATABASE_URL")
    scheme = re.match(r"^\s*([A-Za-z][A-Za-z0-9+.-]*)://", text)
    if scheme:
        if not text.startswith(URI_PREFIXES):
            name = scheme.group(1)
            what = ("must start with postgresql:// exactly (lower case, nothing before it)"
                    if name.lower() in ("postgres", "postgresql") else f"is a {name[:20]}:// URL, not postgresql://")
            raise _refuse(what, "use postgresql://user:password@host:port/dbname or key=value pairs")
        _check_uri(text)
    try:
        params = conninfo_to_dict(text)
    except Exception:  # noqa: BLE001 - libpq's message quotes the string: never shown
        raise _refuse("does not parse (libpq rejects it)",
                      "check its quoting; " + _HINT) from None
    result = {k: str(v) for k, v in params.items() if v is not None}
    for port in result.get("port", "").split(","):
        if port and not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise _refuse("has a port that is not a number from 1 to 65535", "e.g. host:5432")
    return result


def secrets(text: str) -> list[str]:
    """Every value in ``text`` that may be a secret, under every reading (libpq's, Python's,
    the raw text between the first ``:`` and the last ``@``), for the masker. Never raises."""
    found: list[str] = []
    try:
        params = parse(text)
        found += [v for k, v in params.items() if k in SECRET_KEYS and v]
    except UsageError:
        pass
    if isinstance(text, str) and "://" in text:
        userinfo = text.split("://", 1)[1]
        authority = userinfo.split("/", 1)[0]
        for candidate in (userinfo.rsplit("@", 1)[0], authority.rsplit("@", 1)[0],
                          authority.split("@", 1)[0]):
            if "@" in text and ":" in candidate:
                raw = candidate.split(":", 1)[1]
                found += [raw, unquote(raw)]
        for m in re.finditer(r"[?&](?:ssl)?password=([^&#\s]*)", text, re.I):
            found += [m.group(1), unquote(m.group(1))]
    elif isinstance(text, str):
        for m in re.finditer(r"(?:ssl)?password\s*=\s*('(?:[^'\\]|\\.)*'?|\S+)", text):
            value = m.group(1)
            found += [value, value.strip("'"), value.strip("'").replace("\\'", "'").replace("\\\\", "\\")]
    return [s for s in dict.fromkeys(found) if s]


def password(text: str) -> str | None:
    """The password libpq would send, else the best guess from :func:`secrets`, else None."""
    try:
        value = parse(text).get("password")
        if value:
            return value
    except UsageError:
        pass
    candidates = [s for s in secrets(text) if s]
    return max(candidates, key=len) if candidates else None


def redact(text: str) -> str:
    """The connection string rebuilt from libpq's reading, secrets as ``***``; a string that
    does not parse is never shown."""
    try:
        params = parse(text)
    except UsageError:
        return "<connection string not shown: it does not parse>"
    if "://" in text:
        # parse() refused every URI that readers split differently: the text's own parts
        # are libpq's.
        scheme, rest = text.split("://", 1)
        authority, slash, path = rest.partition("/")
        userinfo, at, hosts = authority.rpartition("@")
        user, colon, _password = userinfo.partition(":")
        path, question, query = (slash + path).partition("?") if slash else ("", *authority.partition("?")[1:])
        if not slash:
            hosts = hosts.split("?", 1)[0]
        pairs = [
            (f"{k}=***" if unquote(k).lower() in SECRET_KEYS else f"{k}{eq}{v}")
            for k, eq, v in (pair.partition("=") for pair in query.split("&") if pair)
        ]
        return (f"{scheme}://{user}{':***' if colon else ''}{at}{hosts}{path}"
                + (question + "&".join(pairs) if pairs else ""))
    return " ".join(f"{k}={'***' if k in SECRET_KEYS else _quote(v)}" for k, v in params.items())


def _quote(value: str) -> str:
    if value and not re.search(r"[\s'\\]", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def describe(text: str) -> str:
    """``host:port/dbname`` for messages (first host when there are several), never a secret."""
    try:
        params = parse(text)
    except UsageError:
        return "<connection string not shown: it does not parse>"
    host = params.get("host", "").split(",")[0] or "localhost"
    port = params.get("port", "").split(",")[0]
    return f"{host}{':' + port if port else ''}/{params.get('dbname', '')}"
