"""A catalog fingerprint of a database's schema and of known migration-history tables.

Used around a wrapped migration tool (`guard run -- <command>`): guard cannot see what the
tool does, so it compares the catalog before and after to decide whether the database
changed, and lists what did.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    import psycopg

# Schemas that belong to PostgreSQL itself or to guard (its journal and protective copies).
_EXCLUDED = "('pg_catalog', 'information_schema', 'pg_toast', 'guard', 'guard_backup')"
_USER_SCHEMA = (
    f"n.nspname NOT IN {_EXCLUDED} AND n.nspname NOT LIKE 'pg_temp_%' "
    "AND n.nspname NOT LIKE 'pg_toast_temp_%'"
)

# (kind, name, definition) for every object that a migration can add, drop or alter.
# Policies are read from pg_policy as the pg_policies view shows them (cmd, permissive, roles
# sorted by name or {public}, qual, with_check; src/backend/catalog/system_views.sql), without
# the view's rewrite; the md5 is the same, so fingerprints stored by earlier runs still compare.
# pg_depend is read by (classid, objid), its index.
_FINGERPRINT_TEMPLATE = """
SELECT 'schema', n.nspname, '' FROM pg_namespace n WHERE {_USER_SCHEMA}
UNION ALL
SELECT CASE c.relkind WHEN 'r' THEN 'table' WHEN 'p' THEN 'table' WHEN 'v' THEN 'view'
                      WHEN 'm' THEN 'materialized view' WHEN 'S' THEN 'sequence'
                      WHEN 'f' THEN 'foreign table' END,
       n.nspname || '.' || c.relname,
       CASE WHEN c.relkind IN ('v', 'm') THEN md5(pg_get_viewdef(c.oid)) ELSE '' END
       || CASE WHEN c.relrowsecurity THEN ' rls' ELSE '' END
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {_USER_SCHEMA}
UNION ALL
SELECT 'column', n.nspname || '.' || c.relname || '.' || a.attname,
       format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || COALESCE(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
  FROM pg_attribute a
  JOIN pg_class c ON c.oid = a.attrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attnum > 0 AND NOT a.attisdropped AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND {_USER_SCHEMA}
UNION ALL
SELECT 'index', n.nspname || '.' || c.relname, md5(pg_get_indexdef(i.indexrelid))
  FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMA}
UNION ALL
SELECT 'constraint', n.nspname || '.' || c.relname || '.' || co.conname,
       md5(pg_get_constraintdef(co.oid))
  FROM pg_constraint co JOIN pg_class c ON c.oid = co.conrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMA}
UNION ALL
SELECT 'function', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       md5(COALESCE(p.prosrc, '') || ' ' || p.prorettype::regtype::text || ' ' || p.prokind::text
           || ' ' || p.provolatile::text || ' ' || p.prosecdef::text || ' ' || COALESCE(array_to_string(p.proconfig, ','), ''))
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {_USER_SCHEMA}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e')
UNION ALL
SELECT 'type', n.nspname || '.' || t.typname,
       t.typtype::text || COALESCE(' ' || (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder)
                                     FROM pg_enum e WHERE e.enumtypid = t.oid), '')
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {_USER_SCHEMA}
UNION ALL
SELECT 'policy', n.nspname || '.' || c.relname || '.' || p.polname,
       md5(CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                         WHEN 'd' THEN 'DELETE' WHEN '*' THEN 'ALL' END
           || ' ' || CASE WHEN p.polpermissive THEN 'PERMISSIVE' ELSE 'RESTRICTIVE' END
           || ' ' || CASE WHEN p.polroles = '{0}' THEN '{public}' ELSE
                     array(SELECT r.rolname FROM pg_roles r WHERE r.oid = ANY(p.polroles) ORDER BY r.rolname)::text END
           || ' ' || COALESCE(pg_get_expr(p.polqual, p.polrelid), '')
           || ' ' || COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), ''))
  FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname NOT IN {_EXCLUDED}
UNION ALL
SELECT 'trigger', n.nspname || '.' || c.relname || '.' || t.tgname, md5(pg_get_triggerdef(t.oid))
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
  JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE NOT t.tgisinternal AND {_USER_SCHEMA}
