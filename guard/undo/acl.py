"""ACL items as PostgreSQL writes them (aclitemout: ``grantee=privileges/grantor``, a ``*``
after a privilege for its grant option, an empty grantee for PUBLIC) read into Python, and the
REVOKE / GRANT statements that take one ACL to another: the vocabulary of
guard/undo/privileges.py and guard/undo/privileges_recreated.py (utils/acl.h, acl.c)."""

from __future__ import annotations

import re

from guard.undo.model import InversePlan, ident

# The privilege letters of an ACL item (utils/acl.h ACL_*_CHR) and their SQL names.
PRIVILEGES = {"a": "INSERT", "r": "SELECT", "w": "UPDATE", "d": "DELETE", "D": "TRUNCATE", "x": "REFERENCES",
              "t": "TRIGGER", "X": "EXECUTE", "U": "USAGE", "C": "CREATE", "c": "CONNECT", "T": "TEMPORARY",
              "m": "MAINTAIN", "s": "SET", "A": "ALTER SYSTEM"}
_ROLE = r'"(?:[^"]|"")*"|[^=,"/\s]*'
_ITEM = rf"(?:{_ROLE})=[A-Za-z*]*/(?:{_ROLE})"
_ITEM_PARTS = re.compile(rf"({_ROLE})=([A-Za-z*]*)/({_ROLE})")
# "owner items": the owner as pg_get_userbyid gives it (unquoted, may hold spaces), then the
# items, comma-separated (aclitemout quotes a role name that is not plain letters and digits).
_OWNED = re.compile(rf"(.*?) ((?:{_ITEM}(?:,{_ITEM})*)?)", re.DOTALL)
# Items by (grantee, grantor): {privilege letter: with grant option}; "" is PUBLIC.
Acl = dict[tuple[str, str], dict[str, bool]]


def acl_statements(plan: InversePlan, key: str, grant: str, column: str, owner: str, was: Acl, now: Acl,
           default_scope: str = "") -> None:
    """REVOKE what ``now`` has beyond ``was``, GRANT what it lacks (items granted by ``owner``,
    a column's by its table's); with ``default_scope`` ("FOR ROLE r
    [IN SCHEMA s]"), as ALTER DEFAULT PRIVILEGES on ``grant`` (TABLES, FUNCTIONS...)."""
    for (grantee, grantor) in sorted(set(was) | set(now)):
        if grantor != owner:
            if was.get((grantee, grantor)) != now.get((grantee, grantor)):
                plan.not_invertible.append(f"{key}: privileges of {grantee or 'PUBLIC'} granted by {grantor}: "
                                           f"guard grants as the owner; put them back by hand as {grantor}")
            continue
        old, new = was.get((grantee, grantor), {}), now.get((grantee, grantor), {})
        to = "PUBLIC" if grantee == "" else ident(grantee)
        revoke = sorted(p for p in new if p not in old)
        option_off = sorted(p for p in new if p in old and new[p] and not old[p])
        give = sorted(p for p in old if p not in new or (old[p] and not new[p]))
        give_plain = [p for p in give if not old[p]]
        give_option = [p for p in give if old[p]]
        for letters, verb, tail in ((revoke, "REVOKE", ""), (option_off, "REVOKE GRANT OPTION FOR", ""),
                                    (give_plain, "GRANT", ""), (give_option, "GRANT", " WITH GRANT OPTION")):
            if not letters:
                continue
            names = ", ".join(PRIVILEGES.get(p, p) + (f" ({column})" if column else "") for p in letters)
            direction = "FROM" if verb.startswith("REVOKE") else "TO"
            words = f"{verb.lower()} {', '.join(PRIVILEGES.get(p, p) for p in letters)}"
            if default_scope:
                plan.add(f"ALTER DEFAULT PRIVILEGES {default_scope} {verb} {names} ON {grant} {direction} {to}{tail}",
                         f"{object_words(key)}: {words} on {grant.lower()} {direction.lower()} {grantee or 'PUBLIC'}"
                         f"{tail.lower()}, as before the run", optional=True)
                continue
            plan.add(f"{verb} {names} ON {grant} {direction} {to}{tail}",
                     f"{words} on {object_words(key)} {direction.lower()} {grantee or 'PUBLIC'}{tail.lower()}, "
                     "as before the run", optional=True)


def object_words(key: str) -> str:
    """"table privileges public.t" -> "table public.t"."""
    kind, _, name = key.partition(" privileges ")
    if kind == "default":
        return f"default privileges of {name}"
    return "database" if kind == "database" else f"{kind} {name}"


def owner_and_items(value: str | None) -> tuple[str, str] | None:
    """(owner, items) of a fingerprint's "owner items" value."""
    found = _OWNED.fullmatch(value or "")
    return (found.group(1), found.group(2)) if found else None


def parse_acl(items: str) -> Acl | None:
    """The items of an ACL as aclitemout writes them, comma-separated; None when unreadable."""
    acl: Acl = {}
    position = 0
    while position < len(items):
        found = _ITEM_PARTS.match(items, position)
        if found is None:
            return None
        grantee, letters, grantor = (unquote_role(found.group(1)), found.group(2), unquote_role(found.group(3)))
        privileges = acl.setdefault((grantee, grantor), {})
        for i, letter in enumerate(letters):
            if letter != "*":
                privileges[letter] = privileges.get(letter, False) or letters[i + 1:i + 2] == "*"
        position = found.end() + 1  # past the comma
    return acl


def unquote_role(role: str) -> str:
    return role[1:-1].replace('""', '"') if role.startswith('"') else role


def with_new_owner(acl: Acl, old: str, new: str) -> Acl:
    """``acl`` as ALTER ... OWNER TO ``new`` leaves it: ``old`` replaced by ``new`` as grantee
    and as grantor, items that then coincide merged (aclchk.c aclnewowner)."""
    moved: Acl = {}
    for (grantee, grantor), privileges in acl.items():
        key = (new if grantee == old else grantee, new if grantor == old else grantor)
        merged = moved.setdefault(key, {})
        for letter, option in privileges.items():
            merged[letter] = merged.get(letter, False) or option
    return moved


__all__ = ["PRIVILEGES", "Acl", "acl_statements", "object_words", "owner_and_items", "parse_acl", "unquote_role",
           "with_new_owner"]
