"""guard's models are ``msgspec.Struct`` classes, not dataclasses: a Struct class is made in
C, ~0.03 ms against ~0.9 ms for a frozen dataclass, whose methods Python compiles from source
at every start (69 classes on a guarded run's path cost it ~50 ms; bench/HISTORY.md). ``msgspec.structs.replace`` is their ``dataclasses.replace``."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

__all__ = ["asdict"]


def asdict(value: Any) -> Any:
    """``value`` with every Struct in it, at any depth, as a dict of its fields in order, and
    lists, tuples and dicts copied (as ``dataclasses.asdict``: leaves such as datetimes are
    kept as they are, tuples stay tuples, named tuples keep their type)."""
    if isinstance(value, Struct):
        return {name: asdict(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {k: asdict(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a NamedTuple: its fields are arguments
        return type(value)(*(asdict(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(asdict(v) for v in value)
    return value
