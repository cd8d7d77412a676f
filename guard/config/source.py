"""Reading configuration text: YAML with line numbers, ``${VAR}`` interpolation, and the
plug-in lists (``backups.providers``, ``log.sinks``) checked against their specs."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from guard.config.keys import LIST_KEYS, SCALAR_KEYS, SECTIONS
from guard.config.values import parse_duration, to_bool, type_name
from guard.errors import ConfigError
from guard.plugins import PluginConfig, PluginSpec

_INTERPOLATION = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


# --------------------------------------------------------------------------- YAML with lines


@dataclass
class Value:
    value: Any
    source: str  # "guard.yml:12", "env GUARD_X", "flag --x"


def compose(text: str, filename: str) -> Any:
    """Parse YAML into plain values, keeping `Value` wrappers with file:line at every leaf/key."""
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
            return Value(out, where)
        if isinstance(n, yaml.SequenceNode):
            return Value([convert(item) for item in n.value], where)
        return Value(scalar_loader.construct_object(n), where)

    return convert(node)


def plain(value: Any) -> Any:
    """Strip `Value` wrappers (used for plug-in options once their lines are no longer needed)."""
    if isinstance(value, Value):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v[1]) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


# --------------------------------------------------------------------------- loading


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
                    raise ConfigError(
                        "unknown key", key=dotted, source=sub_source, hint=_known_in(key)
                    )
                out[dotted] = Value(interpolate.walk(sub_value, dotted, sub_source), sub_source)
        elif key in SCALAR_KEYS:
            out[key] = Value(interpolate.walk(value, key, source), source)
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


def interpolate_plain(value: Any, interpolate: Interpolator, key: str, source: str) -> Any:
    if isinstance(value, str):
        return interpolate(value, key, source)
    if isinstance(value, list):
        return [interpolate_plain(v, interpolate, f"{key}[{i}]", source) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate_plain(v, interpolate, f"{key}.{k}", source) for k, v in value.items()}
    return value


def unwrap(value: Any) -> Any:
    return value.value if isinstance(value, Value) else value


def plugin_list(
    raw: Value,
    key: str,
    kinds: Mapping[str, PluginSpec],
    *,
    is_sink: bool,
    interpolate: Interpolator | None = None,
) -> tuple[PluginConfig, ...]:
    items = unwrap(raw.value)
    if isinstance(items, str):  # from the environment: YAML text
        import yaml

        try:
            items = yaml.safe_load(items)
        except yaml.YAMLError:
            raise ConfigError("expected a YAML list", key=key, source=raw.source) from None
        if interpolate is not None:
            # ${VAR} after parsing, so a value can never change the YAML's structure.
            items = interpolate_plain(items, interpolate, key, raw.source)
    if not isinstance(items, list):
        raise ConfigError(f"expected a list, got {type_name(items)}", key=key, source=raw.source)
    result = []
    for index, item in enumerate(items):
        item_source = item.source if isinstance(item, Value) else raw.source
        entry = unwrap(item)
        where = f"{key}[{index}]"
        if isinstance(entry, str):  # shorthand: "- table"
            entry = {"type": (item_source, Value(entry, item_source))}
        if not isinstance(entry, dict):
            raise ConfigError(
                f"expected a mapping with a type, got {type_name(entry)}", key=where, source=item_source
            )
        options = {k: plain(v[1]) if isinstance(v, tuple) else v for k, v in entry.items()}
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
                required = to_bool(options.pop("required"))
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
