"""Owners and privileges in the local inverse: what the run granted, revoked or gave away is
put back, when nothing changed it again since.

Input: the owners and ACLs recorded before the run (its fingerprint, guard/fingerprint.py
_PRIVILEGES), those recorded at its end (the "after" record holds them alone), and those now.
An object's entry is acted on only when the run changed it (before differs from after) and
nothing did since (now equals after): a grant a DBA made after the run is never taken back.
Objects the run added go whole; a table or column it dropped comes back with its owner and ACL
(privileges_recreated.py: cleared of what guard's role's default privileges gave it, then
granted as before); a renamed one is named, as are entries recorded by a guard that read no privileges. Default privileges (ALTER
DEFAULT PRIVILEGES) are put back the same way; an absent global entry stands for PostgreSQL's
built-in defaults (acldefault), an absent schema's entry for nothing.

Per object: ``ALTER ... OWNER TO`` the owner before, then the ACL items as they were, by
``REVOKE`` / ``GRANT`` (``GRANT OPTION FOR`` / ``WITH GRANT OPTION`` for the grant option).
PostgreSQL records as grantor of a GRANT run by the owner, or by a superuser, the owner
(ddl-priv.html; sql-grant.html, "If a superuser chooses to issue a GRANT or REVOKE command,
the command is performed as though it were issued by the owner"); an item another grantor
made is beyond it and named. ALTER ... OWNER TO moves the old owner's items to the new one
(aclchk.c, aclnewowner), which the comparison takes into account. Each statement is optional
(a REVOKE that others' grants depend on fails, and is named); the undo's final comparison with
the fingerprint before says whether the privileges came back exactly.
"""

from __future__ import annotations

from collections import Counter

from guard.undo.acl import (
    acl_statements,
    object_words,
    owner_and_items,
    parse_acl,
    unquote_role,
    with_new_owner,
)
from guard.undo.model import Inputs, InversePlan, ident
from guard.undo.privileges_recreated import recreated

# The target of GRANT and of ALTER ... OWNER for each entry of the fingerprint's privilege
# kinds, keyed as fingerprint_json keys them ("kind name"); quoted with format('%I'); for a
# column, the key of its table (whose owner grants its items). An aggregate is named by its
# argument types alone: GRANT's and ALTER FUNCTION's argument list takes no ORDER BY, and an
# aggregate of no argument is f(*) to ALTER AGGREGATE (sql-grant.html, sql-alterfunction.html).
TARGETS = """
SELECT 'table privileges ' || n.nspname || '.' || c.relname,
       CASE WHEN c.relkind = 'S' THEN 'SEQUENCE ' ELSE 'TABLE ' END || format('%I.%I', n.nspname, c.relname),
       CASE c.relkind WHEN 'v' THEN 'VIEW ' WHEN 'm' THEN 'MATERIALIZED VIEW ' WHEN 'S' THEN 'SEQUENCE '
                      WHEN 'f' THEN 'FOREIGN TABLE ' ELSE 'TABLE ' END || format('%I.%I', n.nspname, c.relname), '', ''
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
UNION ALL
SELECT 'column privileges ' || n.nspname || '.' || c.relname || '.' || a.attname,
       'TABLE ' || format('%I.%I', n.nspname, c.relname), '', quote_ident(a.attname),
       'table privileges ' || n.nspname || '.' || c.relname
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'function privileges ' || n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       t.target, t.target, '', ''
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 CROSS JOIN LATERAL (SELECT CASE WHEN p.prokind = 'p' THEN 'PROCEDURE ' ELSE 'FUNCTION ' END
                            || format('%I.%I(%s)', n.nspname, p.proname, CASE WHEN p.prokind = 'a'
                                      THEN oidvectortypes(p.proargtypes)
                                      ELSE pg_get_function_identity_arguments(p.oid) END)) AS t (target)
 WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'schema privileges ' || n.nspname, 'SCHEMA ' || quote_ident(n.nspname), 'SCHEMA ' || quote_ident(n.nspname), '', ''
  FROM pg_namespace n
UNION ALL
SELECT 'type privileges ' || n.nspname || '.' || t.typname,
       CASE WHEN t.typtype = 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || format('%I.%I', n.nspname, t.typname),
       CASE WHEN t.typtype = 'd' THEN 'DOMAIN ' ELSE 'TYPE ' END || format('%I.%I', n.nspname, t.typname), '', ''
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'r', 'm')
UNION ALL
SELECT 'database privileges current database', 'DATABASE ' || quote_ident(current_database()),
       'DATABASE ' || quote_ident(current_database()), '', ''
UNION ALL
SELECT 'composite type privileges ' || n.nspname || '.' || t.typname, 'TYPE ' || format('%I.%I', n.nspname, t.typname),
       'TYPE ' || format('%I.%I', n.nspname, t.typname), '', ''
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'c'
UNION ALL
SELECT 'language privileges ' || lanname, 'LANGUAGE ' || quote_ident(lanname), 'LANGUAGE ' || quote_ident(lanname), '', ''
  FROM pg_language
UNION ALL
SELECT 'foreign-data wrapper privileges ' || fdwname, 'FOREIGN DATA WRAPPER ' || quote_ident(fdwname),
       'FOREIGN DATA WRAPPER ' || quote_ident(fdwname), '', ''
  FROM pg_foreign_data_wrapper
UNION ALL
SELECT 'foreign server privileges ' || srvname, 'FOREIGN SERVER ' || quote_ident(srvname),
       'SERVER ' || quote_ident(srvname), '', ''
  FROM pg_foreign_server
"""
# The member and the role of each "role membership" entry asked for (%s: their keys), quoted.
MEMBERSHIPS = """
SELECT 'role membership ' || m.rolname || ' in ' || r.rolname, quote_ident(m.rolname), quote_ident(r.rolname)
  FROM pg_roles m CROSS JOIN pg_roles r
 WHERE 'role membership ' || m.rolname || ' in ' || r.rolname = ANY(%s)
"""