UNION ALL
SELECT 'extension', e.extname, e.extversion FROM pg_extension e
{_PROPERTIES}
{_PRIVILEGES}"""
# Since v4, properties of objects that the rows above do not show, so that an undo leaving one
# as the run changed it says so (it was exit 0, "the database is as before run ..."): comments
# (pg_description, named by pg_identify_object), a relation's persistence, replica identity
# (and its index), FORCE ROW LEVEL SECURITY and options (fillfactor, a view's security_invoker
# or check_option...), whether each trigger fires (ALTER TABLE ... DISABLE TRIGGER; a foreign
# key's internal triggers by its constraint's name), a sequence's parameters. A fingerprint
# recorded before them is compared without them (``as_recorded``).
# Since v5 comments on every kind of object: a trigger's, policy's or rule's named by its table's
# schema (pg_identify_object gives them none, so v4 read none), an extension's, event
# trigger's, server's... by their own name. v4 fingerprints are compared with the kinds v4 read
# (``as_recorded``, COMMENTS_V4).
# Comments are named only for objects made after initdb (oid >= FirstNormalObjectId, 16384;
# OIDs wrap around to it, never below: src/include/access/transam.h, GetNewObjectId) and for
# schemas (public is 2200): the ~3,300 comments of PostgreSQL's own objects, each named by
# pg_identify_object to be thrown away by the schema test, were half the fingerprint's time.
_PROPERTIES = """UNION ALL
SELECT 'comment', o.type || ' ' || o.identity, md5(d.description)
  FROM pg_description d CROSS JOIN LATERAL pg_identify_object(d.classoid, d.objoid, d.objsubid) o
  CROSS JOIN LATERAL (SELECT COALESCE(o.schema, (
           SELECT rn.nspname FROM pg_class rc JOIN pg_namespace rn ON rn.oid = rc.relnamespace
            WHERE rc.oid = CASE d.classoid
                             WHEN 'pg_trigger'::regclass THEN (SELECT t.tgrelid FROM pg_trigger t WHERE t.oid = d.objoid)
                             WHEN 'pg_policy'::regclass THEN (SELECT p.polrelid FROM pg_policy p WHERE p.oid = d.objoid)
                             WHEN 'pg_rewrite'::regclass THEN (SELECT r.ev_class FROM pg_rewrite r WHERE r.oid = d.objoid)
                           END), o.name) AS nspname) n
 WHERE (d.objoid >= 16384 OR d.classoid = 'pg_namespace'::regclass)
   AND {_USER_SCHEMA}
UNION ALL
SELECT 'relation options', n.nspname || '.' || c.relname,
       c.relpersistence::text || ' ' || c.relreplident::text || CASE WHEN c.relforcerowsecurity THEN ' force rls' ELSE '' END
       || ' ' || COALESCE(array_to_string(ARRAY(SELECT x FROM unnest(c.reloptions) x ORDER BY x), ','), '')
       || COALESCE(' ' || (SELECT string_agg(ic.relname, ',') FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
                            WHERE i.indrelid = c.oid AND i.indisreplident), '')
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f') AND {_USER_SCHEMA}
UNION ALL
SELECT 'trigger state', n.nspname || '.' || c.relname || '.'
       || CASE WHEN t.tgisinternal THEN COALESCE(co.conname, '') || ' (internal)' ELSE t.tgname END,
       string_agg(DISTINCT t.tgenabled::text, '')
  FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
  LEFT JOIN pg_constraint co ON co.oid = t.tgconstraint
 WHERE {_USER_SCHEMA}
 GROUP BY 2
UNION ALL
SELECT 'sequence options', n.nspname || '.' || c.relname,
       format_type(s.seqtypid, NULL) || ' start ' || s.seqstart || ' increment ' || s.seqincrement || ' min ' || s.seqmin
       || ' max ' || s.seqmax || ' cache ' || s.seqcache || CASE WHEN s.seqcycle THEN ' cycle' ELSE '' END
  FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE {_USER_SCHEMA}
