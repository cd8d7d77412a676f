"""Values in guard.yml: durations, sizes, and the converters that check each key's value.

Every converter raises ValueError with a readable reason (never quoting the value of a key
that may hold a secret); the loader adds the key and where the value came from. The
factories (``duration``, ``size``, ``whole``, ``text``...) take the key's range, so the
schema in keys.py states each key's type, range and unit in one line.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from guard.config.model import DrillCheck, VerifyCheck

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w)?\s*$")
_UNITS = {
    None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0,
}  # fmt: skip
_DURATION_HELP = "a duration like 90s, 15min, 26h or 7d"
# PostgreSQL keeps lock_timeout and statement_timeout as int milliseconds (guc.c: INT_MAX).
PG_TIMEOUT_MAX = 2_147_483_647 / 1000
BIGINT_MAX = 2**63 - 1

Converter = Callable[[Any], Any]


def type_name(value: Any) -> str:
    """What a YAML value is, in words: ``a mapping``, ``a list``, ``true/false``, ``a number``..."""
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {dict: "a mapping", list: "a list", type(None): "nothing", str: "text", bytes: "binary data"}.get(
        type(value), f"a {type(value).__name__}"
    )


def parse_duration(value: Any) -> float:
    """Seconds in a duration such as ``90s``, ``15min``, ``26h``, ``7d`` (a bare number is seconds).

    Finite and not negative; raises ValueError with a readable reason.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected {_DURATION_HELP}, got {type_name(value)}")
    if isinstance(value, (int, float)):
        seconds = float(value) if not isinstance(value, int) or abs(value) < 10**18 else math.inf
    else:
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"expected {_DURATION_HELP}, got {value[:40]!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if not math.isfinite(seconds):
        raise ValueError(f"expected {_DURATION_HELP}, got a number that is not finite")
    if seconds < 0:
        raise ValueError("a duration cannot be negative")
    return seconds


