"""The local inverse of a run: SQL that puts the catalog and the data back as they were.

Input: the catalogs recorded before and after the run (guard/undo/catalog.py), the catalog
now, and the run's protective copies (guard/undo/copies.py). Output: an ordered list of
actions, what it keeps and why (a table the run added and the application wrote to since),
and what cannot be inverted here, said truthfully (an enum value: PostgreSQL has no
``ALTER TYPE ... DROP VALUE``). Stages, in order: the triggers, policies and views the run added
dropped; renames back; drop what the run added;
recreate what it dropped (types, tables, columns) and revert changed columns; data from the
copies, newest first; defaults and NOT NULL; constraints and indexes; owners and privileges
(guard/undo/privileges.py).
"""

from __future__ import annotations

import re
from typing import Any

from guard.undo import data, model, objects, privileges, renames
from guard.undo.model import (
    CONSTRAINT_ORDER,
    Action,
    Inputs,
    InversePlan,
    ident,
    literal,
    name_of,
    overriding,
    select_list,
)

__all__ = ["Action", "Inputs", "InversePlan", "build", "describe"]


def build(inputs: Inputs) -> InversePlan:
    """The inverse of the run described by ``inputs``; see the module docstring for the order."""
    plan = InversePlan()
    if inputs.rows_pruned and not inputs.force:
        plan.kept.append("the run's record of the rows it left (guard.run_rows) was pruned with its copies "
                         "(protect.retention): rows counted below as written since may be ones the run left; "
                         "--force overwrites them")
    for gone in (c for c in inputs.copies if not c.exists):
        plan.not_invertible.append(f"copy {gone.record.copy} of {gone.record.source} ({gone.record.statement}) "
                                   "no longer exists (pruned?): what it held is not put back")
    inputs.copies = [c for c in inputs.copies if c.exists]
    _verify_copies(inputs, plan)
    # Triggers, policies and views the run added go first, by the names they have now: one may
    # hold the name a renamed table had, and DROP TRIGGER IF EXISTS ... ON a table renamed back
    # drops nothing.
    objects.drop_added(inputs, plan, early=True)
    dropped = renames.rename_back(inputs, plan, _drop_added_column, _drop_added_table)
    _drop_added(inputs, plan, dropped)
    objects.drop_added(inputs, plan, early=False)
    _recreate_enums(inputs, plan)
    consumed = _recreate_tables(inputs, plan)
    objects.sequence_values(inputs, plan)
    late = _columns(inputs, plan)
    data.put_back(inputs, plan, consumed)
    plan.actions.extend(late + plan.late)
    _constraints_and_indexes(inputs, plan)
    _enum_values(inputs, plan)
    objects.dropped(inputs, plan)
    privileges.invert(inputs, plan)
    return plan


def _verify_copies(inputs: Inputs, plan: InversePlan) -> None:
    """A copy whose checksum differs from the one recorded at the end of the run is not used:
    undo refuses (exit 3) and names it."""
    from guard.undo.catalog import checksum

    for copy in inputs.copies:
        recorded = inputs.after.copies.get(copy.record.copy)
        if recorded is None and inputs.after.sealed:
            plan.tampered.append(
                f"copy {copy.record.copy} of {copy.record.source} is not among the copies recorded at the end of the "
                "run: guard.copies was changed since, undo will not use it")
            continue
        if recorded is None or inputs.conn is None:
            continue  # a run of an older guard recorded none
        now = checksum(inputs.conn, copy.record.copy)
        if now != recorded:
            plan.tampered.append(
                f"copy {copy.record.copy} of {copy.record.source} no longer matches the checksum recorded at the end "
                f"of the run (rows:sum {recorded} then, {now} now): it was changed since, undo will not use it")


