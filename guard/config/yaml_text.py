"""YAML text, bounded: guard.yml and the YAML-valued GUARD_* variables (providers, sinks,
lint severities, drill checks) go through the one loader here.

PyYAML's SafeLoader builds no objects it should not, but it will follow aliases that expand
exponentially ("billion laughs") and recurse once per nesting level (100k brackets end in a
RecursionError). This loader refuses, before building anything big: more than MAX_ALIASES
aliases, nesting deeper than MAX_DEPTH, more than MAX_NODES nodes (counting each alias as
the nodes it stands for), text longer than MAX_BYTES, and tags other than YAML's own.
"""

from __future__ import annotations

import re
from typing import Any

from msgspec import Struct

from guard.errors import ConfigError

MAX_DEPTH = 32  # guard.yml needs 4 (section, list, item, headers)
MAX_ALIASES = 32
MAX_NODES = 20_000
MAX_BYTES = 1 << 20
# Compiled when first used (re caches it): the 32-fold repeat takes ~7 ms to compile, paid
# only by a run that has a guard.yml.
_BRACKET_RUN = r"[\[{](?:\s*[\[{]){" + str(MAX_DEPTH) + "}"


class Value(Struct):
    """A YAML value and where it came from: ``guard.yml:12``, ``env GUARD_X``, ``flag --x``."""

    value: Any
    source: str


class _Refused(Exception):
    def __init__(self, message: str, line: int | None) -> None:
        super().__init__(message)
        self.line = line


def _bounded_loader(text: str) -> Any:
    import yaml

    class Loader(yaml.SafeLoader):
        depth = 0
        aliases = 0
        nodes = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            line = self.peek_event().start_mark.line + 1
            if self.check_event(yaml.AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_ALIASES:
                    raise _Refused(f"more than {MAX_ALIASES} aliases (*name)", line)
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _Refused(f"more than {MAX_NODES} values", line)
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", line)
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return Loader(text)


def compose(text: str, filename: str) -> Any:
    """Parse YAML into `Value` wrappers with file:line at every value (mapping values are
    ``{key: (source of the key, Value)}``); None for an empty document.

    Raises ConfigError naming ``filename`` (and the line) for text that is not YAML or is
    refused (see the module's docstring).
    """
    import yaml

    if len(text) > MAX_BYTES:
        raise ConfigError(f"longer than {MAX_BYTES // 1024} KiB", source=filename)
    # PyYAML's scanner looks up to 1024 characters ahead for each possible key, in quadratic
    # time: a run of opening brackets costs half a second before the depth limit is met.
    run = re.search(_BRACKET_RUN, text)
    if run is not None:
        line = text.count("\n", 0, run.start()) + 1
        raise ConfigError(f"refused: nested deeper than {MAX_DEPTH} levels", source=f"{filename}:{line}")
    loader = _bounded_loader(text)
    try:
        node = loader.get_single_node()
    except _Refused as exc:
        raise ConfigError(f"refused: {exc}", source=f"{filename}:{exc.line}" if exc.line else filename) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_problem(exc)}", source=_where(exc, filename)) from None
    except RecursionError:  # the scanner's own recursion; the depth limit should come first
        raise ConfigError(f"refused: nested deeper than {MAX_DEPTH} levels", source=filename) from None
    finally:
        loader.dispose()
    if node is None:
        return None
    budget = [MAX_NODES]
    try:
        return _convert(node, filename, yaml.SafeLoader(""), budget)
    except yaml.YAMLError as exc:
        raise ConfigError(f"not valid YAML: {_problem(exc)}", source=_where(exc, filename)) from None


def _problem(exc: Any) -> str:
    return str(getattr(exc, "problem", None) or str(exc).splitlines()[0])[:200]


def _where(exc: Any, filename: str) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{filename}:{mark.line + 1}" if mark is not None else filename


_COLLECTION_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _convert(node: Any, filename: str, scalars: Any, budget: list[int], depth: int = 1) -> Value:
    import yaml

    budget[0] -= 1
    where = f"{filename}:{node.start_mark.line + 1}"
    if budget[0] < 0:  # aliases expanded beyond the budget
        raise ConfigError(f"refused: more than {MAX_NODES} values once aliases are expanded", source=where)
    if depth > MAX_DEPTH:  # an alias inside its own anchor
        raise ConfigError(f"refused: nested deeper than {MAX_DEPTH} levels once aliases are expanded",
                          source=where)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _COLLECTION_TAGS:
        raise ConfigError(f"not valid YAML: tag {node.tag[:40]!r} is not allowed", source=where)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, tuple[str, Any]] = {}
        for key_node, value_node in node.value:
            key_where = f"{filename}:{key_node.start_mark.line + 1}"
            key = _scalar(key_node, scalars, key_where) if isinstance(key_node, yaml.ScalarNode) else None
            if not isinstance(key, str):
                raise ConfigError("keys must be text", source=key_where)
            if key in out:
                raise ConfigError("duplicate key", key=key[:80], source=key_where)
            out[key] = (key_where, _convert(value_node, filename, scalars, budget, depth + 1))
        return Value(out, where)
    if isinstance(node, yaml.SequenceNode):
        return Value([_convert(item, filename, scalars, budget, depth + 1) for item in node.value], where)
    return Value(_scalar(node, scalars, where), where)


def _scalar(node: Any, scalars: Any, where: str) -> Any:
    """A scalar as SafeLoader reads it; an unknown tag or an unreadable number names its line."""
    import yaml

    try:
        return scalars.construct_object(node)
    except yaml.constructor.ConstructorError as exc:
        raise ConfigError(f"not valid YAML: {_problem(exc)}", source=where) from None
    except ValueError:  # an int of more than 4300 digits, a date that does not exist
        raise ConfigError(f"not a readable value: {node.tag.rsplit(':', 1)[-1]} {node.value[:20]!r}...",
                          source=where) from None


def plain(value: Any) -> Any:
    """Strip `Value` wrappers (used once values' lines are no longer needed)."""
    if isinstance(value, Value):
        return plain(value.value)
    if isinstance(value, dict):
        return {k: plain(v[1]) if isinstance(v, tuple) else plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def load_plain(text: str, where: str = "the value") -> Any:
    """YAML text (from an environment variable) as plain values, bounded like a file.

    Raises ValueError with the reason (the caller names the key and variable).
    """
    try:
        return plain(compose(text, where))
    except ConfigError as exc:
        line = (exc.source or "").removeprefix(where).lstrip(":")
        reason = exc.message.removeprefix(f"{exc.source}: ")
        raise ValueError(f"{reason} (line {line})" if line else reason) from None