UNION ALL
SELECT 'properties', 'recorded v4', ''
UNION ALL
SELECT 'properties', 'recorded v5', ''"""
# A relation's ACL type for acldefault: 's' for a sequence, 'r' for the rest (acl.c acldefault_sql).
_RELATION_ACL_TYPE = "CASE WHEN c.relkind = 'S' THEN 's' ELSE 'r' END::\"char\""


def _owner_and_acl(acl: str, objtype: str, owner: str) -> str:
    """SQL: an object's owner, a space, and its ACL items sorted and comma-separated, NULL read
    as the default it stands for (acldefault, of type ``objtype``)."""
    return (f"pg_get_userbyid({owner}) || ' ' || COALESCE((SELECT string_agg(x::text, ',' ORDER BY x::text) "
            f"FROM unnest(COALESCE({acl}, acldefault({objtype}, {owner}))) x), '')")


# Who owns each object and who may use it: an owner and its ACL, NULL read as the default it
# stands for (acldefault) and the items sorted, so an ACL granted back to what it was compares
# equal (ddl-priv.html; func-info.html, acldefault). Kinds of their own, so that the objects'
# entries stay as earlier guards stored them; the 'privileges recorded' row tells a fingerprint
# that holds them from one recorded before they were read (PRIVILEGES_RECORDED).
_PRIVILEGES = f"""UNION ALL
SELECT 'table privileges', n.nspname || '.' || c.relname, {_owner_and_acl('c.relacl', _RELATION_ACL_TYPE, 'c.relowner')}
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f') AND {{_USER_SCHEMA}}
UNION ALL
SELECT 'column privileges', n.nspname || '.' || c.relname || '.' || a.attname,
       (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(a.attacl) x)
  FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE a.attnum > 0 AND NOT a.attisdropped AND cardinality(a.attacl) > 0 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND {{_USER_SCHEMA}}
UNION ALL
SELECT 'function privileges', n.nspname || '.' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')',
       {_owner_and_acl('p.proacl', "'f'", 'p.proowner')}
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE {{_USER_SCHEMA}}
   AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid
                   AND d.deptype = 'e')
UNION ALL
SELECT 'schema privileges', n.nspname, {_owner_and_acl('n.nspacl', "'n'", 'n.nspowner')}
  FROM pg_namespace n WHERE {{_USER_SCHEMA}}
UNION ALL
SELECT 'type privileges', n.nspname || '.' || t.typname, {_owner_and_acl('t.typacl', "'T'", 't.typowner')}
  FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'r', 'm') AND {{_USER_SCHEMA}}
UNION ALL
SELECT 'default privileges', pg_get_userbyid(d.defaclrole) || ' ' || COALESCE(n.nspname, '*') || ' ' || d.defaclobjtype::text,
       (SELECT string_agg(x::text, ',' ORDER BY x::text) FROM unnest(d.defaclacl) x)
  FROM pg_default_acl d LEFT JOIN pg_namespace n ON n.oid = d.defaclnamespace
 WHERE n.oid IS NULL OR n.nspname NOT IN {{_EXCLUDED}}
UNION ALL
SELECT 'database privileges', 'current database', {_owner_and_acl('d.datacl', "'d'", 'd.datdba')}
  FROM pg_database d WHERE d.datname = current_database()
UNION ALL
SELECT 'privileges', 'recorded', ''
UNION ALL
SELECT 'composite type privileges', n.nspname || '.' || t.typname, {_owner_and_acl('t.typacl', "'T'", 't.typowner')}
  FROM pg_type t JOIN pg_class c ON c.oid = t.typrelid JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE t.typtype = 'c' AND c.relkind = 'c' AND {{_USER_SCHEMA}}
UNION ALL
SELECT 'language privileges', l.lanname, {_owner_and_acl('l.lanacl', "'l'", 'l.lanowner')}
  FROM pg_language l
UNION ALL
SELECT 'foreign-data wrapper privileges', w.fdwname, {_owner_and_acl('w.fdwacl', "'F'", 'w.fdwowner')}
  FROM pg_foreign_data_wrapper w
UNION ALL
SELECT 'foreign server privileges', s.srvname, {_owner_and_acl('s.srvacl', "'S'", 's.srvowner')}
  FROM pg_foreign_server s
