"""Values in guard.yml: durations, sizes, and the converters that check each key's value.

Every converter raises ValueError with a readable reason; the loader adds the key and where
the value came from.
"""

from __future__ import annotations

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


def parse_duration(value: Any) -> float:
    """Seconds in a duration such as ``90s``, ``15min``, ``26h``, ``7d`` (a bare number is seconds).

    Raises ValueError with a readable reason.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 90s, 15min, 26h or 7d, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 90s, 15min, 26h or 7d, got {value!r}")
    match = _DURATION.match(value)
    if not match:
        raise ValueError(f"expected a duration like 90s, 15min, 26h or 7d, got {value!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def format_duration(seconds: float) -> str:
    """A short human form: 45s, 12min, 3h 05min, 2d 4h."""
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f}s"
    minutes = int(seconds // 60)
    if minutes < 90:
        return f"{minutes}min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours}h {minutes:02d}min"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h"


Converter = Callable[[Any], Any]


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"expected a string, got {type_name(value)}")
    return str(value)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in {"true", "yes", "on", "1"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"false", "no", "off", "0"}:
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _choice(*choices: str) -> Converter:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    return convert


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise ValueError(f"expected a whole number from 0 to 10, got {value!r}")
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"expected a whole number from 0 to 10, got {value!r}") from None
    if not 0 <= number <= 10:
        raise ValueError(f"expected a whole number from 0 to 10, got {value!r}")
    return number


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|gb|tb|kib|mib|gib|tib)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {None: 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12,
               "kib": 1 << 10, "mib": 1 << 20, "gib": 1 << 30, "tib": 1 << 40}


def parse_size(value: Any) -> int:
    """Bytes in a size such as ``500MB``, ``1GB``, ``2GiB`` (a bare number is bytes)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 500MB or 1GB, got {value!r}")
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 500MB or 1GB, got {value!r}")
    unit = match.group(2).lower() if match.group(2) else None
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


def _rule_list(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"expected a list of rule ids, got {value!r}")
    from guard.lint import RULES

    unknown = [v for v in value if v not in RULES]
    if unknown:
        raise ValueError(f"unknown rule {unknown[0]!r} (see docs/lint.md)")
    return frozenset(value)


def _rule_severities(value: Any) -> dict[str, str]:
    if isinstance(value, str):
        import yaml

        value = yaml.safe_load(value)
    if not isinstance(value, dict):
        raise ValueError(f"expected a mapping of rule id to error/warning/info, got {value!r}")
    from guard.lint import RULES, SEVERITIES

    for rule, level in value.items():
        if rule not in RULES:
            raise ValueError(f"unknown rule {rule!r} (see docs/lint.md)")
        if level not in SEVERITIES:
            raise ValueError(f"severity of {rule} must be error, warning or info, got {level!r}")
    return dict(value)


def _drill_checks(value: Any) -> tuple[DrillCheck, ...]:
    if isinstance(value, str):
        import yaml

        value = yaml.safe_load(value)
    if not isinstance(value, list):
        raise ValueError("expected a list of {sql: ..., expect: ...}")
    checks = []
    for index, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("sql"), str) or "expect" not in item:
            raise ValueError(f"item {index}: expected {{sql: <query>, expect: <first value>}}")
        unknown = set(item) - {"sql", "expect"}
        if unknown:
            raise ValueError(f"item {index}: unknown key {sorted(unknown)[0]}")
        checks.append(DrillCheck(item["sql"], str(item["expect"])))
    return tuple(checks)


VERIFY_KEYS = frozenset({"name", "sql", "run", "expect", "timeout", "shadow"})


def _verify_checks(value: Any) -> tuple[VerifyCheck, ...]:
    """`verify:`: a list of {name, sql | run, expect: empty, timeout, shadow} (YAML in GUARD_VERIFY)."""
    if isinstance(value, str):
        import yaml

        value = yaml.safe_load(value)
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
    timeout = parse_duration(item.get("timeout", "60s"))
    if timeout <= 0:
        raise ValueError(f"{name}: timeout must be positive")
    return VerifyCheck(name, sql, tuple(run or ()), expect == "empty", timeout, to_bool(item.get("shadow", False)))


def _identifier(value: Any) -> str:
    text = _string(value)
    if not text or len(text) > 63:
        raise ValueError(f"expected a PostgreSQL identifier (1 to 63 characters), got {value!r}")
    return text


def type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


# Scalar keys: dotted path -> converter. Lists of plug-ins are handled separately.
