"""The models as msgspec.Struct (guard/structs.py): what the dataclasses promised still holds.

The snapshot passphrase is printed by no way of showing a model (repr, str, pprint, json's
default=str, rich's __rich_repr__, which a Struct has and which rich, IPython and debuggers use);
a migration file's kept text and a manifest's directory are not part of equality; ``asdict``
has ``dataclasses.asdict``'s shape for every container it meets, named tuples included.
"""

from __future__ import annotations

import dataclasses
import json
import pprint
from pathlib import Path
from typing import Any, NamedTuple

from guard.config.model import Config, DrillCheck, DrillConfig, SnapshotConfig, VerifyCheck
from guard.migrations.files import MigrationFile, MigrationRef, Statement
from guard.snapshot import Manifest
from guard.structs import asdict

KEY = "snap-Kq7-passphrase-tst"


def _shown(value: Any) -> list[str]:
    """Every way guard, a library or a developer's tool turns ``value`` into text."""
    texts = [repr(value), str(value), f"{value}", pprint.pformat(value), json.dumps({"v": value}, default=str)]
    rich = getattr(value, "__rich_repr__", None)
    if rich is not None:
        texts.append(repr(list(rich())))
    return texts


def test_the_snapshot_key_is_shown_by_nothing() -> None:
    for key in (KEY, "pw with 'quotes' and \\ back"):
        snapshot = SnapshotConfig(mode="full", key=key)
        for holder in (snapshot, Config(snapshot=snapshot), [snapshot], {"s": snapshot}):
            for text in _shown(holder):
                assert key not in text and repr(key)[1:-1] not in text, text
        assert "key=<set>" in repr(snapshot) and "mode='full'" in repr(snapshot)
    assert "key=None" in repr(SnapshotConfig())


def test_rich_repr_of_the_snapshot_config_names_the_other_fields() -> None:
    shown = dict(SnapshotConfig(mode="schema", key=KEY).__rich_repr__())
    assert shown["mode"] == "schema" and shown["dir"] == Path("snapshots")
    assert shown["key"] == "<set>"
    assert dict(SnapshotConfig().__rich_repr__())["key"] is None


def _file(text: str | None) -> MigrationFile:
    ref = MigrationRef("20250101000000", "a", Path("supabase/migrations/20250101000000_a.sql"))
    return MigrationFile(ref, (Statement("select 1", 0, 1, 1, "SelectStmt"),), "ab" * 32, text)


def test_a_files_kept_text_is_not_part_of_it() -> None:
    kept, dropped = _file("select 1;\n-- the whole text of the file\n"), _file(None)
    assert kept == dropped and not kept != dropped and hash(kept) == hash(dropped)
    assert len({kept, dropped}) == 1
    assert "the whole text" not in repr(kept)
    other = MigrationFile(kept.ref, kept.statements, "cd" * 32, kept.text)
    assert other != kept


def _manifest(directory: Path | None, sha: str = "ab" * 32) -> Manifest:
    return Manifest(file="f.dump", mode="full", database="db", server_version="16.4", server_major=16,
                    pg_dump_version="16.4", pg_dump_major=16, started_at="s", finished_at="f",
                    taken_at="t", bytes=1, sha256=sha, encryption=None, tables={"public.t": 1},
                    roles=("app",), restore_command="pg_restore f.dump", directory=directory)


def test_a_manifests_directory_is_not_part_of_it() -> None:
    here, there = _manifest(Path("/a")), _manifest(Path("/b"))
    assert here == there and not here != there and hash(here) == hash(there)
    assert here != _manifest(Path("/a"), sha="cd" * 32)


class _Pair(NamedTuple):
    left: Any
    right: Any


@dataclasses.dataclass
class _Old:
    value: Any


def test_asdict_has_dataclasses_asdicts_shape() -> None:
    checks = (DrillCheck("select 1", "1"), DrillCheck("select 2", "2"))
    cases: list[Any] = [
        DrillConfig(checks=checks),
        {"pair": _Pair(SnapshotConfig(), [1, (2, 3)]), "n": None},
        [_Pair(1, 2), (VerifyCheck("select true"),)],
        _manifest(Path("/a")),
    ]
    for case in cases:
        ours = asdict(case)
        # The same value as a dataclass holds it, through dataclasses.asdict.
        theirs = dataclasses.asdict(_Old(_as_dataclasses(case)))["value"]
        assert ours == theirs and type(ours) is type(theirs)
    assert type(asdict(DrillConfig(checks=checks))["checks"][0]) is DrillCheck


def _as_dataclasses(value: Any) -> Any:
    """``value`` with each Struct as an equivalent dataclass (what guard's models were)."""
    from msgspec import Struct

    if isinstance(value, Struct):
        names = value.__struct_fields__
        cls = dataclasses.make_dataclass(type(value).__name__, names)
        return cls(*(_as_dataclasses(getattr(value, n)) for n in names))
    if isinstance(value, dict):
        return {k: _as_dataclasses(v) for k, v in value.items()}
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(_as_dataclasses(v) for v in value))
    if isinstance(value, (list, tuple)):
        return type(value)(_as_dataclasses(v) for v in value)
    return value
