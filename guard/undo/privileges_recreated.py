"""Owners and ACLs of what the undo recreates: a table the run dropped (and its sequences), a
column it dropped, an enum it dropped. The undo creates them as guard's role, with its default
privileges (get_user_default_acl, aclchk.c): nothing of the old ACL follows. So each is cleared
of what those gave it, granted as before the run, then given its owner back (last, after its
columns' grants, made as its owner)."""

from __future__ import annotations

import re

from guard.undo.acl import acl_statements, owner_and_items, parse_acl, unquote_role, with_new_owner
from guard.undo.model import Inputs, InversePlan, ident

# Who a table, sequence or type guard creates may hold privileges for, besides PUBLIC and
# guard itself: every grantee of guard's role's default privileges on those
# (get_user_default_acl, aclchk.c).
DEFAULT_GRANTEES = """
SELECT DISTINCT quote_ident(pg_get_userbyid(x.grantee))
  FROM pg_default_acl d, aclexplode(d.defaclacl) x
 WHERE d.defaclrole = current_user::regrole AND d.defaclobjtype IN ('r', 'S', 'T') AND x.grantee <> 0
"""


def recreated(inputs: Inputs, plan: InversePlan, before: dict[str, str]) -> None:
    """The owner and ACL of each table the undo recreates, and the column ACLs of the columns it
    re-adds, as they were before the run: the new table has guard's role as owner and its
    default privileges, from which nothing of the old ACL follows."""
    created = {a.sql.split(" (", 1)[0].removeprefix("CREATE TABLE ") for a in plan.actions if a.sql.startswith("CREATE TABLE ")}
    types = {a.sql.split(" AS ENUM", 1)[0].removeprefix("CREATE TYPE ") for a in plan.actions
             if a.sql.startswith("CREATE TYPE ")}
    added = {a.sql for a in plan.actions if " ADD COLUMN " in a.sql}
    if inputs.conn is None or not (created or types or added):
        return
    who = _as_guard(inputs) if created or types else ("", "")
    owners: list[tuple[str, str]] = []
    for oid, name in inputs.before.tables.items():
        if oid in inputs.after.tables or name not in created:
            continue
        owner = _whole(plan, before, "TABLE", name, who)
        if owner is not None:
            _sequences(inputs, plan, before, (oid, name), who)
        if owner is not None and owner != who[0]:  # last, after its columns' grants, made as its owner
            owners.append((f"ALTER TABLE {name} OWNER TO {ident(owner)}", f"table {name}: owner back to {owner}"))
    for oid, enum in inputs.before.enums.items():
        name = enum["name"]
        owner = _whole(plan, before, "TYPE", name, who) if oid not in inputs.after.enums and name in types else None
        if owner is not None and owner != who[0]:
            owners.append((f"ALTER TYPE {name} OWNER TO {ident(owner)}", f"type {name}: owner back to {owner}"))
    for col_key, col in inputs.before.columns.items():
        table = inputs.before.tables.get(col["table"], "")
        if col_key in inputs.after.columns and col["table"] in inputs.after.tables:
            continue
        column = ident(col["name"])
        if table not in created and not any(s.startswith(f"ALTER TABLE {table} ADD COLUMN {column} ") for s in added):
            continue
        key = _key("column privileges", table, col["name"])
        acl = parse_acl(before.get(key, "")) if key else None
        if key and acl:
            owner_was = (owner_and_items(before.get(f"table privileges {key.removeprefix('column privileges ').rsplit('.', 1)[0]}"))
                         or ("", ""))[0]
            acl_statements(plan, key, f"TABLE {table}", column, owner_was, acl, {})
    for statement, what in owners:
        plan.add(statement, what, optional=True)


def _whole(plan: InversePlan, before: dict[str, str], kind: str, name: str, who: tuple[str, str]) -> str | None:
    """Clear the ACL of the ``kind`` (TABLE, SEQUENCE, TYPE) ``name`` the undo recreates, then
    grant it as before the run, as guard's role (``who``: it and everyone its default privileges
    grant to, as _as_guard gives them). Returns the owner before the run (its ALTER ... OWNER TO
    is the caller's, last); None when the fingerprint before holds no readable entry for it."""
    key = _key(f"{'table' if kind == 'SEQUENCE' else kind.lower()} privileges", name)
    owned = owner_and_items(before.get(key)) if key else None
    acl = parse_acl(owned[1]) if owned else None
    if key is None or owned is None or acl is None:
        return None
    me, everyone = who
    plan.add(f"REVOKE ALL ON {kind} {name} FROM {everyone}", f"{kind.lower()} {name}: privileges cleared, to be "
             "granted as before the run", optional=True)
    acl_statements(plan, key, f"{kind} {name}", "", me, with_new_owner(acl, owned[0], me), {})
    return owned[0]


_QUALIFIED = re.compile(r'("(?:[^"]|"")*"|[^".]+)\.("(?:[^"]|"")*"|[^".]+)')  # quote_ident(schema).quote_ident(name)


def _sequences(inputs: Inputs, plan: InversePlan, before: dict[str, str], table: tuple[str, str],
               who: tuple[str, str]) -> None:
    """The ACLs, as before the run, of the sequences of the recreated ``table`` (oid, quoted name):
    a serial column's (re-linked by ALTER SEQUENCE ... OWNED BY) and an identity column's (if
    named table_column_seq before). Their owner follows the table's (tablecmds.c ATExecChangeOwner)."""
    oid, name = table
    parts = _QUALIFIED.fullmatch(name)
    if parts is None:
        return
    schema = parts.group(1)
    found = []
    for action in plan.actions:
        linked = re.fullmatch(rf"ALTER SEQUENCE (.+) OWNED BY {re.escape(name)}\..+", action.sql)
        if linked:
            found.append(linked.group(1) if _key("t", linked.group(1)) else f"{schema}.{linked.group(1)}")
    relname = inputs.before.relnames.get(oid, "")
    for col in inputs.before.columns.values():
        if col["table"] == oid and col.get("identity"):
            found.append(f"{schema}.{ident(relname + '_' + col['name'] + '_seq')}")
    for sequence in found:
        _whole(plan, before, "SEQUENCE", sequence, who)


def _as_guard(inputs: Inputs) -> tuple[str, str]:
    """(guard's role, which owns what the undo creates; the roles a REVOKE ALL clears from it:
    PUBLIC, guard's role and DEFAULT_GRANTEES, quoted and comma-separated), in one query."""
    assert inputs.conn is not None
    row = inputs.conn.execute(f"SELECT current_user::text, quote_ident(current_user), ARRAY({DEFAULT_GRANTEES})").fetchone()
    me, quoted, grantees = row if row else ("", '""', [])
    return str(me), ", ".join(dict.fromkeys(["PUBLIC", quoted, *grantees]))


def _key(kind: str, quoted: str, column: str | None = None) -> str | None:
    """The fingerprint's key of the table ``quoted`` (quote_ident(schema).quote_ident(name), as
    guard/undo/catalog.py reads it) or of its ``column``; None when unreadable."""
    parts = _QUALIFIED.fullmatch(quoted)
    if parts is None:
        return None
    name = f"{unquote_role(parts.group(1))}.{unquote_role(parts.group(2))}"
    return f"{kind} {name}" + (f".{column}" if column is not None else "")


