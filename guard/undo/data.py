"""The data stage of the local inverse: rows and values from the run's protective copies, newest
copy first, never over what the application wrote since the run unless ``--force``.

- values of a column the run dropped or retyped: UPDATE by primary key (the column is the run's
  alone: it did not exist, or the retype was kept, see plan._columns);
- rows the run UPDATEd: their old values, except rows the application changed or deleted since
  (their md5 is not among those the run left, guard/undo/written.py): kept, counted, exit 4;
- rows the run DELETEd (or a TRUNCATE emptied): INSERT, except rows whose primary key the
  application inserted again since: kept (``--force`` replaces them);
- a table a MERGE rewrote: the whole table, unless written to since (its checksum).

The copies' columns are written by the names the table had before the run (``Columns``): a
copy made after a RENAME COLUMN of the same run calls a column by its new name. The copied
table is found by its oid (``model.copied_table``), so a table renamed before the write is too.
"""

from __future__ import annotations

from msgspec import Struct, field

from guard.undo import written
from guard.undo.copies import Copy
from guard.undo.model import (
    Inputs,
    InversePlan,
    copied_table,
    ident,
    overriding,
    writable,
)


def put_back(inputs: Inputs, plan: InversePlan, consumed: set[str]) -> None:
    """Add the data actions for the copies of tables that still exist (``consumed``: copies
    already used to fill recreated tables)."""
    for copy in inputs.copies:
        record = copy.record
        if record.copy in consumed or record.copy in inputs.skip:
            continue
        table, oid, known = copied_table(inputs, copy)
        if not known:
            plan.not_invertible.append(f"copy {record.copy} of {record.source}: that table is known neither by the "
                                       "name it had before the run nor after it: put its rows back by hand")
            continue
        if table is None:
            continue  # a table the run made: undo drops it
        now = inputs.now.tables.get(oid or "")
        if now is None and oid in inputs.after.tables:
            plan.kept.append(f"table {table}: dropped since the run; the {record.rows} row(s) of {record.copy} "
                             "are not put back")
            continue
        if "has no primary key" in record.restore_sql.lstrip().split("\n", 1)[0]:
            plan.not_invertible.append(f"copy {record.copy} of {table}: {record.restore_sql.splitlines()[0][3:]}")
            continue
        cols = columns(inputs, plan, copy, table, oid)
        if cols is None:
            continue
        if record.kind == "column" and copy.column:
            held = bool(cols.names) and cols.copy[cols.names[-1]] == copy.column  # not a column the run added
            if held and cols.names[-1] in writable(inputs, oid, cols.names[-1:]):  # generated: computed again
                _column(plan, copy, table, cols)
        elif copy.updates:
            _updated(inputs, plan, copy, table, now or table, oid, cols)
        else:
            _inserted(inputs, plan, copy, table, now or table, oid, cols)


class Columns(Struct):
    """A copy's columns by the names the table had before the run: what the data actions write,
    once the renames go back (plan stage 1). A copy made after the run renamed a column (a
    RENAME COLUMN, then an UPDATE or DELETE) calls it by its new name; one made before, by
    its old."""

    names: list[str]  # the table's columns the copy holds, by their names before the run, in copy order
    copy: dict[str, str] = field(default_factory=dict)  # name before -> the copy's column
    now: dict[str, str] = field(default_factory=dict)  # name before -> the table's name for it now
    types: dict[str, str | None] = field(default_factory=dict)  # name before -> its type before the run

    def read(self, names: list[str], alias: str = "c") -> str:
        """The copy's values for ``names`` (names before), cast back to their type before the
        run (a copy keeps an enum, a domain or an extension's type as text)."""
        return ", ".join(f"{alias}.{ident(self.copy[n])}" + (f"::{self.types[n]}" if self.types.get(n) else "")
                         for n in names)

    @property
    def renamed(self) -> bool:
        return any(self.copy[n] != n for n in self.names)


def columns(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, oid: str | None) -> Columns | None:
    """The copy's columns (``Columns``): each is the table's column of that name before the run,
    or after it (then by its name before), whichever the copy can hold (``_settle``). A column
    the run added is left out (undo drops it). None, with a note in ``plan.not_invertible``,
    when a name cannot be told: two columns swapped names, or one went through a name neither
    before nor after the run had."""
    settled = _settle(inputs, copy, oid)
    cols = Columns([])
    for name in copy.columns:
        if name.startswith(NEW_KEY):
            continue  # an UPDATE of the primary key: each row's new key (guard/protect _capture)
        key = settled.get(name)
        if key is None:
            plan.not_invertible.append(
                f"copy {copy.record.copy} of {table}: its column {name} cannot be matched to a column of the table "
                "before the run (the run renamed columns over each other, or through a name it did not keep): put "
                "its rows back by hand")
            return None
        if key not in inputs.before.columns:
            continue  # the run added it: undo drops it
        original = inputs.before.columns[key]["name"]
        cols.names.append(original)
        cols.copy[original] = name
        cols.now[original] = inputs.after.columns[key]["name"] if key in inputs.after.columns else original
        cols.types[original] = inputs.before.columns[key]["type"]
    return cols