def format_duration(seconds: float) -> str:
    """A short human form: 45s, 12min, 3h 05min, 2d 4h."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s" if seconds >= 1 or seconds == 0 else f"{seconds * 1000:g}ms"
    minutes = int(seconds // 60)
    if minutes < 90:
        return f"{minutes}min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}min"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


def duration(low: float, high: float, *, off: bool = False) -> Converter:
    """A duration from ``low`` to ``high`` seconds; with ``off``, also exactly 0 ("no limit")."""

    def convert(value: Any) -> float:
        seconds = parse_duration(value)
        if off and seconds == 0:
            return 0.0
        if not low <= seconds <= high:
            allowed = f"from {format_duration(low)} to {format_duration(high)}"
            if off:
                allowed += " (or 0: no limit)"
            raise ValueError(f"must be {allowed}, got {format_duration(seconds)}")
        return seconds

    return convert


def text(*, empty: bool = False, secret: bool = False, max_len: int = 64 * 1024) -> Converter:
    """Text: never a number, true/false, list or mapping (quote it); no NUL character."""

    def convert(value: Any) -> str:
        if not isinstance(value, str):
            hint = " (quote it)" if isinstance(value, (bool, int, float)) else ""
            raise ValueError(f"expected text, got {type_name(value)}{hint}")
        if not empty and not value.strip():
            raise ValueError("is empty")
        if "\x00" in value:
            raise ValueError("contains a NUL character")
        if len(value) > max_len:
            raise ValueError(f"is longer than {max_len} characters")
        return value

    convert.secret = secret  # type: ignore[attr-defined]
    return convert


def is_secret(converter: Converter) -> bool:
    return bool(getattr(converter, "secret", False))


def to_bool(value: Any) -> bool:
    """true/false (YAML's), or the text true/false, yes/no, on/off, 1/0 (from the environment)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "off", "0"}:
        return False
    shown = repr(value[:40]) if isinstance(value, str) else type_name(value)
    raise ValueError(f"expected true or false, got {shown}")


def choice(*choices: str) -> Converter:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            shown = repr(value[:40]) if isinstance(value, str) else type_name(value)
            raise ValueError(f"expected one of {', '.join(choices)}, got {shown}")
        return value

    return convert


def whole(low: int, high: int) -> Converter:
    """A whole number from ``low`` to ``high`` (text digits from the environment too)."""

    def convert(value: Any) -> int:
        wanted = f"expected a whole number from {low} to {high}"
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise ValueError(f"{wanted}, got {type_name(value)}")
        if isinstance(value, str):
            if not re.fullmatch(r"\s*-?\d{1,30}\s*", value):
                raise ValueError(f"{wanted}, got {value[:40]!r}")
            value = int(value)
        if not low <= value <= high:
            raise ValueError(f"{wanted}, got {value if abs(value) < 10**30 else 'a huge number'}")
        return value

    return convert


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(value: Any) -> int:
    """Bytes in a size such as ``500MB``, ``1GB``, ``2GiB`` (a bare number is bytes).

    Not negative, at most PostgreSQL's bigint (sizes are compared with pg_relation_size).
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"expected a size like 500MB or 1GB, got {type_name(value)}")
    if isinstance(value, int):
        size = value
    else:
        match = _SIZE.match(str(value)[:64])
        if not match:
            raise ValueError(f"expected a size like 500MB or 1GB, got {str(value)[:40]!r}")
        unit = match.group(2).lower() if match.group(2) else None
        size = int(float(match.group(1)) * _SIZE_UNITS[unit]) if len(match.group(1)) < 30 else BIGINT_MAX + 1
    if size < 0:
        raise ValueError("a size cannot be negative")
    if size > BIGINT_MAX:
        raise ValueError("is larger than PostgreSQL's bigint")
    return size


def globs(value: Any) -> tuple[str, ...]:
    """A list of file name globs (fnmatch), or one comma-separated string (the env form).

    Raises ValueError naming what it got."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"expected a list of file name globs, got {value!r}")
    return tuple(value)


def _rule_list(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of rule ids, got {type_name(value)}")
    from guard.lint import RULES

    unknown = [v for v in value if v not in RULES]
    if unknown:
        raise ValueError(f"unknown rule {unknown[0][:40]!r} (see docs/lint.md)")
    return frozenset(value)


def _rule_severities(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        from guard.config.yaml_text import load_plain

        value = load_plain(value)
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of rule id to error/warning/info, got {type_name(value)}")
    from guard.lint import RULES, SEVERITIES

    for rule, level in value.items():
        if rule not in RULES:
            raise ValueError(f"unknown rule {str(rule)[:40]!r} (see docs/lint.md)")
        if level not in SEVERITIES:
            raise ValueError(f"severity of {rule} must be error, warning or info, got {type_name(level)}")
    return dict(value)


def _drill_checks(value: Any) -> tuple[DrillCheck, ...]:
    if isinstance(value, str):
        from guard.config.yaml_text import load_plain

        value = load_plain(value)
    if not isinstance(value, list):
        raise ValueError("expected a list of {sql: ..., expect: ...}")
    checks = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str) or "expect" not in item:
            raise ValueError(f"item {index}: expected {{sql: <query>, expect: <first value>}}")
        unknown = set(item) - {"sql", "expect"}
        if unknown:
            raise ValueError(f"item {index}: unknown key {str(sorted(map(str, unknown))[0])[:40]}")
        if not item["sql"].strip() or "\x00" in item["sql"]:
            raise ValueError(f"item {index}: sql is empty or contains a NUL character")
        if isinstance(item["expect"], (dict, list)) or item["expect"] is None:
            raise ValueError(f"item {index}: expect must be a single value, got {type_name(item['expect'])}")
        checks.append(DrillCheck(item["sql"], str(item["expect"])))
    return tuple(checks)


VERIFY_KEYS = frozenset({"name", "sql", "run", "expect", "timeout", "shadow"})


def _verify_checks(value: Any) -> tuple[VerifyCheck, ...]:
    """`verify:`: a list of {name, sql | run, expect: empty, timeout, shadow} (YAML in GUARD_VERIFY)."""
    if isinstance(value, str):
        from guard.config.yaml_text import load_plain

        value = load_plain(value)
    if not isinstance(value, list):
        raise ValueError("expected a list of {name: ..., sql: ... | run: [...]}")
    checks: list[VerifyCheck] = []
    for index, item in enumerate(value):
        checks.append(_verify_check(index, item, {c.name for c in checks}))
    return tuple(checks)


def _verify_check(index: int, item: Any, seen: set[str]) -> VerifyCheck:
    where = f"item {index}"
    if not isinstance(item, dict):
        raise ValueError(f"{where}: expected {{name: ..., sql: ... | run: [...]}}")
    unknown = set(item) - VERIFY_KEYS
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]}")
    name = item.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,63}", name):
        raise ValueError(f"{where}: name must be 1 to 63 letters, digits, '_', '.' or '-'")
    if name in seen:
        raise ValueError(f"{where}: name {name} is used twice")
    sql, run = item.get("sql"), item.get("run")
    if (sql is None) == (run is None):
        raise ValueError(f"{name}: give exactly one of sql or run")
    if sql is not None and (not isinstance(sql, str) or not sql.strip()):
        raise ValueError(f"{name}: sql must be a query")
    if run is not None and (not isinstance(run, list) or not run or not all(isinstance(a, str) and a for a in run)):
        raise ValueError(f"{name}: run must be a list of arguments (no shell), e.g. [./check, --fast]")
    expect = item.get("expect")
    if expect is not None and (expect != "empty" or sql is None):
        raise ValueError(f"{name}: expect can only be 'empty', on a sql check")
    try:
        # A sql check's timeout becomes its statement_timeout, which PostgreSQL refuses above
        # INT_MAX ms: found only after the release committed, it failed the check (exit 4).
        timeout = duration(0.001, PG_TIMEOUT_MAX)(item.get("timeout", "60s"))
    except ValueError as exc:
        raise ValueError(f"{name}: timeout: {exc}") from None
    return VerifyCheck(name, sql, tuple(run or ()), expect == "empty", timeout, to_bool(item.get("shadow", False)))