UNION ALL
SELECT 'role membership', pg_get_userbyid(m.member) || ' in ' || pg_get_userbyid(m.roleid),
       CASE WHEN bool_or(m.admin_option) THEN 'with admin option' ELSE '' END
  FROM pg_auth_members m, (SELECT ARRAY({{_HERE}}) AS roles OFFSET 0) h
 WHERE m.member = ANY(h.roles) OR m.roleid = ANY(h.roles)
 GROUP BY m.member, m.roleid
UNION ALL
SELECT 'privileges', 'recorded v2', ''
UNION ALL
SELECT 'privileges', 'recorded v3', ''
"""
# OFFSET 0 keeps the role set a subquery of its own: pulled up, its ARRAY(...) was copied into
# both sides of the OR and the role set read twice (two InitPlans), a third of the privileges read.
# The roles that matter to this database, whose memberships (kept by the cluster, shared by all
# its databases) the fingerprint reads: owners and grantees of its user schemas, relations,
# columns, functions, types, of its default privileges, of the database itself, and of the
# languages, foreign-data wrappers and servers (each object whose owner and ACL it reads: a
# role granted EXECUTE on one function alone is one a membership makes others act as).
_HERE = """SELECT n.nspowner FROM pg_namespace n WHERE {_USER_SCHEMA}
  UNION SELECT x.grantee FROM pg_namespace n, aclexplode(n.nspacl) x WHERE {_USER_SCHEMA}
  UNION SELECT c.relowner FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {_USER_SCHEMA}
  UNION SELECT x.grantee FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(c.relacl) x
         WHERE {_USER_SCHEMA}
  UNION SELECT d.defaclrole FROM pg_default_acl d
  UNION SELECT x.grantee FROM pg_default_acl d, aclexplode(d.defaclacl) x
  UNION SELECT d.datdba FROM pg_database d WHERE d.datname = current_database()
  UNION SELECT x.grantee FROM pg_database d, aclexplode(d.datacl) x WHERE d.datname = current_database()
  UNION SELECT x.grantee FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace, aclexplode(a.attacl) x
         WHERE a.attacl IS NOT NULL AND {_USER_SCHEMA}
  UNION SELECT p.proowner FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE {_USER_SCHEMA}
  UNION SELECT x.grantee FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace, aclexplode(p.proacl) x
         WHERE {_USER_SCHEMA}
  UNION SELECT t.typowner FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace WHERE {_USER_SCHEMA}
  UNION SELECT x.grantee FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace, aclexplode(t.typacl) x
         WHERE {_USER_SCHEMA}
  UNION SELECT l.lanowner FROM pg_language l
  UNION SELECT x.grantee FROM pg_language l, aclexplode(l.lanacl) x
  UNION SELECT w.fdwowner FROM pg_foreign_data_wrapper w
  UNION SELECT x.grantee FROM pg_foreign_data_wrapper w, aclexplode(w.fdwacl) x
  UNION SELECT s.srvowner FROM pg_foreign_server s
  UNION SELECT x.grantee FROM pg_foreign_server s, aclexplode(s.srvacl) x"""
PRIVILEGES_RECORDED = "privileges recorded"  # fingerprint_json's key of that row
# Read since v2: standalone composite types, languages, foreign-data wrappers and servers, and
# role memberships (GRANT role TO role: cluster-wide, as PostgreSQL keeps them). A fingerprint
# recorded before them is compared without them (``as_recorded``).
PRIVILEGES_V2 = "privileges recorded v2"
# Since v3 the memberships of the roles owning or granted on columns, functions, types,
# languages, foreign-data wrappers and servers are read too: a v2 fingerprint is compared
# without memberships (its set of roles was narrower; a membership it never read would seem added).
PRIVILEGES_V3 = "privileges recorded v3"
KINDS_V2 = ("composite type privileges", "language privileges", "foreign-data wrapper privileges",
            "foreign server privileges", "role membership")
PROPERTIES_V4 = "properties recorded v4"
KINDS_V4 = ("comment", "relation options", "trigger state", "sequence options")
PROPERTIES_V5 = "properties recorded v5"
# The objects whose comments v4 read (pg_identify_object's type names of pg_class, pg_proc,
# pg_type, pg_namespace and pg_constraint objects; "table column", "view column"... included).
COMMENTS_V4 = ("table ", "index ", "sequence ", "view ", "materialized view ", "composite type ", "foreign table ",
               "toast table ", "type ", "function ", "procedure ", "aggregate ", "schema ", "domain constraint ")
PRIVILEGE_KINDS = ("privileges", "table privileges", "column privileges", "function privileges",
                   "schema privileges", "type privileges", "default privileges", "database privileges", *KINDS_V2)
_PRIVILEGES = _PRIVILEGES.replace("{_HERE}", _HERE)
SCHEMA_FINGERPRINT = _FINGERPRINT_TEMPLATE.replace("{_PROPERTIES}", _PROPERTIES).replace("{_PRIVILEGES}", _PRIVILEGES).replace(
    "{_USER_SCHEMA}", _USER_SCHEMA).replace("{_EXCLUDED}", _EXCLUDED)
# The owners and ACLs alone (the same rows SCHEMA_FINGERPRINT has of them): recorded at the end
# of a run, so that undo knows which privileges the run changed and which changed since.
PRIVILEGES_FINGERPRINT = _PRIVILEGES.removeprefix("UNION ALL\n").replace(
    "{_USER_SCHEMA}", _USER_SCHEMA).replace("{_EXCLUDED}", _EXCLUDED)

# Migration tools' history tables: (table, the column naming each applied migration).
HISTORY_TABLES: Mapping[str, str] = {
    "supabase_migrations.schema_migrations": "version",
    "public.schema_migrations": "version",  # dbmate, Rails, golang-migrate
    "public.alembic_version": "version_num",
    "public._prisma_migrations": "migration_name",
    "public.flyway_schema_history": "version",
    "public.django_migrations": "app || '.' || name",
    "public.knex_migrations": "name",
}
# Which of HISTORY_TABLES exist, in one round trip (was one query per table).
TABLES_EXISTING = "SELECT t FROM unnest(%s::text[]) AS t WHERE to_regclass(t) IS NOT NULL"


class Fingerprint(Struct, frozen=True):
    """The catalog as ``{(kind, name): definition}`` and the rows of each history table found."""

    objects: dict[tuple[str, str], str]
    histories: dict[str, frozenset[str]]


class Change(Struct, frozen=True):
    """One difference between two fingerprints: an object or a history row added, removed or changed."""

    action: str  # added | removed | changed
    kind: str  # table, column, index, ..., or "history"
    name: str

    def describe(self) -> str:
        return f"{self.kind} {self.name} {self.action}"


def take(conn: psycopg.Connection[Any], *, histories: bool = True) -> Fingerprint:
    """Read the catalog and the history tables that exist (no locks beyond catalog reads);
    with ``histories=False`` the catalog only (``histories`` then empty): two round trips and
    a read of every history table fewer."""
    rows = conn.execute(SCHEMA_FINGERPRINT).fetchall()
    return from_rows(rows, _histories(conn) if histories else {})


def from_rows(rows: list[tuple[Any, ...]], histories: dict[str, frozenset[str]]) -> Fingerprint:
    """The Fingerprint of SCHEMA_FINGERPRINT's rows ((kind, name, definition)) and ``histories``."""
    return Fingerprint({(r[0], r[1]): r[2] for r in rows}, histories)


