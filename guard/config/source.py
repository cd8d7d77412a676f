"""Reading configuration text: YAML with line numbers, ``${VAR}`` interpolation, and the
plug-in lists (``backups.providers``, ``log.sinks``) checked against their specs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from guard.config.keys import (
    LIST_KEYS,
    PLUGIN_OPTIONS,
    PROVIDER_COMMON,
    SCALAR_KEYS,
    SECTIONS,
    SINK_COMMON,
)
from guard.config.values import Converter, type_name
from guard.config.yaml_text import Value, compose, plain
from guard.errors import ConfigError
from guard.plugins import PluginConfig, PluginSpec

__all__ = ["Interpolator", "Value", "compose", "flatten_file", "plain", "plugin_list"]

_INTERPOLATION = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


class Interpolator:
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
        if isinstance(value, Value):
            return Value(self.walk(value.value, key, value.source), value.source)
        if isinstance(value, str):
            return self(value, key, source)
        if isinstance(value, dict):
            return {k: (src, self.walk(v, f"{key}.{k}", src)) for k, (src, v) in value.items()}
        if isinstance(value, list):
            return [self.walk(v, f"{key}[{i}]", source) for i, v in enumerate(value)]
        return value


def flatten_file(root: Any, filename: str, interpolate: Interpolator) -> dict[str, Value]:
    """Top-level mapping -> {dotted key: Value}; unknown keys are errors naming file:line."""
    if not isinstance(root, Value) or not isinstance(root.value, dict):
        where = root.source if isinstance(root, Value) else filename
        raise ConfigError("expected a mapping of settings at the top level", source=where)
    out: dict[str, Value] = {}
    for key, (source, value) in root.value.items():
        if key in SECTIONS:
            if value.value is None:
                continue
            if not isinstance(value.value, dict):
                raise ConfigError(
                    f"expected a mapping, got {type_name(value.value)}", key=key, source=source
                )
            for sub, (sub_source, sub_value) in value.value.items():
                dotted = f"{key}.{sub}"
                if dotted not in SCALAR_KEYS and dotted not in LIST_KEYS:
                    raise ConfigError("unknown key", key=dotted[:80], source=sub_source, hint=_known_in(key))
                out[dotted] = Value(interpolate.walk(sub_value, dotted, sub_source), sub_source)
        elif key in SCALAR_KEYS:
            out[key] = Value(interpolate.walk(value, key, source), source)
        else:
            raise ConfigError(
                "unknown key",
                key=key[:80],
                source=source,
                hint="known: " + ", ".join(sorted({*SECTIONS, *(k for k in SCALAR_KEYS if "." not in k)})),
            )
    return out


def _known_in(section: str) -> str:
    keys = [k.split(".", 1)[1] for k in (*SCALAR_KEYS, *LIST_KEYS) if k.startswith(section + ".")]
    return "known in " + section + ": " + ", ".join(sorted(keys))


def unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Value) else value


def yaml_from_env(raw: Value, key: str, interpolate: Interpolator | None) -> Any:
    """A YAML-valued environment variable (or flag) as a `Value` tree, bounded like a file;
    ``${VAR}`` is replaced after parsing, so a value can never change the YAML's structure."""
    try:
        tree = compose(raw.value, raw.source)
    except ConfigError as exc:
        raise ConfigError(exc.message.removeprefix(f"{exc.source}: "), key=key, source=exc.source) from None
    if tree is None:  # only comments: nothing, which is not a list
        return Value(None, raw.source)
    return interpolate.walk(tree, key, raw.source) if interpolate is not None else tree


def plugin_list(
    raw: Value,
    key: str,
    kinds: Mapping[str, PluginSpec],
    *,
    is_sink: bool,
    interpolate: Interpolator | None = None,
) -> tuple[PluginConfig, ...]:
    """``backups.providers`` or ``log.sinks``: each entry's type, and each option checked
    against the type's spec and its declared type (keys.PLUGIN_OPTIONS), naming file:line."""
    items = unwrap(raw.value)
    if isinstance(items, str):  # from the environment: YAML text
        items = unwrap(yaml_from_env(Value(items, raw.source), key, interpolate))
    if not isinstance(items, list):
        raise ConfigError(f"expected a list, got {type_name(items)}", key=key, source=raw.source)
    return tuple(_plugin(item, f"{key}[{index}]", raw.source, kinds, is_sink) for index, item in enumerate(items))


def _plugin(item: Any, where: str, list_source: str, kinds: Mapping[str, PluginSpec], is_sink: bool) -> PluginConfig:
    item_source = item.source if isinstance(item, Value) else list_source
    entry = unwrap(item)
    if isinstance(entry, str):  # shorthand: "- table"
        entry = {"type": (item_source, Value(entry, item_source))}
    if not isinstance(entry, dict):
        raise ConfigError(f"expected a mapping with a type, got {type_name(entry)}", key=where, source=item_source)
    lines = {k: v[0] if isinstance(v, tuple) else item_source for k, v in entry.items()}
    options = {k: plain(v[1]) if isinstance(v, tuple) else plain(v) for k, v in entry.items()}
    kind = options.pop("type", None)
    if not isinstance(kind, str) or not kind:
        raise ConfigError("missing type", key=where, source=item_source, hint="known: " + ", ".join(sorted(kinds)))
    spec = kinds.get(kind) if len(kind) <= 64 else None
    if spec is None:
        raise ConfigError(f"unknown type {kind[:64]!r}", key=f"{where}.type", source=lines.get("type", item_source),
                          hint="known: " + ", ".join(sorted(kinds)))
    common: dict[str, Converter] = SINK_COMMON if is_sink else PROVIDER_COMMON
    for name in list(options):
        if name not in spec.options and name not in common:
            raise ConfigError(
                "unknown key", key=f"{where}.{str(name)[:64]}", source=lines[name],
                hint=f"{kind} takes: " + ", ".join(sorted({*spec.options, *common, "type"})),
            )
        convert = common.get(name) or PLUGIN_OPTIONS.get(name)
        if convert is None:  # a plug-in's own option nobody declared a type for: taken as it is
            continue
        try:
            options[name] = convert(options[name])
        except ValueError as exc:
            raise ConfigError(str(exc), key=f"{where}.{name}", source=lines[name]) from None
    for name in sorted(spec.required):
        if name not in options:
            raise ConfigError(f"missing {name} for {kind}", key=f"{where}.{name}", source=item_source)
    max_age = options.pop("max_age", None)
    required = options.pop("required", True)
    return PluginConfig(kind, options, f"{item_source} ({where})", max_age, required)