# The role, schema (NULL: every schema) and object type of each "default privileges" entry
# asked for (%s: their keys), whether or not it exists now, with the ACL an absent global entry
# stands for (acldefault; a schema's absent entry adds nothing). pg_default_acl writes sequences
# 'S', acldefault reads them 's' (pg_default_acl.h, acl.c acldefault_sql).
DEFAULTS = """
SELECT 'default privileges ' || r.rolname || ' ' || COALESCE(n.nspname, '*') || ' ' || t.objtype,
       r.rolname, quote_ident(r.rolname), quote_ident(n.nspname), t.objtype,
       CASE WHEN n.nspname IS NULL THEN
            (SELECT string_agg(x::text, ',' ORDER BY x::text)
               FROM unnest(acldefault(CASE t.objtype WHEN 'S' THEN 's' ELSE t.objtype END::"char", r.oid)) x) END
  FROM pg_roles r
 CROSS JOIN (SELECT NULL::name AS nspname UNION ALL SELECT nspname FROM pg_namespace) n
 CROSS JOIN (VALUES ('r'), ('S'), ('f'), ('T'), ('n')) AS t (objtype)
 WHERE 'default privileges ' || r.rolname || ' ' || COALESCE(n.nspname, '*') || ' ' || t.objtype = ANY(%s)
"""
_DEFAULT_OBJECTS = {"r": "TABLES", "S": "SEQUENCES", "f": "FUNCTIONS", "T": "TYPES", "n": "SCHEMAS"}

_KINDS = ("table privileges ", "column privileges ", "function privileges ", "schema privileges ",
          "type privileges ", "database privileges ", "default privileges ", "composite type privileges ",
          "language privileges ", "foreign-data wrapper privileges ", "foreign server privileges ", "role membership ")