# The privilege kinds that belong to one object of the fingerprint, by the same name.
_OBJECT_PRIVILEGES = ("table privileges", "column privileges", "function privileges", "schema privileges",
                      "type privileges")


# Properties every relation, sequence or trigger has (v4): listed only when they changed.
_EVERY_OBJECTS = ("relation options", "sequence options", "trigger state")


def _names(fp: Fingerprint) -> set[str]:
    return {name for kind, name in fp.objects if kind not in PRIVILEGE_KINDS}


def without_privileges(fp: Fingerprint) -> Fingerprint:
    """``fp`` without its owners and ACLs: to compare with a fingerprint recorded before guard
    read them (one without PRIVILEGES_RECORDED)."""
    return Fingerprint({k: v for k, v in fp.objects.items() if k[0] not in PRIVILEGE_KINDS}, fp.histories)


def as_recorded(fp: Fingerprint, recorded: Iterable[str]) -> Fingerprint:
    """``fp`` with only what a fingerprint whose keys ("kind name") are ``recorded`` could hold:
    none of the properties read since v4 (comments, options, trigger states) when it predates them,
    only the comments v4 read (COMMENTS_V4) when it predates v5,
    no owners and ACLs when it read none, none of the kinds read since v2 when it predates them,
    no role memberships when it predates v3 (it read them for fewer roles)."""
    keys = set(recorded)
    if PROPERTIES_V4 in keys and PROPERTIES_V5 not in keys:  # v5: comments on every kind of object
        fp = Fingerprint({k: v for k, v in fp.objects.items() if k != ("properties", "recorded v5")
                          and (k[0] != "comment" or k[1].startswith(COMMENTS_V4))}, fp.histories)
    if PROPERTIES_V4 not in keys:  # read since v4: comments, relation options, trigger states...
        fp = Fingerprint({k: v for k, v in fp.objects.items() if k[0] not in KINDS_V4 and k[0] != "properties"},
                         fp.histories)
    if PRIVILEGES_RECORDED not in keys:
        return without_privileges(fp)
    dropped: set[str] = set()
    if PRIVILEGES_V2 not in keys:
        dropped = set(KINDS_V2)
    elif PRIVILEGES_V3 not in keys:
        dropped = {"role membership"}
    unread = {PRIVILEGES_V2, PRIVILEGES_V3} - keys
    if dropped or unread:
        return Fingerprint({k: v for k, v in fp.objects.items() if k[0] not in dropped and f"{k[0]} {k[1]}" not in unread},
                           fp.histories)
    return fp


