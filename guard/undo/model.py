"""The local inverse's vocabulary: its inputs, its actions and plan, and the small helpers every
stage uses (names, literals, which copies belong to a table)."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field
from psycopg import sql

from guard.undo.catalog import Catalog
from guard.undo.copies import Copy

CONSTRAINT_ORDER = {"p": 0, "u": 1, "x": 2, "c": 3, "t": 4, "f": 5}


class Action(Struct, frozen=True):
    """One statement of the inverse and what it does, in words."""

    sql: str
    what: str
    table: str | None = None  # the table (quoted name, as it is now) the statement touches
    # soft: a constraint or NOT NULL the rows written since violate is kept off (exit 4), not
    # an error, unless --force; optional: an object that cannot be dropped is named (exit 4).
    soft: bool = False
    optional: bool = False
    count_sql: str | None = None  # soft: how many rows violate it, for the message


class InversePlan(Struct):
    actions: list[Action] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # left as the run made it on purpose, and why
    not_invertible: list[str] = field(default_factory=list)  # beyond a local inverse, and why
    late: list[Action] = field(default_factory=list)  # after the data is back (sequences)
    prepare: list[str] = field(default_factory=list)  # before any action: what was written since, noted
    tampered: list[str] = field(default_factory=list)  # copies that differ from their recorded checksum
    blocked: list[str] = field(default_factory=list)  # what stands in the way since the run: refused (exit 3)
    not_done: set[int] = field(default_factory=set)  # indexes of actions that failed and were named, not done

    @property
    def nothing_done(self) -> bool:
        """Every action failed and was named (or there was none): a partial undo that leaves the
        database as it found it, so there is no undo to undo before ``--force``."""
        return len(self.not_done) == len(self.actions)

    @property
    def partial(self) -> bool:
        return bool(self.kept or self.not_invertible)

    @property
    def refusal(self) -> str:
        """Why undo refuses (tampered or blocked), in one line."""
        if self.tampered:
            return "a protective copy was changed since the run; nothing changed"
        return "something created since the run stands where undo would put the run's objects back; nothing changed"

    def add(self, statement: str, what: str, table: str | None = None, **flags: Any) -> None:
        self.actions.append(Action(statement, what, table, **flags))


def ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def literal(value: str) -> str:
    return sql.Literal(value).as_string(None)


class Inputs(Struct):
    before: Catalog
    after: Catalog
    now: Catalog
    copies: list[Copy]
    force: bool
    checksums_now: dict[str, str]  # oid -> checksum now, for the tables the run added or copied from
    conn: Any = None  # psycopg.Connection: counts what the application wrote since (guard/undo/written.py)
    run_id: str = ""
    skip: set[str] = field(default_factory=set)  # copies not to use (their column is kept)
    # The fingerprints recorded before the run and at its end ({"kind name": definition}; the
    # end's holds the owners and ACLs alone): which privileges the run changed (privileges.py).
    fingerprints: tuple[dict[str, str], dict[str, str]] | None = None
    # The run's row hashes (guard.run_rows) were pruned with its copies (protect.retention):
    # rows counted as written since may be ones the run left.
    rows_pruned: bool = False

    def count(self, query: str) -> int:
        row = one_statement(self.conn, query).fetchone() if self.conn is not None else None
        return int(row[0]) if row else 0


def one_statement(conn: Any, text: str) -> Any:
    """Execute ``text`` (built from guard's records) as exactly one statement: by the extended
    protocol, where PostgreSQL refuses more than one ("cannot insert multiple commands into a
    prepared statement"), so a name forged in guard.copies or guard.run_catalogs cannot stack a
    statement of its own. Returns the cursor; raises psycopg.Error."""
    return conn.execute(text.encode(), binary=True)


def name_of(inputs: Inputs, oid: str) -> str:
    """A table's name once the renames are undone (before's name, else after's)."""
    return inputs.before.tables.get(oid) or inputs.after.tables[oid]


def table_copies(inputs: Inputs, oid: str | None, kind: str | None = None) -> list[Copy]:
    """The run's copies (of ``kind``: table, rows, column; any when None) made of table
    ``oid``, whatever it was named when copied (``copied_table``), newest first."""
    return [c for c in inputs.copies if (kind is None or c.record.kind == kind) and copied_table(inputs, c)[1] == oid]


def column_copies(inputs: Inputs, key: str) -> list[Copy]:
    """The run's copies of column ``key`` (``relid.attnum``) of a table that still exists: a
    copy names it as it was named then, by its name before the run or after it (a RENAME, then
    ALTER COLUMN ... TYPE), and names its table likewise (``copied_table``)."""
    col, new = inputs.before.columns.get(key), inputs.after.columns.get(key)
    names = {c["name"] for c in (col, new) if c}
    table = (col or new or {}).get("table")
    return [c for c in table_copies(inputs, table, "column") if c.column in names]


def copied_table(inputs: Inputs, copy: Copy) -> tuple[str | None, str | None, bool]:
    """(name before the run, oid, known) of the table ``copy`` was made of. By its oid where
    guard.copies has it, else by the name it had when copied: before the run's, or after it
    (a RENAME earlier in the run). Name and oid None, known True: a table the run made (undo
    drops it). known False: neither (a name the run did not keep)."""
    oid = copy.source_oid
    if oid is None:
        oid = next((o for o, n in inputs.before.tables.items() if same_table(copy.record.source, n)), None)
    if oid is None:
        oid = next((o for o, n in inputs.after.tables.items() if same_table(copy.record.source, n)), None)
    if oid is None:
        return None, None, False
    if oid in inputs.before.tables:
        return inputs.before.tables[oid], oid, True
    return None, None, True


def same_table(source: str, table: str) -> bool:
    """protect.py records names as deparsed (``"public"."t"`` or ``t``), the catalog as quote_ident."""
    bare, wanted = source.replace('"', ""), table.replace('"', "")
    return bare == wanted or ("." not in bare and f"public.{bare}" == wanted)


def overriding(inputs: Inputs, table: str) -> str:
    """Rows put back keep their values, GENERATED ALWAYS identity columns too."""
    oid = next((o for o, n in inputs.before.tables.items() if n == table), None)
    always = any(c["table"] == oid and c.get("identity") == "a" for c in inputs.before.columns.values())
    return " OVERRIDING SYSTEM VALUE" if always else ""


def before_type(inputs: Inputs, oid: str | None, column: str) -> str | None:
    """The type column ``column`` of table ``oid`` had before the run."""
    return next((c["type"] for c in inputs.before.columns.values() if c["table"] == oid and c["name"] == column), None)


def table_oid(inputs: Inputs, table: str) -> str | None:
    """The oid of a table by its name before the run."""
    return next((o for o, n in inputs.before.tables.items() if n == table), None)


def writable(inputs: Inputs, oid: str | None, names: list[str] | tuple[str, ...]) -> list[str]:
    """``names`` without the generated columns (PostgreSQL computes them again)."""
    generated = {c["name"] for c in inputs.before.columns.values() if c["table"] == oid and c.get("generated")}
    return [n for n in names if n not in generated]


def select_list(inputs: Inputs, oid: str | None, names: list[str], alias: str = "c") -> str:
    """The copy's columns cast back to their type before the run: a copy keeps an enum, a domain
    or an extension's type as text (guard/protect), which INSERT does not take as it is."""
    parts = []
    for name in names:
        type_ = before_type(inputs, oid, name)
        parts.append(f"{alias}.{ident(name)}" + (f"::{type_}" if type_ else ""))
    return ", ".join(parts)