def _drop_added(inputs: Inputs, plan: InversePlan, dropped: set[str]) -> None:
    b, a = inputs.before, inputs.after
    for key, con in a.constraints.items():
        if key not in b.constraints and con["table"] in b.tables and con["table"] in a.tables:
            table = name_of(inputs, con["table"])
            plan.add(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {ident(con['name'])}",
                     f"drop constraint {con['name']} the run added to {table}", table)
    before_defs = {i["def"] for i in b.indexes.values()}
    for oid, index in a.indexes.items():
        present = inputs.now.indexes.get(oid, {}).get("name")  # by identity: never a name from guard's record
        if (index["def"] not in before_defs and not index["constraint"] and index["table"] in b.tables and present
                and not _moved(b, oid, index)):
            plan.add(f"DROP INDEX IF EXISTS {present}", f"drop index {present} the run added")
    for key, col in a.columns.items():
        if key not in b.columns and col["table"] in b.tables and key not in dropped:
            _drop_added_column(inputs, plan, key, col)
    for oid in a.tables:
        if oid not in b.tables and oid in inputs.now.tables and oid not in dropped:
            _drop_added_table(inputs, plan, oid)
    for oid, enum in a.enums.items():
        if oid not in b.enums:
            plan.add(f"DROP TYPE IF EXISTS {enum['name']}", f"drop type {enum['name']} the run added", optional=True)


def _drop_added_table(inputs: Inputs, plan: InversePlan, oid: str) -> bool:
    """Drop a table the run added; False (kept, said) when the application wrote to it since
    (its checksum) and there is no --force."""
    name = inputs.after.tables[oid]
    then, now = inputs.after.checksums.get(oid), inputs.checksums_now.get(oid)
    if then is not None and then != now and not inputs.force:
        rows = (now or "0:").split(":")[0]
        plan.kept.append(f"table {name}: kept, the application wrote to it since the run "
                         f"(it holds {rows} row(s), checksum changed); --force drops it")
        return False
    if not inputs.force and _reshaped_since(inputs, oid):
        plan.kept.append(f"table {name}: kept, its columns, indexes, constraints, triggers or policies changed since "
                         "the run (someone else's work would go with it); --force drops it")
        return False
    plan.add(f"DROP TABLE {inputs.now.tables[oid]}", f"drop table {name} the run added"
             + (" (with writes since, --force)" if then != now else ""), inputs.now.tables[oid], optional=True)
    return True


def _shape(cat: Any, oid: str) -> tuple[set[tuple[Any, ...]], ...]:
    """Table ``oid``'s columns, indexes, constraints, triggers and policies in ``cat``, by what
    they are (not by oid)."""
    return ({(c["name"], c["type"], c["notnull"], c["default"], c.get("identity"), c.get("generated"))
             for c in cat.columns.values() if c["table"] == oid},
            {i["def"] for i in cat.indexes.values() if i["table"] == oid},
            {(c["name"], c["def"]) for c in cat.constraints.values() if c["table"] == oid},
            {(o["kind"], o["name"]) for o in cat.others.values() if o["table"] == oid})


def _reshaped_since(inputs: Inputs, oid: str) -> bool:
    """Whether table ``oid``, added by the run, was altered since (a column, index, constraint,
    trigger or policy made, dropped or changed): dropping it would take that work back too. Not
    asked of a table an undo of an undo recreated (its oid is new; its shape is the undo's)."""
    if inputs.conn is None:
        return False
    row = inputs.conn.execute("SELECT to_regclass(%s)::oid::text", (inputs.now.tables[oid],)).fetchone()
    return bool(row and row[0] == oid and _shape(inputs.after, oid) != _shape(inputs.now, oid))


def _moved(before: Any, oid: str, index: dict[str, Any] | None) -> bool:
    """The index ``oid`` is one the table had before the run, under the same name: its
    definition differs only by its table's name or schema, which the renames put back (ALTER
    TABLE ... SET SCHEMA moves the table's indexes with it)."""
    was = before.indexes.get(oid)
    return bool(was and index and was["name"].rsplit(".", 1)[-1] == index["name"].rsplit(".", 1)[-1])


