"""Objects other than tables, columns, indexes, constraints and enums in the local inverse: the
views, functions, procedures, sequences, triggers, policies, domains, range types and schemas
the run added are dropped (each on its own, so one that cannot go is named and the rest still
goes: something created since depends on it, exit 4); a sequence the application advanced
since the run holds data written since and is kept without ``--force``. Those the run dropped
cannot be recreated (guard recorded no definition): each is named. A sequence of before the run
that the run moved goes back to its value before, unless advanced since.
"""

from __future__ import annotations

from guard.undo.model import Action, Inputs, InversePlan, literal

# Dropped before the tables and columns the run added (they may depend on them) ...
EARLY = ("trigger", "policy", "view", "materialized view")
# ... and after them (a column's default may use a function, sequence or domain).
LATE = ("function", "procedure", "aggregate", "sequence", "domain", "type", "schema")
DROP = {"trigger": "DROP TRIGGER IF EXISTS {name} ON {table}", "policy": "DROP POLICY IF EXISTS {name} ON {table}",
        "view": "DROP VIEW IF EXISTS {name}", "materialized view": "DROP MATERIALIZED VIEW IF EXISTS {name}",
        "function": "DROP FUNCTION IF EXISTS {name}", "procedure": "DROP PROCEDURE IF EXISTS {name}",
        "aggregate": "DROP AGGREGATE IF EXISTS {name}", "sequence": "DROP SEQUENCE IF EXISTS {name}",
        "domain": "DROP DOMAIN IF EXISTS {name}", "type": "DROP TYPE IF EXISTS {name}",
        "schema": "DROP SCHEMA IF EXISTS {name}"}


def drop_added(inputs: Inputs, plan: InversePlan, *, early: bool) -> None:
    """Drop what the run added of the ``EARLY`` (or ``LATE``) kinds, newest first."""
    kinds = EARLY if early else LATE
    b, a, now = inputs.before, inputs.after, inputs.now
    added = [(key, obj) for key, obj in a.others.items() if obj["kind"] in kinds and key not in b.others and key in now.others]
    added.sort(key=lambda kv: (kinds.index(kv[1]["kind"]), -int(kv[0].split(":")[1])))
    for key, obj in added:
        table = ""
        if obj["table"]:
            if obj["table"] not in b.tables or obj["table"] not in now.tables:
                continue  # on a table the run added: it goes with the table (or stays with it, kept)
            table = now.tables[obj["table"]]
        if obj["kind"] == "sequence" and now.others[key]["state"] != obj["state"]:
            if not inputs.force:
                plan.kept.append(f"sequence {obj['name']}: kept, advanced since the run (last value {obj['state'] or 'none'} "
                                 f"then, {now.others[key]['state'] or 'none'} now); --force drops it")
                continue
        where = f" on {table}" if table else ""
        plan.add(DROP[obj["kind"]].format(name=obj["name"], table=table),
                 f"drop {obj['kind']} {obj['name']}{where} the run added", table or None, optional=True)


def dropped(inputs: Inputs, plan: InversePlan) -> None:
    """Name each object of these kinds the run dropped: guard cannot recreate it."""
    b, a = inputs.before, inputs.after
    for key, obj in b.others.items():
        if key in a.others or obj["kind"] not in EARLY + LATE:
            continue
        where = f" on {b.tables.get(obj['table'], 'a dropped table')}" if obj["table"] else ""
        plan.not_invertible.append(f"{obj['kind']} {obj['name']}{where}: dropped by the run; guard recorded no "
                                   "definition to recreate it (the snapshot or a backup has it)")


def sequence_values(inputs: Inputs, plan: InversePlan) -> None:
    """A sequence that existed before the run and that the run moved (``setval``, ``ALTER
    SEQUENCE ... RESTART``) goes back to its value before, when nothing advanced it since; one
    advanced since, or moved forward by the run (rows it inserted may hold those ids: undo does
    not remove rows a run inserted), is kept without ``--force``, and named. The
    values are ``pg_sequence_last_value`` (NULL: not called since its start or restart)."""
    b, a, now = inputs.before.others, inputs.after.others, inputs.now.others
    for key, obj in b.items():
        if obj["kind"] != "sequence" or key not in a or key not in now or a[key]["state"] == obj["state"]:
            continue
        old, new, current = obj["state"], a[key]["state"], now[key]["state"]
        if not all(v is None or str(v).lstrip("-").isdigit() for v in (old, new, current)):
            plan.not_invertible.append(f"sequence {obj['name']}: its recorded value is not a number; not put back")
            continue
        moved = f"the run moved it (last value {old or 'none'} before, {new or 'none'} after)"
        if current != new and not inputs.force:
            plan.kept.append(f"sequence {obj['name']}: {moved} and it was advanced since ({current or 'none'} now): "
                             "kept; --force sets it back")
            continue
        if _forward(old, new) and not inputs.force:
            # Undo does not remove rows a run inserted: ids it drew from the sequence may be in them.
            plan.kept.append(f"sequence {obj['name']}: {moved}: kept, rows the run inserted may hold its values "
                             "(undo does not remove rows a run inserted); --force sets it back")
            continue
        regclass = f"{literal(obj['name'])}::regclass"
        statement = (f"SELECT setval({regclass}, {int(old)}, true)" if old is not None else
                     f"SELECT setval({regclass}, s.seqstart, false) FROM pg_sequence s WHERE s.seqrelid = {regclass}")
        plan.late.append(Action(statement, f"sequence {obj['name']} back to its value before the run "
                                           f"(last value {old or 'none, not called'})"))


def _forward(old: str | None, new: str | None) -> bool:
    """Whether a sequence went from last value ``old`` to ``new`` by handing out values (or a
    setval above them): NULL is a sequence not called since its start or restart."""
    return new is not None and (old is None or int(new) > int(old))
