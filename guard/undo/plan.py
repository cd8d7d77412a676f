"""The local inverse of a run: SQL that puts the catalog and the data back as they were.

Input: the catalogs recorded before and after the run (guard/undo/catalog.py), the catalog
now, and the run's protective copies (guard/undo/copies.py). Output: an ordered list of
actions, what it keeps and why (a table the run added and the application wrote to since),
and what cannot be inverted here, said truthfully (an enum value: PostgreSQL has no
``ALTER TYPE ... DROP VALUE``). Stages, in order: renames back; drop what the run added;
recreate what it dropped (types, tables, columns) and revert changed columns; data from the
copies, newest first; defaults and NOT NULL; constraints and indexes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from psycopg import sql

from guard.undo.catalog import Catalog
from guard.undo.copies import Copy

CONSTRAINT_ORDER = {"p": 0, "u": 1, "x": 2, "c": 3, "t": 4, "f": 5}


@dataclass(frozen=True)
class Action:
    """One statement of the inverse and what it does, in words."""

    sql: str
    what: str
    table: str | None = None  # the table (quoted name, as it is now) the statement touches


@dataclass
class InversePlan:
    actions: list[Action] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # left as the run made it on purpose, and why
    not_invertible: list[str] = field(default_factory=list)  # beyond a local inverse, and why
    late: list[Action] = field(default_factory=list)  # after the data is back (sequences)

    @property
    def partial(self) -> bool:
        return bool(self.kept or self.not_invertible)

    def add(self, statement: str, what: str, table: str | None = None) -> None:
        self.actions.append(Action(statement, what, table))


def ident(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def literal(value: str) -> str:
    return sql.Literal(value).as_string(None)


@dataclass
class Inputs:
    before: Catalog
    after: Catalog
    now: Catalog
    copies: list[Copy]
    force: bool
    checksums_now: dict[str, str]  # oid -> checksum, for the tables the run added


def build(inputs: Inputs) -> InversePlan:
    """The inverse of the run described by ``inputs``; see the module docstring for the order."""
    plan = InversePlan()
    for gone in (c for c in inputs.copies if not c.exists):
        plan.not_invertible.append(f"copy {gone.record.copy} of {gone.record.source} ({gone.record.statement}) "
                                   "no longer exists (pruned?): what it held is not put back")
    inputs.copies = [c for c in inputs.copies if c.exists]
    _renames(inputs, plan)
    _drop_added(inputs, plan)
    _recreate_enums(inputs, plan)
    consumed = _recreate_tables(inputs, plan)
    late = _columns(inputs, plan)
    _data(inputs, plan, consumed)
    plan.actions.extend(late + plan.late)
    _constraints_and_indexes(inputs, plan)
    _enum_values(inputs, plan)
    return plan


def _name(inputs: Inputs, oid: str) -> str:
    """A table's name once the renames are undone (before's name, else after's)."""
    return inputs.before.tables.get(oid) or inputs.after.tables[oid]


def _renames(inputs: Inputs, plan: InversePlan) -> None:
    b, a = inputs.before, inputs.after
    for oid, name in b.tables.items():
        if oid in a.tables and a.tables[oid] != name:
            if name.rsplit(".", 1)[0] != a.tables[oid].rsplit(".", 1)[0]:
                plan.not_invertible.append(f"table {name} moved to another schema as {a.tables[oid]}")
                continue
            plan.add(f"ALTER TABLE {a.tables[oid]} RENAME TO {ident(b.relnames[oid])}",
                     f"rename table {a.tables[oid]} back to {name}", name)
    for key, col in b.columns.items():
        new = a.columns.get(key)
        if new and new["name"] != col["name"] and col["table"] in a.tables:
            table = _name(inputs, col["table"])
            plan.add(f"ALTER TABLE {table} RENAME COLUMN {ident(new['name'])} TO {ident(col['name'])}",
                     f"rename column {table}.{new['name']} back to {col['name']}", table)


def _drop_added(inputs: Inputs, plan: InversePlan) -> None:
    b, a = inputs.before, inputs.after
    for key, con in a.constraints.items():
        if key not in b.constraints and con["table"] in b.tables and con["table"] in a.tables:
            table = _name(inputs, con["table"])
            plan.add(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {ident(con['name'])}",
                     f"drop constraint {con['name']} the run added to {table}", table)
    before_defs = {i["def"] for i in b.indexes.values()}
    for index in a.indexes.values():
        if index["def"] not in before_defs and not index["constraint"] and index["table"] in b.tables:
            plan.add(f"DROP INDEX IF EXISTS {index['name']}", f"drop index {index['name']} the run added")
    for key, col in a.columns.items():
        if key not in b.columns and col["table"] in b.tables:
            table = _name(inputs, col["table"])
            plan.add(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {ident(col['name'])}",
                     f"drop column {table}.{col['name']} the run added", table)
    for oid, name in a.tables.items():
        if oid in b.tables or oid not in inputs.now.tables:
            continue
        then, now = a.checksums.get(oid), inputs.checksums_now.get(oid)
        if then is not None and then != now and not inputs.force:
            rows = (now or "0:").split(":")[0]
            plan.kept.append(f"table {name}: kept, the application wrote to it since the run "
                             f"(it holds {rows} row(s), checksum changed); --force drops it")
            continue
        plan.add(f"DROP TABLE {inputs.now.tables[oid]}", f"drop table {name} the run added"
                 + (" (with writes since, --force)" if then != now else ""))
    for oid, enum in a.enums.items():
        if oid not in b.enums:
            plan.add(f"DROP TYPE IF EXISTS {enum['name']}", f"drop type {enum['name']} the run added")