NEW_KEY = "guard_new_"  # guard/protect: a key UPDATE's copy keeps each row's new key as guard_new_<n>


def _settle(inputs: Inputs, copy: Copy, oid: str | None) -> dict[str, str]:
    """copy column -> the table's column (``relid.attnum``) it holds; names left out cannot be
    told. A name is the column of that name before the run or after it. Where both differ:
    a column holds one name at a time, and a copy of whole rows holds every column that lived
    through the run (a RENAME, then an ADD COLUMN of the old name: the copy that holds the new
    name too holds the added column under the old). A column the run dropped, then added
    again by name: copies newer than the dropped column's copy hold the new one."""
    before = {c["name"]: key for key, c in inputs.before.columns.items() if c["table"] == oid}
    after = {c["name"]: key for key, c in inputs.after.columns.items() if c["table"] == oid}
    lived = set(before.values()) & set(after.values())
    options = {n: {k for k in (before.get(n), after.get(n)) if k is not None}
               for n in copy.columns if not n.startswith(NEW_KEY)}
    whole = copy.record.kind != "column"
    changed = True
    while changed:
        changed = False
        for name, keys in options.items():
            if len(keys) == 1:
                for other, rest in options.items():
                    if other != name and keys & rest:
                        rest -= keys
                        changed = True
        if whole:
            for key in lived:
                holders = [n for n, keys in options.items() if key in keys]
                if len(holders) == 1 and options[holders[0]] != {key}:
                    options[holders[0]] = {key}
                    changed = True
    settled = {n: next(iter(keys)) for n, keys in options.items() if len(keys) == 1}
    for name in options:
        was = before.get(name)
        if was is not None and was not in inputs.after.columns:
            dropped = _dropped_at(inputs, oid, name)
            if dropped is not None and _position(inputs, copy) < dropped:
                settled[name] = after.get(name, "")  # made after the drop: the column of that name after the run, or none
            elif dropped is not None and settled.get(name) is None and options[name] == {was, after.get(name)}:
                settled[name] = was
    return settled


def _position(inputs: Inputs, copy: Copy) -> int:
    """Where ``copy`` is among the run's copies (0: the newest)."""
    return next(i for i, c in enumerate(inputs.copies) if c is copy)


def _dropped_at(inputs: Inputs, oid: str | None, name: str) -> int | None:
    """The position (``_position``) of the oldest copy protect made when the run dropped a
    column ``name`` of table ``oid`` (its restore SQL adds the column back): the column of
    that name before the run is gone from there on. None without one."""
    return max((i for i, c in enumerate(inputs.copies)
                if c.record.kind == "column" and c.column == name and "ADD COLUMN IF NOT EXISTS" in c.record.restore_sql
                and copied_table(inputs, c)[1] == oid), default=None)


class Key(Struct, frozen=True):
    """A primary-key column: its name now as quote_ident gives it, its name before, its type."""

    now: str
    before: str
    type: str


def _keys(inputs: Inputs, table_now: str, cols: Columns) -> list[Key]:
    """The table's primary key, each column by its name now and before the run; [] without one,
    or when a key column is not among the copy's (the run added it)."""
    if inputs.conn is None:
        return []
    keys = []
    for quoted, type_ in written.key_columns(inputs.conn, table_now):
        before = next((b for b, n in cols.now.items() if quoted in (n, ident(n))), None)
        if before is None:
            return []
        keys.append(Key(quoted, before, type_))
    return keys


def _join(keys: list[Key], cols: Columns, *, now: bool = False, moved: bool = False) -> str:
    """Rows of the table (t) and of the copy (c) that are the same row: by the key's names before
    the run (the data actions, once the renames are back), or ``now`` (planning and
    ``plan.prepare``, before any action). ``moved``: the run updated the key, the copy keeps
    each row's new key as guard_new_<n> (guard/protect), where the row is now."""
    return " AND ".join(
        f"t.{k.now if now else ident(k.before)} = c.{ident(f'{NEW_KEY}{i}' if moved else cols.copy[k.before])}::{k.type}"
        for i, k in enumerate(keys))