def _drop_added_column(inputs: Inputs, plan: InversePlan, key: str, col: dict[str, Any]) -> bool:
    """Drop a column the run added; False (kept, said) when the application wrote to it since
    and there is no --force."""
    table = name_of(inputs, col["table"])
    since = _column_written(inputs, key, col)
    if since and not inputs.force:
        plan.kept.append(f"column {table}.{col['name']}: kept, {since} row(s) written since the run hold "
                         "values in it the run did not leave; --force drops it")
        return False
    plan.add(f"ALTER TABLE {table} DROP COLUMN IF EXISTS {ident(col['name'])}",
             f"drop column {table}.{col['name']} the run added"
             + (f" ({since} row(s) written since, --force)" if since else ""), table)
    return True


def _column_written(inputs: Inputs, key: str, col: dict[str, Any]) -> int:
    """Rows whose value in a column the run added or retyped the application wrote since (0
    when the run recorded no row hashes for it: a run of an older guard)."""
    from guard.undo.written import column_written

    now = inputs.now.tables.get(col["table"])
    if now is None or inputs.conn is None or f"col:{key}" not in inputs.after.parts:
        return 0
    if not any(c["table"] == col["table"] and c["name"] == col["name"] for c in inputs.now.columns.values()):
        return 0
    return column_written(inputs.conn, inputs.run_id, now, key, col["name"])


def _recreate_enums(inputs: Inputs, plan: InversePlan) -> None:
    for oid, enum in inputs.before.enums.items():
        if oid not in inputs.after.enums:
            labels = ", ".join(literal(label) for label in enum["labels"])
            plan.add(f"CREATE TYPE {enum['name']} AS ENUM ({labels})", f"recreate type {enum['name']}")


def _recreate_tables(inputs: Inputs, plan: InversePlan) -> set[str]:
    """CREATE TABLE for each table the run dropped, from its recorded columns; returns the
    copies whose rows fill them."""
    consumed: set[str] = set()
    for oid, name in inputs.before.tables.items():
        if oid in inputs.after.tables:
            continue
        if _taken(inputs, name):
            plan.blocked.append(f"table {name}: the run dropped it and a relation of that name was created since the run "
                                "(not by guard): undo will not put the run's table in its place nor write into it; "
                                "rename or drop that table, then undo again")
            continue
        cols = sorted((c for c in inputs.before.columns.values() if c["table"] == oid), key=lambda c: c["num"])
        sequences = _owned_sequences(cols)
        types = {c["name"]: c["type"] for c in cols}
        for column, sequence in sequences.items():
            # As serial made it: of the column's type (a bare CREATE SEQUENCE is bigint, max 2^63-1).
            typed = f" AS {types[column]}" if types.get(column) in ("smallint", "integer", "bigint") else ""
            plan.add(f"CREATE SEQUENCE IF NOT EXISTS {sequence}{typed}", f"recreate sequence {sequence}")
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
        whole = model.table_copies(inputs, oid, "table")
        if not whole:
            plan.not_invertible.append(f"table {name}: recreated empty, the run kept no copy of its rows")
            continue
        copy = whole[0]  # newest: the rows just before the drop
        consumed.add(copy.record.copy)
        names = [c["name"] for c in cols if c["name"] in copy.columns and not c.get("generated")]
        unmatched = [c for c in copy.columns if c not in names and c not in {col["name"] for col in cols}]
        if unmatched:  # renamed by the run before the drop: the name it had when copied is not recorded
            plan.not_invertible.append(
                f"table {name}: column(s) {', '.join(unmatched)} of {copy.record.copy} match no column of the table "
                "before the run (renamed before it was dropped): recreated without their values; put them back by hand")
        listed = ", ".join(ident(n) for n in names)
        plan.add(f"INSERT INTO {name} ({listed}){overriding(inputs, name)} SELECT {select_list(inputs, oid, names)} "
                 f"FROM {copy.record.copy} AS c",
                 f"put back {copy.record.rows} row(s) of {name} from {copy.record.copy}", name)
    return consumed


