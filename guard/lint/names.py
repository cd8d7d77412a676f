"""Object identity as the server resolves it, statement by statement through a batch of files.

PostgreSQL folds unquoted identifiers to lower case and keeps quoted ones as written
("User" is not user); an unqualified name is looked up in each schema of the
search_path in force at that point of the session (SET search_path, set_config(...),
in the file itself). Tables created or renamed earlier in the same batch are followed
by identity: `alter table items rename to items_old; drop table items_old;` drops the
rows `items` held. Source: PostgreSQL docs, "Lexical Structure: Identifiers and Key
Words" and "Schemas: The Schema Search Path" (ddl-schemas.html#DDL-SCHEMAS-PATH).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from msgspec import Struct, field

DEFAULT_SEARCH_PATH = ("$user", "public")
_PLAIN = re.compile(r"^[a-z_][a-z0-9_$]*$")


def quote_ident(name: str) -> str:
    """`name` as PostgreSQL's quote_ident() prints it: bare when it would read back the same."""
    from pglast import keywords

    if _PLAIN.match(name) and name not in keywords.RESERVED_KEYWORDS \
            and name not in keywords.TYPE_FUNC_NAME_KEYWORDS:
        return name
    return '"' + name.replace('"', '""') + '"'


class ObjectName(Struct, frozen=True):
    """A relation as the server names it: schema (None: found through the search_path) and name,
    both exactly as stored in the catalog (case kept)."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return ".".join(quote_ident(p) for p in (self.schema, self.name) if p is not None)


def from_rangevar(rel: Any) -> ObjectName:
    """An ObjectName from a pglast RangeVar (the parser has already folded unquoted names)."""
    return ObjectName(getattr(rel, "schemaname", None) or None, rel.relname)


def from_names(parts: tuple[Any, ...]) -> ObjectName:
    """An ObjectName from a tuple of pglast String nodes (DROP's objects)."""
    values = [getattr(p, "sval", "") for p in parts]
    return ObjectName(values[-2] if len(values) > 1 else None, values[-1])


def parse_search_path(value: str) -> tuple[str, ...]:
    """The schemas of a search_path setting's text ('a, "B", $user') as the server reads it."""
    out: list[str] = []
    for raw in re.findall(r'\s*("(?:[^"]|"")*"|[^,]+)\s*(?:,|$)', value):
        item = raw.strip()
        if item.startswith('"'):
            out.append(item[1:-1].replace('""', '"'))
        elif item:
            out.append(item.lower())
    return tuple(out)


class Scope(Struct):
    """What the batch has done so far to the names it touches.

    `exists(text)` answers from the database (`to_regclass(text) IS NOT NULL`, text being a
    quoted, possibly qualified name); without it every name not created in the batch is taken
    to exist (the conservative answer for a lint).
    """

    exists: Callable[[str], bool] | None = None
    search_path: tuple[str, ...] = DEFAULT_SEARCH_PATH
    path_changed: bool = False
    created: set[ObjectName] = field(default_factory=set)  # qualified, created by the batch
    origin: dict[ObjectName, ObjectName] = field(default_factory=dict)  # renamed -> what it was
    gone: set[ObjectName] = field(default_factory=set)  # dropped or renamed away in the batch

    def reset_file(self) -> None:
        """Each file runs in a fresh session: SET search_path does not reach the next file."""
        self.search_path = DEFAULT_SEARCH_PATH
        self.path_changed = False

    def set_search_path(self, value: str) -> None:
        self.search_path = parse_search_path(value) if value.strip() else ()
        self.path_changed = True

    def _schemas(self) -> list[str]:
        return [s for s in self.search_path if s != "$user"] or ["public"]

    def creation_schema(self, name: ObjectName) -> ObjectName:
        """Where CREATE puts `name`: its schema, else the first schema of the search_path."""
        if name.schema is not None:
            return name
        return ObjectName(self._schemas()[0], name.name)

    def resolve(self, name: ObjectName) -> ObjectName:
        """The qualified object the server would find for `name` at this point of the batch."""
        if name.schema is not None:
            return name
        if ObjectName("pg_temp", name.name) in self.created:
            return ObjectName("pg_temp", name.name)  # the session's temporary schema comes first
        for schema in self._schemas():
            candidate = ObjectName(schema, name.name)
            if candidate in self.created or candidate in self.origin:
                return candidate
            if candidate in self.gone:
                continue
            if self.exists is not None and self.path_changed and self.exists(str(candidate)):
                return candidate
        if self.exists is not None and not self.path_changed:
            return ObjectName(None, name.name)  # the connection's own search_path decides
        return ObjectName(self._schemas()[0], name.name)

    def is_new(self, name: ObjectName) -> bool:
        """True when the object holds no data from before the batch (created in it, and not
        renamed from an older one); False when it existed before, or might have."""
        target = self.resolve(name)
        if target in self.origin:
            return False
        if target in self.created or (target.schema is None and self._created_unqualified(target)):
            return True
        if self.exists is None:
            return False
        return not self.exists(str(target))

    def _created_unqualified(self, name: ObjectName) -> bool:
        return any(ObjectName(s, name.name) in self.created for s in self._schemas()[:1])

    def origin_of(self, name: ObjectName) -> ObjectName | None:
        """The pre-existing object `name` is a new name of (after RENAME / SET SCHEMA), if any."""
        return self.origin.get(self.resolve(name))

    def note_created(self, name: ObjectName) -> None:
        target = self.creation_schema(name)
        self.created.add(target)
        self.gone.discard(target)

    def note_dropped(self, name: ObjectName) -> None:
        target = self.resolve(name)
        self.created.discard(target)
        self.origin.pop(target, None)
        self.gone.add(target)

    def note_renamed(self, old: ObjectName, new: ObjectName) -> None:
        """`old` now answers to `new` (new carries the schema it lands in)."""
        source = self.resolve(old)
        if source.schema is None:
            source = ObjectName(self._schemas()[0], source.name)
        target = new if new.schema is not None else ObjectName(source.schema, new.name)
        if source in self.created:
            self.created.discard(source)
            self.created.add(target)
        else:
            self.origin[target] = self.origin.pop(source, source)
        self.gone.add(source)
        self.gone.discard(target)