def invert(inputs: Inputs, plan: InversePlan) -> None:
    """Add to ``plan`` the statements that put back the owners and ACLs the run changed
    (``inputs.fingerprints``: before, after); name what cannot be."""
    from guard.db import fetch_all
    from guard.fingerprint import PRIVILEGES_FINGERPRINT, PRIVILEGES_RECORDED

    if inputs.fingerprints is None or inputs.conn is None:
        return
    before, after = inputs.fingerprints
    if PRIVILEGES_RECORDED not in before or PRIVILEGES_RECORDED not in after:
        return  # recorded by a guard that read no privileges: the final comparison names them
    changed = [k for k in sorted(set(before) | set(after)) if k.startswith(_KINDS) and before.get(k) != after.get(k)]
    recreated(inputs, plan, before)
    if not changed:
        return
    defaults = [k for k in changed if k.startswith("default privileges ")]
    members = [k for k in changed if k.startswith("role membership ")]
    rows, targets, roles, existing, pairs = fetch_all(inputs.conn, [
        (PRIVILEGES_FINGERPRINT, None), (TARGETS, None), (DEFAULTS, (defaults,)), ("SELECT rolname FROM pg_roles", None),
        (MEMBERSHIPS, (members,))])
    now = {f"{kind} {name}": value for kind, name, value in rows}
    where = {key: (grant, alter, column, table) for key, grant, alter, column, table in targets}
    shared = _shared([row[0] for row in targets] + [row[0] for row in roles] + [row[0] for row in pairs],
                     set(before) | set(after) | set(now))
    _memberships(plan, pairs, shared, before, after, now)
    for key in sorted(shared):
        plan.not_invertible.append(f"{key}: more than one object has this name; their owners and ACLs cannot be "
                                   "told apart, check them by hand")
    existing_roles = {r[0] for r in existing}
    for key, role, quoted, schema, objtype, absent in roles:
        if key in shared or not _as_the_run_left_it(plan, key, before, after, now):
            continue
        scope = f"FOR ROLE {quoted}" + (f" IN SCHEMA {schema}" if schema else "")
        _defaults(plan, key, scope, _DEFAULT_OBJECTS[objtype], role, before.get(key, absent or ""),
                  now.get(key, absent or ""), existing_roles)
    put_back: set[str] = set()
    for key in sorted(changed, key=lambda k: k.startswith("column privileges ")):  # a column after its table
        if not _same_object(key, before, after) or key not in where or key in shared:
            continue  # added, dropped or renamed by the run: it goes or comes back whole, or is named
        if not _as_the_run_left_it(plan, key, before, after, now):
            continue
        owners = _column_owners(plan, key, where[key][3], before, now, put_back) if where[key][2] else None
        if where[key][2] and owners is None:
            continue
        _put_back(plan, key, where[key][:3], before.get(key), now.get(key), owners, existing_roles)
        put_back.add(key)


def _memberships(plan: InversePlan, pairs: list[tuple[str, str, str]], shared: set[str], before: dict[str, str],
                 after: dict[str, str], now: dict[str, str]) -> None:
    """GRANT role TO member / REVOKE role FROM member (and their ADMIN OPTION) for each role
    membership the run changed (``pairs``: key, member, role, quoted), unless changed since."""
    read = _roles_read(before) if pairs else set()
    for key, member, role in pairs:
        if key in shared or not _as_the_run_left_it(plan, key, before, after, now):
            continue
        was, is_now = before.get(key), now.get(key)
        words = key.removeprefix("role membership ")
        if was is None and not {unquote_role(member), unquote_role(role)} & read:
            plan.not_invertible.append(f"{key}: not read before the run (neither role mattered to this database "
                                       "then), so whether the run granted it is not known; left as it is")
            continue
        if was is None:
            plan.add(f"REVOKE {role} FROM {member}", f"role membership {words}: revoked, as before the run", optional=True)
        elif is_now is None:
            plan.add(f"GRANT {role} TO {member}" + (" WITH ADMIN OPTION" if was else ""),
                     f"role membership {words}: granted{' ' + was if was else ''}, as before the run", optional=True)
        elif was:
            plan.add(f"GRANT {role} TO {member} WITH ADMIN OPTION", f"role membership {words}: admin option "
                     "granted, as before the run", optional=True)
        else:
            plan.add(f"REVOKE ADMIN OPTION FOR {role} FROM {member}", f"role membership {words}: admin option "
                     "revoked, as before the run", optional=True)


def _as_the_run_left_it(plan: InversePlan, key: str, before: dict[str, str], after: dict[str, str],
                        now: dict[str, str]) -> bool:
    """Whether ``key``'s entry is to be put back: it differs from before the run (else there is
    nothing to do: a role the run granted to, dropped since) and is as the run left it (else it
    changed again since, and is named, left as it is: a DBA's grant is never taken back)."""
    if now.get(key) == before.get(key):
        return False
    if now.get(key) != after.get(key):
        plan.not_invertible.append(f"{key}: changed by the run and again since; left as it is now")
        return False
    return True


def _roles_read(before: dict[str, str]) -> set[str]:
    """The roles whose memberships the fingerprint ``before`` read (fingerprint.py _HERE): owners
    and grantees of what it records, roles of its default privileges."""
    roles: set[str] = set()
    for key, value in before.items():
        if not key.startswith(_KINDS) or key.startswith("role membership "):
            continue
        if key.startswith("default privileges "):
            roles.add(key.removeprefix("default privileges ").rsplit(" ", 2)[0])  # misread if the schema has a space: named
            items: str | None = value
        elif key.startswith("column privileges "):
            items = value
        else:
            owned = owner_and_items(value)
            roles.update(owned[:1] if owned else ())
            items = owned[1] if owned else None
        roles.update(grantee for grantee, _ in (parse_acl(items or "") or {}))
    return roles


