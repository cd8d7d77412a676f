"""guard.yml + GUARD_* environment + flags -> one frozen Config.

Later wins: the file, then the environment, then flags. Every error names the key and where
the value came from (``guard.yml:12``, ``env GUARD_BACKUPS_MAX_AGE``, ``flag --max-age``).
Secrets come from the environment through ``${VAR}`` in the file; the Config keeps the
list of secret values so every renderer can mask them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from guard.errors import ConfigError

DEFAULT_CONFIG_FILE = "guard.yml"

# Environment variables that start with GUARD_ but are not configuration keys.
# (GUARD_SNAPSHOT_KEY is the environment form of snapshot.key.)
NON_KEY_ENV = {"GUARD_CONFIG", "GUARD_RUN_ID", "GUARD_PG_BIN"}

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|secs|m|min|mins|h|hr|hrs|d|day|days|w)?\s*$")
_UNITS = {
    None: 1.0, "ms": 0.001, "s": 1.0, "sec": 1.0, "secs": 1.0,
    "m": 60.0, "min": 60.0, "mins": 60.0,
    "h": 3600.0, "hr": 3600.0, "hrs": 3600.0,
    "d": 86400.0, "day": 86400.0, "days": 86400.0, "w": 604800.0,
}  # fmt: skip
_INTERPOLATION = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


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


# --------------------------------------------------------------------------- the result


@dataclass(frozen=True)
class MigrationsConfig:
    dir: Path = Path("supabase/migrations")
    transaction: str = "per-file"  # or "all"
    lock_timeout: float = 5.0
    statement_timeout: float = 900.0
    include_all: bool = False  # apply files older than the newest applied version
    lock_retries: int = 0  # retries of a file that hit lock_timeout
    lock_retry_delay: float = 5.0  # first retry delay; doubles each time


@dataclass(frozen=True)
class PluginConfig:
    """One provider or sink: its ``type``, its own options and where it was configured."""

    type: str
    options: Mapping[str, Any]
    source: str
    max_age: float | None = None  # providers: overrides backups.max_age
    required: bool = True  # sinks: a failure blocks the run


@dataclass(frozen=True)
class BackupsConfig:
    max_age: float = 26 * 3600.0
    require: str = "any"  # or "all"
    providers: tuple[PluginConfig, ...] = ()
    require_pitr: bool = False  # destructive migrations need confirmed PITR, copies or not


@dataclass(frozen=True)
class LogConfig:
    sinks: tuple[PluginConfig, ...] = ()


@dataclass(frozen=True)
class LintSettings:
    """The `lint:` section: rules switched off, severities changed, the destructive policy."""

    disable: frozenset[str] = frozenset()
    severity: Mapping[str, str] = field(default_factory=dict)
    # block-unprotected: a destructive statement runs only with a protective copy or PITR;
    # block: never without a pragma; warn: report only.
    destructive: str = "block-unprotected"


@dataclass(frozen=True)
class SnapshotConfig:
    """`guard snapshot` and step 10 of the guarded run: where snapshots go, whether they are
    encrypted, and with what key (a secret: ``key: ${SNAPSHOT_KEY}`` or GUARD_SNAPSHOT_KEY)."""

    dir: Path = Path("snapshots")
    encrypt: bool = True
    mode: str = "off"  # in the guarded run (step 10): off | schema | full
    when: str = "destructive"  # always | destructive (only when a pending statement is)
    key: str | None = field(default=None, repr=False)  # a passphrase; never printed


class DrillCheck(NamedTuple):
    """One `drill.checks` item: SQL whose first value, as text, must equal ``expect``."""

    sql: str
    expect: str


@dataclass(frozen=True)
class DrillConfig:
    """`guard drill`: the operator's own checks, run on the restored copy only."""

    checks: tuple[DrillCheck, ...] = ()


@dataclass(frozen=True)
class ShadowConfig:
    """`guard check --shadow`: what the throw-away database starts from (guard.shadow)."""

    base: str = "auto"  # auto | supabase | none | a .sql file (relative to guard.yml)


@dataclass(frozen=True)
class ProtectConfig:
    """Protective copies of what destructive statements destroy (guard/protect.py)."""

    enabled: bool = True
    max_bytes: int = 1 << 30
    schema: str = "guard_backup"


@dataclass(frozen=True)
class BackupLogConfig:
    """Where the backup log table lives (``guard init`` creates it there)."""

    schema: str = "public"
    table: str = "backup_logs"