def _recreate_enums(inputs: Inputs, plan: InversePlan) -> None:
    for oid, enum in inputs.before.enums.items():
        if oid not in inputs.after.enums:
            labels = ", ".join(literal(label) for label in enum["labels"])
            plan.add(f"CREATE TYPE {enum['name']} AS ENUM ({labels})", f"recreate type {enum['name']}")


def _copies_of(inputs: Inputs, table: str, kind: str | None = None) -> list[Copy]:
    return [c for c in inputs.copies if _same_table(c.record.source, table) and (kind is None or c.record.kind == kind)]


def _same_table(source: str, table: str) -> bool:
    """protect.py records names as deparsed (``"public"."t"`` or ``t``), the catalog as quote_ident."""
    bare, wanted = source.replace('"', ""), table.replace('"', "")
    return bare == wanted or ("." not in bare and f"public.{bare}" == wanted)


def _recreate_tables(inputs: Inputs, plan: InversePlan) -> set[str]:
    """CREATE TABLE for each table the run dropped, from its recorded columns; returns the
    copies whose rows fill them."""
    consumed: set[str] = set()
    for oid, name in inputs.before.tables.items():
        if oid in inputs.after.tables:
            continue
        cols = sorted((c for c in inputs.before.columns.values() if c["table"] == oid), key=lambda c: c["num"])
        sequences = _owned_sequences(cols)
        for sequence in sequences.values():
            plan.add(f"CREATE SEQUENCE IF NOT EXISTS {sequence}", f"recreate sequence {sequence}")
        body = ", ".join(_column_definition(c) for c in cols)
        plan.add(f"CREATE TABLE {name} ({body})", f"recreate table {name}", name)
        for column, sequence in sequences.items():
            plan.late.append(Action(f"ALTER SEQUENCE {sequence} OWNED BY {name}.{ident(column)}",
                                    f"sequence {sequence} owned by {name}.{column} again", name))
            plan.late.append(Action(
                f"SELECT setval({literal(sequence)}, COALESCE(max({ident(column)}), 1), max({ident(column)}) IS NOT NULL) "
                f"FROM {name}", f"sequence {sequence} continues after the rows put back", name))
        for col in cols:
            if col.get("identity"):
                column = ident(col["name"])
                plan.late.append(Action(
                    f"SELECT setval(pg_get_serial_sequence({literal(name)}, {literal(col['name'])}), "
                    f"COALESCE(max({column}), 1), max({column}) IS NOT NULL) FROM {name}",
                    f"identity of {name}.{col['name']} continues after the rows put back", name))
        whole = [c for c in _copies_of(inputs, name) if c.record.kind == "table"]
        if not whole:
            plan.not_invertible.append(f"table {name}: recreated empty, the run kept no copy of its rows")
            continue
        copy = whole[0]  # newest: the rows just before the drop
        consumed.add(copy.record.copy)
        names = [c["name"] for c in cols if c["name"] in copy.columns]
        listed = ", ".join(ident(n) for n in names)
        plan.add(f"INSERT INTO {name} ({listed}){_overriding(inputs, name)} SELECT {listed} FROM {copy.record.copy}",
                 f"put back {copy.record.rows} row(s) of {name} from {copy.record.copy}", name)
    return consumed


_NEXTVAL = re.compile(r"^nextval\('((?:[^']|'')+)'::regclass\)$")


def _owned_sequences(cols: list[dict[str, Any]]) -> dict[str, str]:
    """column -> sequence of a serial column (its default is nextval of a sequence dropped with it)."""
    found = {}
    for col in cols:
        match = _NEXTVAL.match(col["default"] or "")
        if match:
            found[col["name"]] = match.group(1).replace("''", "'")
    return found


def _overriding(inputs: Inputs, table: str) -> str:
    """Rows put back keep their values, GENERATED ALWAYS identity columns too."""
    oid = next((o for o, n in inputs.before.tables.items() if n == table), None)
    always = any(c["table"] == oid and c.get("identity") == "a" for c in inputs.before.columns.values())
    return " OVERRIDING SYSTEM VALUE" if always else ""


def _column_definition(col: dict[str, Any]) -> str:
    identity = {"a": " GENERATED ALWAYS AS IDENTITY", "d": " GENERATED BY DEFAULT AS IDENTITY"}.get(col.get("identity") or "", "")
    return (f"{ident(col['name'])} {col['type']}" + (f" DEFAULT {col['default']}" if col["default"] else "")
            + identity + (" NOT NULL" if col["notnull"] and not identity else ""))


