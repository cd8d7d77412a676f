"""The data stage of the local inverse: rows and values from the run's protective copies, newest
copy first, never over what the application wrote since the run unless ``--force``.

- values of a column the run dropped or retyped: UPDATE by primary key (the column is the run's
  alone: it did not exist, or the retype was kept, see plan._columns);
- rows the run UPDATEd: their old values, except rows the application changed or deleted since
  (their md5 is not among those the run left, guard/undo/written.py): kept, counted, exit 4;
- rows the run DELETEd (or a TRUNCATE emptied): INSERT, except rows whose primary key the
  application inserted again since: kept (``--force`` replaces them);
- a table a MERGE rewrote: the whole table, unless written to since (its checksum).
"""

from __future__ import annotations

from guard.undo import written
from guard.undo.copies import Copy
from guard.undo.model import (
    Inputs,
    InversePlan,
    ident,
    overriding,
    same_table,
    select_list,
    table_oid,
    writable,
)


def put_back(inputs: Inputs, plan: InversePlan, consumed: set[str]) -> None:
    """Add the data actions for the copies of tables that still exist (``consumed``: copies
    already used to fill recreated tables)."""
    for copy in inputs.copies:
        record = copy.record
        table = next((n for n in inputs.before.tables.values() if same_table(record.source, n)), None)
        if record.copy in consumed or record.copy in inputs.skip or table is None:
            continue
        oid = table_oid(inputs, table)
        now = inputs.now.tables.get(oid or "")
        if now is None and oid in inputs.after.tables:
            plan.kept.append(f"table {table}: dropped since the run; the {record.rows} row(s) of {record.copy} "
                             "are not put back")
            continue
        if "has no primary key" in record.restore_sql.lstrip().split("\n", 1)[0]:
            plan.not_invertible.append(f"copy {record.copy} of {table}: {record.restore_sql.splitlines()[0][3:]}")
        elif record.kind == "column" and copy.column:
            if copy.column in writable(inputs, oid, [copy.column]):  # a generated column is computed again
                _column(inputs, plan, copy, table, oid)
        elif copy.updates:
            _updated(inputs, plan, copy, table, now or table, oid)
        else:
            _inserted(inputs, plan, copy, table, now or table, oid)


def _column(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, oid: str | None) -> None:
    record, column = copy.record, copy.column or ""
    keys = copy.columns[:-1]
    join = " AND ".join(f"t.{ident(k)} = {select_list(inputs, oid, [k])}" for k in keys)
    col = ident(column)
    plan.add(f"UPDATE {table} AS t SET {col} = {select_list(inputs, oid, [column])} FROM {record.copy} AS c "
             f"WHERE {join}", f"put back {record.rows} value(s) of {table}.{column} from {record.copy}", table)


def _unchanged(inputs: Inputs, part: str) -> str:
    return (f"EXISTS (SELECT 1 FROM guard.run_rows r WHERE r.run_id = {written.literal(inputs.run_id)} "
            f"AND r.part = {written.literal(part)} AND r.hash = {written.row_hash('t')})")


def _updated(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, now: str, oid: str | None) -> None:
    """The old values of the rows the run updated, by primary key. The UPDATE is built here from
    the catalog, never taken from the registry's text (guard.copies.restore_sql is for people)."""
    record = copy.record
    what = f"put back {record.rows} updated row(s) of {table} from {record.copy}"
    part = f"rows:{record.copy}"
    keys = written.key_columns(inputs.conn, now) if inputs.conn is not None else []
    always = {c["name"] for c in inputs.before.columns.values() if c["table"] == oid and c.get("identity") == "a"}
    sets = [n for n in writable(inputs, oid, copy.columns) if ident(n) not in {k for k, _ in keys} and n not in always]
    if not keys or not sets:
        plan.not_invertible.append(f"copy {record.copy} of {table}: no primary key to match the rows the run updated; "
                                   f"put them back by hand ({record.restore_sql.splitlines()[0] if record.restore_sql else ''})")
        return
    statement = (f"UPDATE {table} AS t SET ({', '.join(ident(n) for n in sets)}) = ROW({select_list(inputs, oid, sets)}) "
                 f"FROM {record.copy} AS c WHERE {written.join(keys)}")
    if part in inputs.after.parts:
        since = (f"FROM {record.copy} c WHERE NOT EXISTS (SELECT 1 FROM {now} t WHERE {written.join(keys)} "
                 f"AND {_unchanged(inputs, part)})")
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
    plan.add(statement, what, table)