def _histories(conn: psycopg.Connection[Any]) -> dict[str, frozenset[str]]:
    from psycopg import sql

    histories: dict[str, frozenset[str]] = {}
    existing = {r[0] for r in conn.execute(TABLES_EXISTING, (list(HISTORY_TABLES),)).fetchall()}
    for table, column in HISTORY_TABLES.items():
        if table not in existing:
            continue
        schema, name = table.split(".", 1)
        query = sql.SQL("SELECT ({column})::text FROM {table}").format(
            column=sql.SQL(column), table=sql.Identifier(schema, name)
        )
        try:
            histories[table] = frozenset(r[0] for r in conn.execute(query).fetchall())
        except Exception:  # noqa: BLE001 - a same-named table of another shape is not a history
            continue
    return histories


def diff(before: Fingerprint, after: Fingerprint) -> list[Change]:
    """What changed, objects first (sorted), then history rows added or removed. An object's
    owner and ACL are listed where the object is in both: an object added or removed is
    listed once, as itself."""
    changes: list[Change] = []
    in_both = _names(before) & _names(after)
    for key in sorted(set(before.objects) | set(after.objects)):
        kind, name = key
        if kind in _OBJECT_PRIVILEGES and name not in in_both:
            continue
        if kind in _EVERY_OBJECTS and (key not in before.objects or key not in after.objects):
            continue  # an object added or removed is listed as itself
        if key not in before.objects:
            changes.append(Change("added", kind, name))
        elif key not in after.objects:
            changes.append(Change("removed", kind, name))
        elif before.objects[key] != after.objects[key]:
            changes.append(Change("changed", kind, name))
    for table in sorted(set(before.histories) | set(after.histories)):
        old = before.histories.get(table, frozenset())
        new = after.histories.get(table, frozenset())
        for version in sorted(new - old):
            changes.append(Change("added", "history", f"{table}: {version}"))
        for version in sorted(old - new):
            changes.append(Change("removed", "history", f"{table}: {version}"))
    return changes


def applied_versions(before: Fingerprint, after: Fingerprint) -> list[str]:
    """History entries the wrapped tool added (its "committed versions")."""
    added: list[str] = []
    for table, rows in after.histories.items():
        added.extend(sorted(rows - before.histories.get(table, frozenset())))
    return added