def _columns(inputs: Inputs, plan: InversePlan) -> list[Action]:
    """Re-add dropped columns and revert changed ones (types now; defaults and NOT NULL are
    returned, to run after the data is back)."""
    b, a = inputs.before, inputs.after
    late: list[Action] = []
    for key, col in sorted(b.columns.items(), key=lambda kv: kv[1]["num"]):
        if col["table"] not in a.tables:
            continue
        table, name = _name(inputs, col["table"]), ident(col["name"])
        new = a.columns.get(key)
        if new is None:
            plan.add(f"ALTER TABLE {table} ADD COLUMN {name} {col['type']}", f"re-add column {table}.{col['name']}", table)
            if not any(c.column == col["name"] for c in _copies_of(inputs, table, "column") + _copies_of(inputs, table, "table")):
                plan.not_invertible.append(f"column {table}.{col['name']}: re-added, the run kept no copy of its values")
        elif (new["type"], new["default"], new["notnull"]) != (col["type"], col["default"], col["notnull"]):
            if new["notnull"]:
                plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL", f"{table}.{col['name']}: drop NOT NULL", table)
            if new["default"] is not None:
                plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT", f"{table}.{col['name']}: drop default", table)
            if new["type"] != col["type"]:
                copied = any(c.column == col["name"] for c in _copies_of(inputs, table, "column"))
                using = "NULL" if copied else f"{name}::{col['type']}"
                plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {col['type']} USING {using}",
                         f"{table}.{col['name']}: type back to {col['type']}"
                         + (" (values from the copy)" if copied else " (cast back)"), table)
        else:
            continue
        if col["default"] is not None:
            late.append(Action(f"ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {col['default']}",
                               f"{table}.{col['name']}: default back to {col['default']}", table))
        if col["notnull"]:
            late.append(Action(f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL",
                               f"{table}.{col['name']}: NOT NULL again", table))
    return late


def _data(inputs: Inputs, plan: InversePlan, consumed: set[str]) -> None:
    """Rows and values from the copies of tables that still exist, newest copy first."""
    for copy in inputs.copies:
        record = copy.record
        table = next((n for n in inputs.before.tables.values() if _same_table(record.source, n)), None)
        if record.copy in consumed or table is None:
            continue
        if record.kind == "column" and copy.column:
            keys = copy.columns[:-1]
            join = " AND ".join(f"t.{ident(k)} = c.{ident(k)}" for k in keys)
            col = ident(copy.column)
            plan.add(f"UPDATE {table} AS t SET {col} = c.{col} FROM {record.copy} AS c WHERE {join}",
                     f"put back {record.rows} value(s) of {table}.{copy.column} from {record.copy}", table)
        elif copy.updates:
            plan.add(record.restore_sql.rstrip().rstrip(";"),
                     f"put back {record.rows} updated row(s) of {table} from {record.copy}", table)
        else:
            listed = ", ".join(ident(c) for c in copy.columns)
            plan.add(f"INSERT INTO {table} ({listed}){_overriding(inputs, table)} SELECT {listed} FROM {record.copy}",
                     f"put back {record.rows} deleted row(s) of {table} from {record.copy}", table)


def _constraints_and_indexes(inputs: Inputs, plan: InversePlan) -> None:
    b, a = inputs.before, inputs.after
    missing = [con for key, con in b.constraints.items()
               if key not in a.constraints or a.constraints[key]["def"] != con["def"]]
    for con in sorted(missing, key=lambda c: CONSTRAINT_ORDER.get(c["type"], 9)):
        table = _name(inputs, con["table"])
        key = f"{con['table']}.{con['name']}"
        if key in a.constraints and con["table"] in a.tables:
            plan.add(f"ALTER TABLE {table} DROP CONSTRAINT {ident(con['name'])}", f"drop changed constraint {con['name']}", table)
        plan.add(f"ALTER TABLE {table} ADD CONSTRAINT {ident(con['name'])} {con['def']}",
                 f"recreate constraint {con['name']} on {table}", table)
    after_defs = {i["def"] for i in a.indexes.values()}
    for index in b.indexes.values():
        if index["constraint"] or index["def"] in after_defs:
            continue
        plan.add(index["def"], f"recreate index {index['name']}")


def _enum_values(inputs: Inputs, plan: InversePlan) -> None:
    for oid, enum in inputs.after.enums.items():
        old = inputs.before.enums.get(oid)
        if old is None:
            continue
        for label in enum["labels"]:
            if label not in old["labels"]:
                plan.not_invertible.append(
                    f"type {enum['name']}: value {literal(label)} stays; PostgreSQL cannot remove a value "
                    "from an enum type (there is no ALTER TYPE ... DROP VALUE)"
                )


def describe(plan: InversePlan) -> list[dict[str, Any]]:
    """The actions as the report lists them."""
    return [{"what": a.what, "sql": a.sql} for a in plan.actions]