def identifier(value: Any) -> str:
    """A PostgreSQL identifier: 1 to 63 bytes (NAMEDATALEN - 1), no NUL; quoted where used."""
    name = text()(value)
    if len(name.encode("utf-8")) > 63:
        raise ValueError("expected a PostgreSQL identifier of at most 63 bytes")
    return name


def string_map(*, header: bool = False) -> Converter:
    """A mapping of names to text (``env:``, ``headers:``): no NUL; an environment variable's
    name without ``=``; a header's name a token (RFC 9110) and its value on one line."""

    def convert(value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            raise ValueError(f"expected a mapping of names to text, got {type_name(value)}")
        for name, item in value.items():
            if not isinstance(name, str) or not name or not isinstance(item, str):
                raise ValueError(f"expected a mapping of names to text, got {type_name(item)} "
                                 f"for {str(name)[:40]!r}")
            if "\x00" in name + item or (header and re.search(r"[\r\n]", name + item)):
                raise ValueError(f"{name[:40]!r}: contains a line break or NUL character")
            if not header and "=" in name:
                raise ValueError(f"{name[:40]!r} is not an environment variable name (it has '=')")
            if header and not re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name):
                raise ValueError(f"{name[:40]!r} is not an HTTP header name")
        return dict(value)

    return convert


def command(value: Any) -> str | list[str]:
    """A command: text (split like a shell would, never run by one) or a list of strings."""
    if isinstance(value, str):
        return text()(value)
    if isinstance(value, list) and value and all(isinstance(v, str) and "\x00" not in v for v in value):
        return list(value)
    raise ValueError(f"expected a command (text or a list of strings), got {type_name(value)}")
