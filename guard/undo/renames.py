"""Stage 1 of the local inverse: tables and columns the run renamed (or moved to another
schema) get their names back, before anything else of the plan uses the names before the run.

Names are freed before they are taken: a name another renamed table or column holds now goes
through a name of guard's own first (RENAME to a name in use fails: 42P07, 42701), and a
column the run added under the name a renamed column had is dropped first (or, when the
application wrote to it since and there is no ``--force``, nothing of that table is renamed
back and its copies are not used: exit 4, said). A column a partition or child table inherits
is renamed with its parent's (PostgreSQL refuses "cannot rename inherited column").
"""

from __future__ import annotations

from typing import Any

from guard.undo.model import Inputs, InversePlan, ident, name_of, table_copies

SCHEMA_EXISTS = "SELECT to_regnamespace(%s) IS NOT NULL"
INHERITED = "SELECT attinhcount > 0 FROM pg_attribute WHERE attrelid = %s::oid AND attnum = %s"


def rename_back(inputs: Inputs, plan: InversePlan, drop_column: Any, drop_table: Any) -> set[str]:
    """Add the rename actions; ``drop_column(inputs, plan, key, col) -> bool`` and
    ``drop_table(inputs, plan, oid) -> bool`` drop a column or table the run added (False:
    kept). Returns the keys (``relid.attnum``) and oids of what was dropped here, which the
    drop stage then leaves alone."""
    dropped = _tables(inputs, plan, drop_table)
    b, a = inputs.before, inputs.after
    back: dict[str, list[tuple[str, str]]] = {}  # table oid -> (name now, name before)
    for key, col in b.columns.items():
        new = a.columns.get(key)
        if new and new["name"] != col["name"] and col["table"] in a.tables and not _inherited(inputs, key):
            back.setdefault(col["table"], []).append((new["name"], col["name"]))
    for oid, pairs in back.items():
        table = name_of(inputs, oid)
        added = {c["name"]: k for k, c in a.columns.items() if c["table"] == oid and k not in b.columns}
        in_the_way = [added[old] for _, old in pairs if old in added]
        if not all(drop_column(inputs, plan, k, a.columns[k]) for k in in_the_way):
            plan.kept.append(f"table {table}: its columns are not renamed back, a column the run added holds a name "
                             "one had before the run; its rows are not put back from the run's copies")
            skip_copies(inputs, oid)
            continue
        dropped.update(in_the_way)
        if {old for _, old in pairs} & {now for now, _ in pairs}:
            steps = [f"guard_undo_{n}" for n in range(1, len(pairs) + 1)]
            for (now, _), step in zip(pairs, steps, strict=True):
                plan.add(f"ALTER TABLE {table} RENAME COLUMN {ident(now)} TO {ident(step)}",
                         f"rename column {table}.{now} to {step} for a moment (columns swapped names)", table)
            pairs = [(step, old) for (_, old), step in zip(pairs, steps, strict=True)]
        for now, old in pairs:
            plan.add(f"ALTER TABLE {table} RENAME COLUMN {ident(now)} TO {ident(old)}",
                     f"rename column {table}.{now} back to {old}", table)
    return dropped


def skip_copies(inputs: Inputs, oid: str) -> None:
    """The run's copies of table ``oid`` are not used (its names could not go back)."""
    inputs.skip.update(c.record.copy for c in table_copies(inputs, oid))


def _inherited(inputs: Inputs, key: str) -> bool:
    """The column ``relid.attnum`` is inherited now (a partition's): its parent's rename renames it."""
    if inputs.conn is None:
        return False
    relid, attnum = key.split(".", 1)
    row = inputs.conn.execute(INHERITED, (relid, int(attnum))).fetchone()
    return bool(row and row[0])


def schema_of(table: str, relname: str) -> str:
    """The quoted schema of ``table`` (quote_ident(schema) || '.' || quote_ident(relname));
    a schema or table name may hold a dot."""
    quoted = '"' + relname.replace('"', '""') + '"'
    suffix = quoted if table.endswith("." + quoted) else relname
    return table[: len(table) - len(suffix) - 1]


def _tables(inputs: Inputs, plan: InversePlan, drop_table: Any) -> set[str]:
    """Tables back to their schema and name; through a name of guard's own where the name
    before is another renamed table's now (two tables swapped names); a table the run added
    under the name before is dropped first. Returns the oids of the tables dropped."""
    b, a, now = inputs.before, inputs.after, inputs.now
    moves = []  # (oid, name now, schema before, relname before)
    added = {now.tables[o]: o for o in a.tables if o not in b.tables and o in now.tables}
    dropped: set[str] = set()
    for oid, name in b.tables.items():
        present = now.tables.get(oid)
        if oid in a.tables and a.tables[oid] != name and present is not None and present != name:
            if name in added and not drop_table(inputs, plan, added[name]):
                plan.kept.append(f"table {present}: not renamed back to {name}, the table the run made under that "
                                 "name is kept; its rows are not put back from the run's copies")
                skip_copies(inputs, oid)
                continue
            schema = schema_of(name, b.relnames[oid])
            if inputs.conn is not None and inputs.conn.execute(SCHEMA_EXISTS, (schema,)).fetchone() != (True,):
                plan.not_invertible.append(f"table {present}: not moved back to {name}, schema {schema} no longer "
                                           "exists; its rows are not put back from the copies")
                skip_copies(inputs, oid)
                continue
            dropped.update([added[name]] if name in added else [])
            moves.append((oid, present, schema, b.relnames[oid]))
    if not moves:
        return dropped
    presents = {m[1] for m in moves}
    rels = {oid: now.relnames[oid] for oid, *_ in moves}  # each one's relname as the actions leave it
    if any(b.tables[oid] in presents for oid, *_ in moves):  # names swapped: every one through guard's first
        for n, (oid, present, schema, relname) in enumerate(list(moves)):
            step = f"guard_undo_{n + 1}"
            plan.add(f"ALTER TABLE {present} RENAME TO {ident(step)}",
                     f"rename table {present} to {step} for a moment (tables swapped names)", present)
            moves[n] = (oid, f"{schema_of(present, rels[oid])}.{ident(step)}", schema, relname)
            rels[oid] = step
    for oid, present, schema, relname in moves:
        # Each action names its table as it is before the action: undo copies and locks the
        # tables its actions name that exist before it starts (local.copy_present, local.lock).
        rel = rels[oid]
        if schema_of(present, rel) != schema:
            plan.add(f"ALTER TABLE {present} SET SCHEMA {schema}", f"move table {present} back to schema {schema}",
                     present)
            present = f"{schema}.{ident(rel)}"
        if rel != relname:
            plan.add(f"ALTER TABLE {present} RENAME TO {ident(relname)}",
                     f"rename table {present} back to {b.tables[oid]}", present)
    return dropped
