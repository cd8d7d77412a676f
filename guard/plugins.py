"""The plug-in registry: provider and sink types, what each accepts in guard.yml, and the
module that registers it.

guard.config validates plug-in entries against these specs; guard.backups builds the
plug-ins from them. Both import this module, and it imports neither (it names the built-in
modules as data and imports one only when its type is met), so config and backups do not
depend on each other.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    from guard.config import Config


class PluginConfig(Struct, frozen=True):
    """One provider or sink: its ``type``, its own options and where it was configured."""

    type: str
    options: Mapping[str, Any]
    source: str
    max_age: float | None = None  # providers: overrides backups.max_age
    required: bool = True  # sinks: a failure blocks the run


class PluginSpec(Struct, frozen=True):
    """What a provider or sink type accepts in its config entry."""

    options: frozenset[str] = frozenset()
    required: frozenset[str] = frozenset()


class Registered(Struct, frozen=True):
    """A plugin kind as registered: its spec and the factory that builds it from its config."""

    spec: PluginSpec
    factory: Callable[[PluginConfig, Config], Any]


PROVIDERS: dict[str, Registered] = {}
SINKS: dict[str, Registered] = {}


# Each module defines PROVIDERS and/or SINKS: {config type: Registered(spec, factory)}.
# Which module registers each built-in type, so that a run imports only the ones its
# configuration names (the HTTP and external-tool modules cost ~6 ms a run otherwise).
# tests/test_config.py checks these against what the modules register.
BUILTIN_PROVIDERS = {
    "table": "guard.backups.table",
    "supabase": "guard.backups.supabase",
    "pgbackrest": "guard.backups.external",
    "wal-g": "guard.backups.external",
    "walg": "guard.backups.external",
    "barman": "guard.backups.external",
    "command": "guard.backups.external",
}
BUILTIN_SINKS = {
    "table": "guard.backups.table",
    "supabase-restore-point": "guard.backups.supabase",
    "http": "guard.backups.http_sink",
}


def _register(module_name: str) -> None:
    import importlib

    module = importlib.import_module(module_name)
    PROVIDERS.update(getattr(module, "PROVIDERS", {}))
    SINKS.update(getattr(module, "SINKS", {}))


def _register_builtin() -> None:
    for name in dict.fromkeys([*BUILTIN_PROVIDERS.values(), *BUILTIN_SINKS.values()]):
        _register(name)


def lookup(registry: dict[str, Registered], builtin: Mapping[str, str], key: str) -> Registered:
    """The registration of type ``key``, importing only its module; KeyError if unknown."""
    if key not in registry and key in builtin:
        _register(builtin[key])
    return registry[key]


class _Specs(Mapping[str, PluginSpec]):
    """A lazy view: config validation needs the specs of the types it meets, not every
    plug-in module's imports (listing them all, for an unknown type's message, imports all)."""

    def __init__(self, registry: dict[str, Registered], builtin: Mapping[str, str]) -> None:
        self.registry = registry
        self.builtin = builtin

    def __getitem__(self, key: str) -> PluginSpec:
        return lookup(self.registry, self.builtin, key).spec

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and (key in self.registry or key in self.builtin)

    def __iter__(self) -> Iterator[str]:
        _register_builtin()
        return iter(self.registry)

    def __len__(self) -> int:
        _register_builtin()
        return len(self.registry)


PROVIDER_SPECS: Mapping[str, PluginSpec] = _Specs(PROVIDERS, BUILTIN_PROVIDERS)
SINK_SPECS: Mapping[str, PluginSpec] = _Specs(SINKS, BUILTIN_SINKS)