def _column(plan: InversePlan, copy: Copy, table: str, cols: Columns) -> None:
    record, column = copy.record, cols.names[-1]
    join = " AND ".join(f"t.{ident(k)} = {cols.read([k])}" for k in cols.names[:-1])
    plan.add(f"UPDATE {table} AS t SET {ident(column)} = {cols.read([column])} FROM {record.copy} AS c "
             f"WHERE {join}", f"put back {record.rows} value(s) of {table}.{column} from {record.copy}", table)


def _unchanged(inputs: Inputs, part: str) -> str:
    return (f"EXISTS (SELECT 1 FROM guard.run_rows r WHERE r.run_id = {written.literal(inputs.run_id)} "
            f"AND r.part = {written.literal(part)} AND r.hash = {written.row_hash('t')})")


def _updated(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, now: str, oid: str | None,
             cols: Columns) -> None:
    """The old values of the rows the run updated, by primary key. The UPDATE is built here from
    the catalog, never taken from the registry's text (guard.copies.restore_sql is for people)."""
    record = copy.record
    what = f"put back {record.rows} updated row(s) of {table} from {record.copy}"
    part = f"rows:{record.copy}"
    keys = _keys(inputs, now, cols)
    moved = sum(c.startswith(NEW_KEY) for c in copy.columns)
    if moved and moved != len(keys):
        keys = []  # the key is not the one the run updated (changed since): its rows cannot be found
    always = {c["name"] for c in inputs.before.columns.values() if c["table"] == oid and c.get("identity") == "a"}
    sets = [n for n in writable(inputs, oid, cols.names)
            if (moved or n not in {k.before for k in keys}) and n not in always]
    if not keys or not sets:
        plan.not_invertible.append(f"copy {record.copy} of {table}: no primary key to match the rows the run updated; "
                                   f"put them back by hand ({record.restore_sql.splitlines()[0] if record.restore_sql else ''})")
        return
    statement = (f"UPDATE {table} AS t SET ({', '.join(ident(n) for n in sets)}) = ROW({cols.read(sets)}) "
                 f"FROM {record.copy} AS c WHERE {_join(keys, cols, moved=bool(moved))}")
    if part in inputs.after.parts:
        since = (f"FROM {record.copy} c WHERE NOT EXISTS (SELECT 1 FROM {now} t WHERE "
                 f"{_join(keys, cols, now=True, moved=bool(moved))} AND {_unchanged(inputs, part)})")
        changed = inputs.count(f"SELECT count(*) {since}")
        if changed and not inputs.force:
            temp = f"pg_temp.{ident(f'undo_written_{len(plan.prepare) + 1}')}"
            plan.prepare.append(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT c.ctid AS row {since}")
            statement += f" AND c.ctid NOT IN (SELECT row FROM {temp})"
            plan.kept.append(f"table {table}: {changed} of the {record.rows} row(s) the run updated were changed or "
                             "deleted by the application since: kept as they are now; --force puts the values "
                             "from before the run over them")
            what += f", except {changed} written since"
        elif changed:
            what += f" ({changed} row(s) written since overwritten: --force)"
    if moved:
        statement, what = _keys_taken(inputs, plan, copy, table, now, keys, cols, statement, what)
    plan.add(statement, what, table)


def _keys_taken(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, now: str, keys: list[Key],
                cols: Columns, statement: str, what: str) -> tuple[str, str]:
    """An UPDATE of the key put back: rows whose key before the run a row inserted since holds
    (not one the run moved) keep the key the run gave them, said (exit 4); ``--force`` deletes
    the rows inserted since first. Returns the statement and its description."""
    record = copy.record

    def moved_here(*, names_now: bool) -> str:  # t is a row the run moved: its key is a copy row's new key
        return " AND ".join(f"t.{k.now if names_now else ident(k.before)} = m.{ident(f'{NEW_KEY}{i}')}::{k.type}"
                            for i, k in enumerate(keys))

    held = (f"FROM {record.copy} c WHERE EXISTS (SELECT 1 FROM {now} t WHERE {_join(keys, cols, now=True)} AND NOT "
            f"EXISTS (SELECT 1 FROM {record.copy} m WHERE {moved_here(names_now=True)}))")
    taken = inputs.count(f"SELECT count(*) {held}")
    if not taken:
        return statement, what
    if not inputs.force:
        temp = f"pg_temp.{ident(f'undo_taken_{len(plan.prepare) + 1}')}"
        plan.prepare.append(f"CREATE TEMP TABLE {temp} ON COMMIT DROP AS SELECT c.ctid AS row {held}")
        plan.kept.append(f"table {table}: {taken} of the {record.rows} row(s) the run updated the key of have their "
                         "key from before the run held by a row inserted since: kept under the run's key; --force "
                         "deletes the rows inserted since and puts them back")
        return statement + f" AND c.ctid NOT IN (SELECT row FROM {temp})", what + f", except {taken} whose key is taken"
    plan.add(f"DELETE FROM {table} AS t USING {record.copy} AS c WHERE {_join(keys, cols)} AND NOT EXISTS "
             f"(SELECT 1 FROM {record.copy} m WHERE {moved_here(names_now=False)})",
             f"remove {taken} row(s) of {table} inserted since with a key the run updated away (--force)", table)
    return statement, what


def _inserted(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, now: str, oid: str | None,
              cols: Columns) -> None:
    record = copy.record
    names = writable(inputs, oid, cols.names)
    listed = ", ".join(ident(n) for n in names)
    insert = (f"INSERT INTO {table} ({listed}){overriding(inputs, table)} SELECT {cols.read(names)} "
              f"FROM {record.copy} AS c")
    what = f"put back {record.rows} deleted row(s) of {table} from {record.copy}"
    if copy.whole:
        _whole(inputs, plan, copy, table, oid, names, cols)
        return
    keys = _keys(inputs, now, cols)
    if keys:
        again = inputs.count(f"SELECT count(*) FROM {record.copy} c WHERE EXISTS "
                             f"(SELECT 1 FROM {now} t WHERE {_join(keys, cols, now=True)})")
        clash = f"EXISTS (SELECT 1 FROM {table} t WHERE {_join(keys, cols)})"
        if again and not inputs.force:
            insert += f" WHERE NOT {clash}"
            plan.kept.append(f"table {table}: {again} of the {record.rows} row(s) the run deleted were inserted again "
                             "since with the same primary key: the application's rows are kept; --force replaces them")
            what += f", except {again} whose key was inserted again since"
        elif again:
            plan.add(f"DELETE FROM {table} AS t USING {record.copy} AS c WHERE {_join(keys, cols)}",
                     f"remove {again} row(s) of {table} inserted since with a key the run deleted (--force)", table)
    plan.add(insert, what, table)


def _whole(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, oid: str | None, names: list[str],
           cols: Columns) -> None:
    """A whole table back (a MERGE rewrote it; an undo copied it), by difference: rows not in
    the copy go, rows only in the copy come back, the rest is not touched (rows other tables
    reference stay). Not when the table was written to since (its checksum), without --force."""
    record = copy.record
    then, present = inputs.after.checksums.get(oid or ""), inputs.checksums_now.get(oid or "")
    if then is not None and then != present and not inputs.force:
        plan.kept.append(f"table {table}: written since (its checksum changed), so its rows are not put back "
                         f"from {record.copy} ({record.statement}); --force puts the whole table back")
        return
    listed = ", ".join(ident(n) for n in names)
    keys = _keys(inputs, present_name(inputs, oid, table), cols)
    # Whole rows compared: as JSON where the copy has the table's names, else column by column.
    if cols.renamed:
        everything = [n for n in cols.names if n in names]
        differ = (f"ROW({', '.join(f't.{ident(n)}' for n in everything)}) IS DISTINCT FROM "
                  f"ROW({cols.read(everything)})")
    else:
        differ = "md5(to_jsonb(t)::text) <> md5(to_jsonb(c)::text)"
    if keys:
        match = _join(keys, cols)
        always = {c["name"] for c in inputs.before.columns.values() if c["table"] == oid and c.get("identity") == "a"}
        sets = [n for n in names if n not in {k.before for k in keys} and n not in always]
        if sets:
            plan.add(f"UPDATE {table} AS t SET ({', '.join(ident(n) for n in sets)}) = ROW({cols.read(sets)}) "
                     f"FROM {record.copy} AS c WHERE {match} AND {differ}",
                     f"put back the changed rows of {table} from {record.copy}", table)
    else:
        match = f"NOT ({differ})" if cols.renamed else "md5(to_jsonb(t)::text) = md5(to_jsonb(c)::text)"
    plan.add(f"DELETE FROM {table} AS t WHERE NOT EXISTS (SELECT 1 FROM {record.copy} AS c WHERE {match})",
             f"remove the rows of {table} that are not in {record.copy}", table)
    plan.add(f"INSERT INTO {table} ({listed}){overriding(inputs, table)} SELECT {cols.read(names)} "
             f"FROM {record.copy} AS c WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})",
             f"put back the rows of {table} from {record.copy} ({record.rows} in all)", table)


def present_name(inputs: Inputs, oid: str | None, table: str) -> str:
    """The table's name now (before the renames go back)."""
    return inputs.now.tables.get(oid or "", table)