def _taken(inputs: Inputs, name: str) -> bool:
    """A relation (table, view, sequence...) named ``name`` now that is none of the run's: created since."""
    if inputs.conn is None:
        return name in inputs.now.tables.values()
    row = inputs.conn.execute("SELECT to_regclass(%s)::oid::text", (name,)).fetchone()
    if not row or row[0] is None or row[0] in inputs.after.tables:
        return False  # free, or the run's own table (renamed back or dropped first)
    return not any(key.split(":", 1)[1] == row[0] for key in inputs.after.others)  # a view the run made goes first


_NEXTVAL = re.compile(r"^nextval\('((?:[^']|'')+)'::regclass\)$")


def _owned_sequences(cols: list[dict[str, Any]]) -> dict[str, str]:
    """column -> sequence of a serial column (its default is nextval of a sequence dropped with it)."""
    found = {}
    for col in cols:
        match = _NEXTVAL.match(col["default"] or "")
        if match:
            found[col["name"]] = match.group(1).replace("''", "'")
    return found


def _column_definition(col: dict[str, Any]) -> str:
    identity = {"a": " GENERATED ALWAYS AS IDENTITY", "d": " GENERATED BY DEFAULT AS IDENTITY"}.get(col.get("identity") or "", "")
    if col.get("generated") == "s":
        return f"{ident(col['name'])} {col['type']} GENERATED ALWAYS AS ({col['default']}) STORED"
    return (f"{ident(col['name'])} {col['type']}" + (f" DEFAULT {col['default']}" if col["default"] else "")
            + identity + (" NOT NULL" if col["notnull"] and not identity else ""))


def _columns(inputs: Inputs, plan: InversePlan) -> list[Action]:
    """Re-add dropped columns and revert changed ones (types now; defaults and NOT NULL are
    returned, to run after the data is back)."""
    b, a = inputs.before, inputs.after
    late: list[Action] = []
    parents: dict[str, list[str]] = {}
    for key, col in sorted(b.columns.items(), key=lambda kv: kv[1]["num"]):
        if col["table"] not in a.tables:
            continue
        table, name = name_of(inputs, col["table"]), ident(col["name"])
        new = a.columns.get(key)
        if (new is None or new["type"] != col["type"]) and _through_parent(inputs, col, parents):
            continue
        if new is None:
            _re_add(inputs, plan, table, key, col)
        elif new["type"] != col["type"]:
            if not _retype(inputs, plan, table, key, col, new):
                continue
        elif (new["default"], new["notnull"]) != (col["default"], col["notnull"]):
            _loosen(plan, table, col, new)
        else:
            continue
        if col["default"] is not None and not col.get("generated"):
            late.append(Action(f"ALTER TABLE {table} ALTER COLUMN {name} SET DEFAULT {col['default']}",
                               f"{table}.{col['name']}: default back to {col['default']}", table))
        if col["notnull"] and not col.get("identity"):
            late.append(Action(f"ALTER TABLE {table} ALTER COLUMN {name} SET NOT NULL",
                               f"{table}.{col['name']}: NOT NULL again", table, soft=True,
                               count_sql=f"SELECT count(*) FROM {table} WHERE {name} IS NULL"))
    return late


PARENTS = "SELECT inhparent::text FROM pg_inherits WHERE inhrelid = %s::oid"


def _through_parent(inputs: Inputs, col: dict[str, Any], parents: dict[str, list[str]]) -> bool:
    """A partition's (or child table's) column the run dropped or retyped through its parent:
    the parent's ADD COLUMN or ALTER COLUMN TYPE reaches it again (PostgreSQL refuses both on
    an inherited column alone: "cannot add column to a partition", 42P16)."""
    if inputs.conn is None:
        return False
    if col["table"] not in parents:
        parents[col["table"]] = [r[0] for r in inputs.conn.execute(PARENTS, (col["table"],)).fetchall()]
    b, a = inputs.before, inputs.after
    for key, other in b.columns.items():
        if other["table"] in parents[col["table"]] and other["name"] == col["name"]:
            new = a.columns.get(key)
            if new is None or new["type"] != other["type"]:
                return True
    return False