def _inserted(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, now: str, oid: str | None) -> None:
    record = copy.record
    names = writable(inputs, oid, copy.columns)
    listed = ", ".join(ident(n) for n in names)
    insert = (f"INSERT INTO {table} ({listed}){overriding(inputs, table)} SELECT {select_list(inputs, oid, names)} "
              f"FROM {record.copy} AS c")
    what = f"put back {record.rows} deleted row(s) of {table} from {record.copy}"
    if record.restore_sql.lstrip().startswith(("-- MERGE", "-- WHOLE TABLE")):
        _whole(inputs, plan, copy, table, oid, names)
        return
    keys = written.key_columns(inputs.conn, now) if inputs.conn is not None else []
    if keys:
        again = inputs.count(f"SELECT count(*) FROM {record.copy} c WHERE EXISTS "
                             f"(SELECT 1 FROM {now} t WHERE {written.join(keys)})")
        clash = f"EXISTS (SELECT 1 FROM {table} t WHERE {written.join(keys)})"
        if again and not inputs.force:
            insert += f" WHERE NOT {clash}"
            plan.kept.append(f"table {table}: {again} of the {record.rows} row(s) the run deleted were inserted again "
                             "since with the same primary key: the application's rows are kept; --force replaces them")
            what += f", except {again} whose key was inserted again since"
        elif again:
            plan.add(f"DELETE FROM {table} AS t USING {record.copy} AS c WHERE {written.join(keys)}",
                     f"remove {again} row(s) of {table} inserted since with a key the run deleted (--force)", table)
    plan.add(insert, what, table)


def _whole(inputs: Inputs, plan: InversePlan, copy: Copy, table: str, oid: str | None, names: list[str]) -> None:
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
    keys = written.key_columns(inputs.conn, present_name(inputs, oid, table)) if inputs.conn else []
    if keys:
        match = written.join(keys)
        always = {c["name"] for c in inputs.before.columns.values() if c["table"] == oid and c.get("identity") == "a"}
        key_names = {k for k, _ in keys}
        sets = [n for n in names if ident(n) not in key_names and n not in always]
        if sets:
            plan.add(f"UPDATE {table} AS t SET ({', '.join(ident(n) for n in sets)}) = ROW({select_list(inputs, oid, sets)}) "
                     f"FROM {record.copy} AS c WHERE {match} AND md5(to_jsonb(t)::text) <> md5(to_jsonb(c)::text)",
                     f"put back the changed rows of {table} from {record.copy}", table)
    else:
        match = "md5(to_jsonb(t)::text) = md5(to_jsonb(c)::text)"
    plan.add(f"DELETE FROM {table} AS t WHERE NOT EXISTS (SELECT 1 FROM {record.copy} AS c WHERE {match})",
             f"remove the rows of {table} that are not in {record.copy}", table)
    plan.add(f"INSERT INTO {table} ({listed}){overriding(inputs, table)} SELECT {select_list(inputs, oid, names)} "
             f"FROM {record.copy} AS c WHERE NOT EXISTS (SELECT 1 FROM {table} AS t WHERE {match})",
             f"put back the rows of {table} from {record.copy} ({record.rows} in all)", table)


def present_name(inputs: Inputs, oid: str | None, table: str) -> str:
    """The table's name now (before the renames go back)."""
    return inputs.now.tables.get(oid or "", table)