@dataclass(frozen=True)
class Config:
    database_url: str | None = None
    migrations: MigrationsConfig = field(default_factory=MigrationsConfig)
    backups: BackupsConfig = field(default_factory=BackupsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    backup_log: BackupLogConfig = field(default_factory=BackupLogConfig)
    protect: ProtectConfig = field(default_factory=ProtectConfig)
    lint: LintSettings = field(default_factory=LintSettings)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    drill: DrillConfig = field(default_factory=DrillConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    report: Path = Path("guard-report.json")
    reason: str | None = None
    config_file: Path | None = None
    base_dir: Path = Path(".")  # relative paths in the file are relative to it
    secrets: tuple[str, ...] = ()


# --------------------------------------------------------------------------- schema

Converter = Callable[[Any], Any]


def _string(value: Any) -> str:
    if isinstance(value, (dict, list)) or value is None:
        raise ValueError(f"expected a string, got {_type_name(value)}")
    return str(value)


def _bool(value: Any) -> bool:
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


def _identifier(value: Any) -> str:
    text = _string(value)
    if not text or len(text) > 63:
        raise ValueError(f"expected a PostgreSQL identifier (1 to 63 characters), got {value!r}")
    return text


def _type_name(value: Any) -> str:
    return {dict: "a mapping", list: "a list", type(None): "nothing"}.get(
        type(value), type(value).__name__
    )


# Scalar keys: dotted path -> converter. Lists of plug-ins are handled separately.
SCALAR_KEYS: dict[str, Converter] = {
    "database_url": _string,
    "migrations.dir": _string,
    "migrations.transaction": _choice("per-file", "all"),
    "migrations.lock_timeout": parse_duration,
    "migrations.statement_timeout": parse_duration,
    "migrations.include_all": _bool,
    "migrations.lock_retries": _count,
    "migrations.lock_retry_delay": parse_duration,
    "backups.max_age": parse_duration,
    "backups.require": _choice("any", "all"),
    "backups.require_pitr": _bool,
    "lint.disable": _rule_list,
    "lint.severity": _rule_severities,
    "lint.destructive": _choice("block-unprotected", "block", "warn"),
    "snapshot.dir": _string,
    "snapshot.encrypt": _bool,
    "snapshot.mode": _choice("off", "schema", "full"),
    "snapshot.when": _choice("always", "destructive"),
    "snapshot.key": _string,
    "drill.checks": _drill_checks,
    "shadow.base": _string,
    "protect.enabled": _bool,
    "protect.max_bytes": parse_size,
    "protect.schema": _identifier,
    "backup_log.schema": _identifier,
    "backup_log.table": _identifier,
    "report": _string,
    "reason": _string,
}
LIST_KEYS = ("backups.providers", "log.sinks")
SECTIONS = ("migrations", "backups", "log", "backup_log", "protect", "lint", "snapshot", "drill", "shadow")


def env_name(key: str) -> str:
    """The GUARD_ environment form of a dotted key: backups.max_age -> GUARD_BACKUPS_MAX_AGE."""
    return "GUARD_" + key.replace(".", "_").upper()


ENV_KEYS = {env_name(k): k for k in (*SCALAR_KEYS, *LIST_KEYS)}


# --------------------------------------------------------------------------- YAML with lines


@dataclass
class _Value:
    value: Any
    source: str  # "guard.yml:12", "env GUARD_X", "flag --x"


def _compose(text: str, filename: str) -> Any:
    """Parse YAML into plain values, keeping `_Value` wrappers with file:line at every leaf/key."""
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{filename}:{mark.line + 1}" if mark is not None else filename
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"not valid YAML: {problem}", source=where) from None
    if node is None:
        return {}
    scalar_loader = yaml.SafeLoader("")

    def convert(n: Any) -> Any:
        where = f"{filename}:{n.start_mark.line + 1}"
        if isinstance(n, yaml.MappingNode):
            out: dict[str, tuple[str, Any]] = {}
            for key_node, value_node in n.value:
                key = scalar_loader.construct_object(key_node)
                if not isinstance(key, str):
                    raise ConfigError(
                        f"keys must be strings, got {key!r}",
                        source=f"{filename}:{key_node.start_mark.line + 1}",
                    )
                if key in out:
                    raise ConfigError(
                        "duplicate key",
                        key=key,
                        source=f"{filename}:{key_node.start_mark.line + 1}",
                    )
                out[key] = (f"{filename}:{key_node.start_mark.line + 1}", convert(value_node))
            return _Value(out, where)
        if isinstance(n, yaml.SequenceNode):
            return _Value([convert(item) for item in n.value], where)
        return _Value(scalar_loader.construct_object(n), where)

    return convert(node)


def _plain(value: Any) -> Any:
    """Strip `_Value` wrappers (used for plug-in options once their lines are no longer needed)."""
    if isinstance(value, _Value):
        return _plain(value.value)
    if isinstance(value, dict):
        return {k: _plain(v[1]) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- loading


class _Interpolator:
    def __init__(self, environ: Mapping[str, str]) -> None:
        self.environ = environ
        self.secrets: list[str] = []

    def __call__(self, text: str, key: str, source: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(1) == "$":
                return "$"
            name, default = match.group(2), match.group(3)
            value = self.environ.get(name)
            if value is None or value == "":
                if default is not None:
                    return default
                raise ConfigError(
                    f"environment variable {name} is not set",
                    key=key,
                    source=source,
                    hint=f"export {name}=... or remove the reference",
                )
            # Anything that came from the environment through ${...} may be a secret.
            self.secrets.append(value)
            return value

        return _INTERPOLATION.sub(replace, text)

    def walk(self, value: Any, key: str, source: str) -> Any:
        if isinstance(value, _Value):
            return _Value(self.walk(value.value, key, value.source), value.source)
        if isinstance(value, str):
            return self(value, key, source)
        if isinstance(value, dict):
            return {k: (src, self.walk(v, f"{key}.{k}", src)) for k, (src, v) in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return value


def _flatten_file(root: Any, filename: str, interpolate: _Interpolator) -> dict[str, _Value]:
    """Top-level mapping -> {dotted key: _Value}; unknown keys are errors naming file:line."""
    if not isinstance(root, _Value) or not isinstance(root.value, dict):
        where = root.source if isinstance(root, _Value) else filename
        raise ConfigError("expected a mapping of settings at the top level", source=where)
    out: dict[str, _Value] = {}
    for key, (source, value) in root.value.items():
        if key in SECTIONS:
            if value.value is None:
                continue
            if not isinstance(value.value, dict):
                raise ConfigError(
                    f"expected a mapping, got {_type_name(value.value)}", key=key, source=source
                )
            for sub, (sub_source, sub_value) in value.value.items():
                dotted = f"{key}.{sub}"
                if dotted not in SCALAR_KEYS and dotted not in LIST_KEYS:
                    raise ConfigError(
                        "unknown key", key=dotted, source=sub_source, hint=_known_in(key)
                    )
                out[dotted] = _Value(interpolate.walk(sub_value, dotted, sub_source), sub_source)
        elif key in SCALAR_KEYS:
            out[key] = _Value(interpolate.walk(value, key, source), source)
        else:
            raise ConfigError(
                "unknown key",
                key=key,
                source=source,
                hint="known: " + ", ".join(sorted({*SECTIONS, *(k for k in SCALAR_KEYS if "." not in k)})),
            )
    return out


def _known_in(section: str) -> str:
    keys = [k.split(".", 1)[1] for k in (*SCALAR_KEYS, *LIST_KEYS) if k.startswith(section + ".")]
    return "known in " + section + ": " + ", ".join(sorted(keys))


def _interpolate_plain(value: Any, interpolate: _Interpolator, key: str, source: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, key, source)
    if isinstance(value, list):
        return [_interpolate_plain(v, interpolate, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: _interpolate_plain(v, interpolate, f"{key}.{k}", source) for k, v in value.items()}
    return value


def _unwrap(value: Any) -> Any:
    return value.value if isinstance(value, _Value) else value


def _plugins(
    raw: _Value,
    key: str,
    kinds: Mapping[str, PluginSpec],
    *,
    is_sink: bool,
    interpolate: _Interpolator | None = None,
) -> tuple[PluginConfig, ...]:
    items = _unwrap(raw.value)
    if isinstance(items, str):  # from the environment: YAML text
        import yaml

        try:
            items = yaml.safe_load(items)
        except yaml.YAMLError:
            raise ConfigError("expected a YAML list", key=key, source=raw.source) from None
        if interpolate is not None:
            # ${VAR} after parsing, so a value can never change the YAML's structure.
            items = _interpolate_plain(items, interpolate, key, raw.source)
    if not isinstance(items, list):
        raise ConfigError(f"expected a list, got {_type_name(items)}", key=key, source=raw.source)
    result = []
    for index, item in enumerate(items):
        item_source = item.source if isinstance(item, _Value) else raw.source
        entry = _unwrap(item)
        where = f"{key}[{index}]"
        if isinstance(entry, str):  # shorthand: "- table"
            entry = {"type": (item_source, _Value(entry, item_source))}
        if not isinstance(entry, dict):
            raise ConfigError(
                f"expected a mapping with a type, got {_type_name(entry)}", key=where, source=item_source
            )
        options = {k: _plain(v[1]) if isinstance(v, tuple) else v for k, v in entry.items()}
        kind = options.pop("type", None)
        if not isinstance(kind, str):
            raise ConfigError("missing type", key=where, source=item_source, hint="known: " + ", ".join(sorted(kinds)))
        spec = kinds.get(kind)
        if spec is None:
            raise ConfigError(
                f"unknown type {kind!r}", key=f"{where}.type", source=item_source,
                hint="known: " + ", ".join(sorted(kinds)),
            )
        max_age = None
        required = True
        if "max_age" in options and not is_sink:
            try:
                max_age = parse_duration(options.pop("max_age"))
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"{where}.max_age", source=item_source) from None
        if "required" in options and is_sink:
            try:
                required = _bool(options.pop("required"))
            except ValueError as exc:
                raise ConfigError(str(exc), key=f"{where}.required", source=item_source) from None
        for name in options:
            if name not in spec.options:
                line = entry[name][0] if isinstance(entry.get(name), tuple) else item_source
                raise ConfigError(
                    "unknown key", key=f"{where}.{name}", source=line,
                    hint=f"{kind} takes: " + ", ".join(sorted({*spec.options, "type", "required" if is_sink else "max_age"})),
                )
        for name in spec.required:
            if name not in options:
                raise ConfigError(f"missing {name} for {kind}", key=f"{where}.{name}", source=item_source)
        result.append(PluginConfig(kind, options, f"{item_source} ({where})", max_age, required))
    return tuple(result)


@dataclass(frozen=True)
class PluginSpec:
    """What a provider or sink type accepts in its config entry."""

    options: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()


def load_config(
    *,
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, Any]] | None = None,
    cwd: Path | None = None,
    providers: Mapping[str, PluginSpec] | None = None,
    sinks: Mapping[str, PluginSpec] | None = None,
) -> Config:
    """Assemble the Config. ``flags`` maps dotted keys to (flag name, value); None values are unset.

    ``config_path`` None means ``$GUARD_CONFIG`` or ``./guard.yml`` when present.
    """
    from guard.backups import PROVIDER_SPECS, SINK_SPECS

    environ = os.environ if environ is None else environ
    interpolate = _Interpolator(environ)
    try:
        return _load(
            config_path=config_path,
            environ=environ,
            flags=flags or {},
            cwd=cwd or Path.cwd(),
            providers=PROVIDER_SPECS if providers is None else providers,
            sinks=SINK_SPECS if sinks is None else sinks,
            interpolate=interpolate,
        )
    except ConfigError as exc:
        # A message may quote a value that came from a secret (a URL in the wrong key...).
        from guard.db import url_password
        from guard.report.mask import Masker

        masker = Masker(interpolate.secrets)
        for value in (*environ.values(), *(str(v) for _f, v in (flags or {}).values())):
            password = url_password(value) if "://" in value else None
            if password:
                masker.add(password)
        exc.message = masker(exc.message)
        exc.args = (exc.message,)
        raise


def _load(
    *,
    config_path: str | Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, tuple[str, Any]],
    cwd: Path,
    providers: Mapping[str, PluginSpec],
    sinks: Mapping[str, PluginSpec],
    interpolate: _Interpolator,
) -> Config:

    values: dict[str, _Value] = {}
    config_file: Path | None = None
    display = ""
    explicit = config_path or environ.get("GUARD_CONFIG")
    if explicit:
        config_file = (cwd / Path(explicit)).resolve() if not Path(explicit).is_absolute() else Path(explicit)
        if not config_file.is_file():
            raise ConfigError(f"config file {explicit} does not exist", key="--config")
    elif (cwd / DEFAULT_CONFIG_FILE).is_file():
        config_file = cwd / DEFAULT_CONFIG_FILE
    if config_file is not None:
        display = str(explicit) if explicit else DEFAULT_CONFIG_FILE
        try:
            text = config_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read config file: {exc.__class__.__name__}", source=str(display)) from None
        values.update(_flatten_file(_compose(text, str(display)), str(display), interpolate))

    # DATABASE_URL is the common name in CI; GUARD_DATABASE_URL wins over it.
    if environ.get("DATABASE_URL"):
        values["database_url"] = _Value(environ["DATABASE_URL"], "env DATABASE_URL")
    for name, value in environ.items():
        if not name.startswith("GUARD_") or name in NON_KEY_ENV:
            continue
        key = ENV_KEYS.get(name)
        if value == "" and key is not None:
            continue  # an empty variable (an unset CI input) does not override anything
        if key is None:
            raise ConfigError(
                "unknown GUARD_ environment variable", key=name,
                hint="known: " + ", ".join(sorted(ENV_KEYS)),
            )
        values[key] = _Value(value, f"env {name}")
    for key, (flag, value) in flags.items():
        if value is not None:
            values[key] = _Value(value, f"flag {flag}")

    secrets = list(interpolate.secrets)
    converted: dict[str, Any] = {}
    for key, raw in values.items():
        if key in LIST_KEYS:
            continue
        value = _plain(raw.value)
        try:
            converted[key] = SCALAR_KEYS[key](value)
        except ValueError as exc:
            raise ConfigError(str(exc), key=key, source=raw.source) from None

    if converted.get("snapshot.key"):
        secrets.append(converted["snapshot.key"])
    url = converted.get("database_url")
    if url:
        from guard.db import url_password

        password = url_password(url)
        if password:
            secrets.append(password)

    base_dir = config_file.parent if config_file is not None else cwd

    def path(key: str, default: Path) -> Path:
        if key not in converted:
            return default if default.is_absolute() else cwd / default
        p = Path(converted[key])
        if p.is_absolute():
            return p
        # A path from the file is relative to the file; from env/flags, to the working dir.
        from_file = bool(display) and values[key].source.startswith(display + ":")
        return (base_dir if from_file else cwd) / p

    provider_list = (
        _plugins(values["backups.providers"], "backups.providers", providers, is_sink=False,
                 interpolate=interpolate)
        if "backups.providers" in values
        else (PluginConfig("table", {}, "default"),)
    )
    sink_list = (
        _plugins(values["log.sinks"], "log.sinks", sinks, is_sink=True, interpolate=interpolate)
        if "log.sinks" in values
        else (PluginConfig("table", {}, "default"),)
    )
    secrets.extend(interpolate.secrets)  # those found while reading plug-ins from the environment
    for plugin in (*provider_list, *sink_list):
        for option, value in plugin.options.items():
            if option in {"access_token", "token", "password", "key"} and isinstance(value, str) and value:
                secrets.append(value)

    defaults_m = MigrationsConfig()
    defaults_b = BackupsConfig()
    return Config(
        database_url=url or None,
        migrations=MigrationsConfig(
            dir=path("migrations.dir", defaults_m.dir),
            transaction=converted.get("migrations.transaction", defaults_m.transaction),
            lock_timeout=converted.get("migrations.lock_timeout", defaults_m.lock_timeout),
            statement_timeout=converted.get("migrations.statement_timeout", defaults_m.statement_timeout),
            include_all=converted.get("migrations.include_all", defaults_m.include_all),
            lock_retries=converted.get("migrations.lock_retries", defaults_m.lock_retries),
            lock_retry_delay=converted.get("migrations.lock_retry_delay", defaults_m.lock_retry_delay),
        ),
        backups=BackupsConfig(
            max_age=converted.get("backups.max_age", defaults_b.max_age),
            require=converted.get("backups.require", defaults_b.require),
            require_pitr=converted.get("backups.require_pitr", False),
            providers=provider_list,
        ),
        log=LogConfig(sinks=sink_list),
        snapshot=SnapshotConfig(
            dir=path("snapshot.dir", Path("snapshots")),
            encrypt=converted.get("snapshot.encrypt", True),
            mode=converted.get("snapshot.mode", "off"),
            when=converted.get("snapshot.when", "destructive"),
            key=converted.get("snapshot.key") or None,
        ),
        drill=DrillConfig(checks=converted.get("drill.checks", ())),
        shadow=ShadowConfig(base=converted.get("shadow.base", "auto")),
        lint=LintSettings(
            disable=converted.get("lint.disable", frozenset()),
            severity=converted.get("lint.severity", {}),
            destructive=converted.get("lint.destructive", "block-unprotected"),
        ),
        protect=ProtectConfig(
            enabled=converted.get("protect.enabled", True),
            max_bytes=converted.get("protect.max_bytes", 1 << 30),
            schema=converted.get("protect.schema", "guard_backup"),
        ),
        backup_log=BackupLogConfig(
            schema=converted.get("backup_log.schema", "public"),
            table=converted.get("backup_log.table", "backup_logs"),
        ),
        report=path("report", Path("guard-report.json")),
        reason=converted.get("reason"),
        config_file=config_file,
        base_dir=base_dir,
        secrets=tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)),
    )


def require_database_url(config: Config) -> str:
    """The database URL, or exit 2 naming every place it can come from."""
    if not config.database_url:
        where = f"{config.config_file.name}: " if config.config_file else ""
        raise ConfigError(
            f"{where}database_url is not set",
            key=None,
            hint="set database_url in guard.yml, GUARD_DATABASE_URL or DATABASE_URL, or pass --database-url",
        )
    return config.database_url