def _re_add(inputs: Inputs, plan: InversePlan, table: str, key: str, col: dict[str, Any]) -> None:
    """A column the run dropped, back; rows inserted since get its default (the copy fills the rest)."""
    name = ident(col["name"])
    if col.get("generated") == "s":
        plan.add(f"ALTER TABLE {table} ADD COLUMN {_column_definition(col)}",
                 f"re-add generated column {table}.{col['name']}", table)
        return
    default = f" DEFAULT {col['default']}" if col["default"] is not None and not col.get("identity") else ""
    plan.add(f"ALTER TABLE {table} ADD COLUMN {name} {col['type']}{default}", f"re-add column {table}.{col['name']}"
             + (" (rows inserted since the run get its default)" if default else ""), table)
    held = model.column_copies(inputs, key) + [c for c in model.table_copies(inputs, col["table"], "table")
                                                if col["name"] in c.columns]
    if not held:
        plan.not_invertible.append(f"column {table}.{col['name']}: re-added, the run kept no copy of its values")


def _loosen(plan: InversePlan, table: str, col: dict[str, Any], new: dict[str, Any]) -> None:
    """The NOT NULL and default the column has now off (the ones from before come back late)."""
    name = ident(col["name"])
    if new["notnull"]:
        plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} DROP NOT NULL", f"{table}.{col['name']}: drop NOT NULL", table)
    if new["default"] is not None:
        plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} DROP DEFAULT", f"{table}.{col['name']}: drop default", table)


def _retype(inputs: Inputs, plan: InversePlan, table: str, key: str, col: dict[str, Any], new: dict[str, Any]) -> bool:
    """The column's type (and first its default and NOT NULL) back; False when it is kept as the
    run left it because the application wrote values of the new type since (without --force)."""
    name = ident(col["name"])
    since = _column_written(inputs, key, new)
    column_copies = model.column_copies(inputs, key)
    if since and not inputs.force:
        plan.kept.append(f"column {table}.{col['name']}: kept as {new['type']}, {since} row(s) written since the "
                         f"run hold values of that type; --force casts them back to {col['type']}")
        inputs.skip.update(c.record.copy for c in column_copies)
        return False
    _loosen(plan, table, col, new)
    copied = bool(column_copies) and not since
    using = "NULL" if copied else f"{name}::{col['type']}"
    plan.add(f"ALTER TABLE {table} ALTER COLUMN {name} TYPE {col['type']} USING {using}",
             f"{table}.{col['name']}: type back to {col['type']}"
             + (" (values from the copy)" if copied else f" (cast back{f', {since} row(s) written since: --force' if since else ''})"),
             table)
    return True


def _constraints_and_indexes(inputs: Inputs, plan: InversePlan) -> None:
    b, a = inputs.before, inputs.after
    missing = [con for key, con in b.constraints.items()
               if key not in a.constraints or a.constraints[key]["def"] != con["def"]]
    missing.sort(key=lambda c: CONSTRAINT_ORDER.get(c["type"], 9))
    for con in reversed(missing):  # foreign keys first: one may depend on a changed key (a renamed column)
        table = name_of(inputs, con["table"])
        if f"{con['table']}.{con['name']}" in a.constraints and con["table"] in a.tables:
            plan.add(f"ALTER TABLE {table} DROP CONSTRAINT {ident(con['name'])}", f"drop changed constraint {con['name']}", table)
    for con in missing:
        table = name_of(inputs, con["table"])
        plan.add(f"ALTER TABLE {table} ADD CONSTRAINT {ident(con['name'])} {con['def']}",
                 f"recreate constraint {con['name']} on {table}", table, soft=True)
    after_defs = {i["def"] for i in a.indexes.values()}
    for oid, index in b.indexes.items():
        if index["constraint"] or index["def"] in after_defs or _moved(b, oid, a.indexes.get(oid)):
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
    """The actions as the report lists them (done, or to do: those that failed and were named
    instead are left out)."""
    return [{"what": a.what, "sql": a.sql} for i, a in enumerate(plan.actions) if i not in plan.not_done]