def _shared(keys: list[str], recorded: set[str]) -> set[str]:
    """The keys of ``recorded`` that more than one object has: "a"."b.c" and "a.b"."c" are
    both "a.b.c" to the fingerprint, whose value is then either's."""
    return {key for key, count in Counter(keys).items() if count > 1} & recorded


def _column_owners(plan: InversePlan, key: str, table: str, before: dict[str, str], now: dict[str, str],
                   put_back: set[str]) -> tuple[str, str] | None:
    """(owner before the run, owner now) of the table of the column ``key``: the grantor of
    its items, moved with the table's owner (aclchk.c aclnewowner). None, named, when unknown
    or when the table's owner is not put back (its items would be granted by another role)."""
    was, is_now = owner_and_items(before.get(table)), owner_and_items(now.get(table))
    if was is None or is_now is None:
        plan.not_invertible.append(f"{key}: its table's owner could not be read back; put it back by hand")
        return None
    if was[0] != is_now[0] and table not in put_back:
        plan.not_invertible.append(f"{key}: its table's owner is not put back; put the column's ACL back by hand")
        return None
    return was[0], is_now[0]


def _defaults(plan: InversePlan, key: str, scope: str, objects: str, role: str, was: str, now: str,
              roles: set[str]) -> None:
    """ALTER DEFAULT PRIVILEGES statements taking ``now``'s items back to ``was``'s (the
    grantor of a default privilege is its role)."""
    acl_was, acl_now = parse_acl(was), parse_acl(now)
    if acl_was is None or acl_now is None:
        plan.not_invertible.append(f"{key}: its ACL could not be read back; put it back by hand")
        return
    if not _gone(plan, key, {role, *(r for pair in acl_was for r in pair if r)}, roles):
        acl_statements(plan, key, objects, "", role, acl_was, acl_now, default_scope=scope)


def _same_object(key: str, before: dict[str, str], after: dict[str, str]) -> bool:
    """The object of ``key`` is there before and after the run under the same name (a column
    without an ACL has no entry: it was there before, and is now, ``TARGETS`` says)."""
    if key.startswith("column privileges "):
        return "column " + key.removeprefix("column privileges ") in before
    return key in before and key in after


def _put_back(plan: InversePlan, key: str, where: tuple[str, str, str], was: str | None, now: str | None,
              owners: tuple[str, str] | None, roles: set[str]) -> None:
    """Statements taking ``key``'s entry from ``now`` back to ``was``; a column's (``owners``:
    its table's owner before the run and now) as its table's ALTER ... OWNER leaves it. An
    entry naming a role ``roles`` (those that exist) lacks is named, untouched: a role renamed
    or dropped by the run would lose its privileges to a REVOKE whose GRANT back fails."""
    grant, alter, column = where
    if column and owners:
        owner_was, owner_now = owners
        items_was, items_now = was or "", now or ""
    else:
        split_was, split_now = owner_and_items(was), owner_and_items(now)
        if split_was is None or split_now is None:
            plan.not_invertible.append(f"{key}: its owner and ACL could not be read back; put them back by hand")
            return
        (owner_was, items_was), (owner_now, items_now) = split_was, split_now
    acl_was, acl_now = parse_acl(items_was), parse_acl(items_now)
    if acl_was is None or acl_now is None:
        plan.not_invertible.append(f"{key}: its ACL could not be read back; put it back by hand")
        return
    if _gone(plan, key, {owner_was, *(role for pair in acl_was for role in pair if role)}, roles):
        return
    if owner_was != owner_now:
        if not column:
            plan.add(f"ALTER {alter} OWNER TO {ident(owner_was)}", f"{object_words(key)}: owner back to {owner_was}",
                     optional=True)
        acl_now = with_new_owner(acl_now, owner_now, owner_was)
    acl_statements(plan, key, grant, column, owner_was, acl_was, acl_now)


def _gone(plan: InversePlan, key: str, named: set[str], roles: set[str]) -> bool:
    """Whether a role of ``named`` (the owner and ACL before the run) is not in ``roles``
    (those that exist), the entry then named."""
    gone = sorted(named - roles)
    if gone:
        plan.not_invertible.append(f"{key}: its owner and ACL before the run name {', '.join(gone)}, a role that "
                                   "is no more (dropped or renamed); left as it is now")
    return bool(gone)


__all__ = ["invert"]
