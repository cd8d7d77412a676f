"""SQL that recreates a table a statement drops: schema, column types it needs, sequences,
columns with their defaults, constraints, indexes, row level security and its policies,
grants, owner, triggers and comments, read from the catalog (PostgreSQL's own ``pg_get_*``
deparsers) just before the drop, inside the same transaction.

What it cannot recreate it names in a comment of the restore SQL: views and other objects that
a CASCADE drops with the table, column-level grants, types other than enums.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

if TYPE_CHECKING:
    import psycopg

RELATION = """
SELECT quote_ident(n.nspname), quote_ident(n.nspname) || '.' || quote_ident(c.relname), c.relrowsecurity, c.relforcerowsecurity,
       pg_get_userbyid(c.relowner), obj_description(c.oid, 'pg_class'), c.relkind
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = %s
"""
# A partition's place: its partitioned parent and its bound (DROP TABLE of a partition).
PARTITION_OF = """
SELECT i.inhparent::regclass::text, pg_get_expr(c.relpartbound, c.oid)
  FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.oid = %s AND c.relispartition
"""
# Columns in order: name, type, collation when not the type's default, default expression,
# not null, identity kind, generated expression.
COLUMNS = """
SELECT quote_ident(a.attname), format_type(a.atttypid, a.atttypmod),
       CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(co.collname) END,
       pg_get_expr(d.adbin, d.adrelid), a.attnotnull, a.attidentity, a.attgenerated
  FROM pg_attribute a
  JOIN pg_type t ON t.oid = a.atttypid
  LEFT JOIN pg_collation co ON co.oid = a.attcollation
  LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
 ORDER BY a.attnum
"""
# Enum types of the columns (recreated when missing); other user types are named as needed.
USER_TYPES = """
SELECT DISTINCT quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typtype,
       (SELECT string_agg(quote_literal(e.enumlabel), ', ' ORDER BY e.enumsortorder)
          FROM pg_enum e WHERE e.enumtypid = t.oid)
  FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
  JOIN pg_namespace n ON n.oid = t.typnamespace
 WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped
   AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""
# Sequences owned by a column (serial): dropped with the table, so recreated with its value.
OWNED_SEQUENCES = """
SELECT quote_ident(sn.nspname) || '.' || quote_ident(s.relname), quote_ident(a.attname), format_type(q.seqtypid, NULL), q.seqstart,
       q.seqincrement, q.seqmin, q.seqmax, q.seqcycle, pg_sequence_last_value(s.oid), true, d.deptype
  FROM pg_depend d
  JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  JOIN pg_namespace sn ON sn.oid = s.relnamespace
  JOIN pg_sequence q ON q.seqrelid = s.oid
  JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
 WHERE d.refobjid = %s AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i')
"""
CONSTRAINTS = """
SELECT quote_ident(conname), pg_get_constraintdef(oid), contype FROM pg_constraint
 WHERE conrelid = %s AND contype IN ('p', 'u', 'c', 'x', 'f') ORDER BY contype <> 'p', conname
"""
# Foreign keys of other tables that point at this one: DROP ... CASCADE drops them.
REFERENCING = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(c.relname), quote_ident(k.conname),
       pg_get_constraintdef(k.oid)
  FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE k.confrelid = %s AND k.conrelid <> %s AND k.contype = 'f'
"""
INDEXES = """
SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
 WHERE i.indrelid = %s
   AND NOT EXISTS (SELECT FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
"""
POLICIES = """
SELECT quote_ident(p.polname), p.polpermissive,
       CASE p.polcmd WHEN 'r' THEN 'SELECT' WHEN 'a' THEN 'INSERT' WHEN 'w' THEN 'UPDATE'
                     WHEN 'd' THEN 'DELETE' ELSE 'ALL' END,
       (SELECT string_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(r)) END, ', ')
          FROM unnest(p.polroles) r),
       pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid)
  FROM pg_policy p WHERE p.polrelid = %s ORDER BY p.polname
"""
GRANTS = """
SELECT CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(pg_get_userbyid(a.grantee)) END,
       a.privilege_type, a.is_grantable
  FROM pg_class c, aclexplode(c.relacl) a
 WHERE c.oid = %s AND a.grantee <> c.relowner
"""
COLUMN_GRANTS = "SELECT count(*) FROM pg_attribute WHERE attrelid = %s AND attacl IS NOT NULL"
TRIGGERS = "SELECT pg_get_triggerdef(oid) FROM pg_trigger WHERE tgrelid = %s AND NOT tgisinternal"
DEPENDENT_VIEWS = """
SELECT DISTINCT v.oid::regclass::text FROM pg_depend d
  JOIN pg_rewrite r ON r.oid = d.objid
  JOIN pg_class v ON v.oid = r.ev_class
 WHERE d.refobjid = %s AND d.classid = 'pg_rewrite'::regclass AND v.oid <> %s
"""


class Definition(Struct):
    """The SQL around a copy's INSERT: ``before`` it (schema, types, sequences, table), ``after``
    it (constraints, indexes, RLS, grants...), foreign keys (``references``, after every table
    of a schema is back) and what ``cannot`` be recreated."""

    name: str  # schema-qualified, quoted as needed
    before: list[str] = field(default_factory=list)
    after: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    cannot: list[str] = field(default_factory=list)


def definition(conn: psycopg.Connection[Any], oid: int) -> Definition:
    """How to recreate table ``oid`` as it is now (call it before the drop)."""
    row = conn.execute(RELATION, (oid,)).fetchone()
    if row is None:
        raise LookupError(f"relation {oid} does not exist")
    schema, name, rls, force, owner, comment, relkind = row
    out = Definition(name)
    out.before.append(f"CREATE SCHEMA IF NOT EXISTS {schema};")
    _types(conn, oid, out)
    sequences = conn.execute(OWNED_SEQUENCES, (oid,)).fetchall()
    for seq, _col, typ, start, inc, low, high, cycle, _last, _called, deptype in sequences:
        if deptype == "a":  # serial: a sequence the column owns (identity ones come with the table)
            out.before.append(
                f"CREATE SEQUENCE IF NOT EXISTS {seq} AS {typ} INCREMENT {inc} MINVALUE {low} "
                f"MAXVALUE {high} START {start}{' CYCLE' if cycle else ''};")
    columns = [_column(c) for c in conn.execute(COLUMNS, (oid,)).fetchall()]
    partitioned = " -- was partitioned: recreated as a plain table" if relkind == "p" else ""
    out.before.append(f"CREATE TABLE IF NOT EXISTS {name} (\n    " + ",\n    ".join(columns) + f"\n);{partitioned}")
    for seq, col, _typ, _start, _inc, _low, _high, _cycle, last, called, deptype in sequences:
        if deptype == "a":
            out.after.append(f"ALTER SEQUENCE {seq} OWNED BY {name}.{col};")
            target = f"'{seq}'"
        else:
            target = f"pg_get_serial_sequence('{name}', '{col}')"
        if last is not None:
            out.after.append(f"SELECT setval({target}, {last}, {'true' if called else 'false'});")
    for conname, condef, contype in conn.execute(CONSTRAINTS, (oid,)).fetchall():
        (out.references if contype == "f" else out.after).append(
            f"ALTER TABLE {name} ADD CONSTRAINT {conname} {condef};")
    for other, conname, condef in conn.execute(REFERENCING, (oid, oid)).fetchall():
        out.references.append(f"ALTER TABLE {other} ADD CONSTRAINT {conname} {condef};")
    out.after.extend(f"{index};" for (index,) in conn.execute(INDEXES, (oid,)).fetchall())
    _security(conn, oid, name, bool(rls), bool(force), owner, out)
    out.after.extend(f"{trigger};" for (trigger,) in conn.execute(TRIGGERS, (oid,)).fetchall())
    if comment is not None:
        from psycopg import sql

        out.after.append(f"COMMENT ON TABLE {name} IS {sql.Literal(comment).as_string(None)};")
    for parent, bound in conn.execute(PARTITION_OF, (oid,)).fetchall():
        out.after.append(f"ALTER TABLE {parent} ATTACH PARTITION {name} {bound};")
    for (view,) in conn.execute(DEPENDENT_VIEWS, (oid, oid)).fetchall():
        out.cannot.append(f"view {view} (depends on {name}; a CASCADE drops it): recreate it from your migrations")
    return out


def _column(row: tuple[Any, ...]) -> str:
    name, typ, collation, default, notnull, identity, generated = row
    parts = [name, typ]
    if collation:
        parts.append(f"COLLATE {collation}")
    if generated == "s":
        parts.append(f"GENERATED ALWAYS AS ({default}) STORED")
    elif identity:
        parts.append(f"GENERATED {'ALWAYS' if identity == 'a' else 'BY DEFAULT'} AS IDENTITY")
    elif default is not None:
        parts.append(f"DEFAULT {default}")
    if notnull:
        parts.append("NOT NULL")
    return " ".join(parts)


def _types(conn: psycopg.Connection[Any], oid: int, out: Definition) -> None:
    from psycopg import sql

    for typname, typtype, labels in conn.execute(USER_TYPES, (oid,)).fetchall():
        if typtype == "e":
            literal = sql.Literal(typname).as_string(None)
            out.before.append(
                f"DO $guard$ BEGIN IF to_regtype({literal}) IS NULL THEN "
                f"CREATE TYPE {typname} AS ENUM ({labels or ''}); END IF; END $guard$;")
        elif typtype != "b":
            out.cannot.append(f"type {typname} (used by {out.name}): recreate it first if it was dropped too")


def _security(
    conn: psycopg.Connection[Any], oid: int, name: str, rls: bool, force: bool, owner: str, out: Definition
) -> None:
    from psycopg import sql

    out.after.append(f"ALTER TABLE {name} OWNER TO {sql.Identifier(owner).as_string(None)};")
    if rls:
        out.after.append(f"ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;")
    if force:
        out.after.append(f"ALTER TABLE {name} FORCE ROW LEVEL SECURITY;")
    for pol, permissive, cmd, roles, qual, check in conn.execute(POLICIES, (oid,)).fetchall():
        text = f"CREATE POLICY {pol} ON {name} AS {'PERMISSIVE' if permissive else 'RESTRICTIVE'} FOR {cmd}"
        text += f" TO {roles or 'PUBLIC'}"
        if qual is not None:
            text += f" USING ({qual})"
        if check is not None:
            text += f" WITH CHECK ({check})"
        out.after.append(text + ";")
    for grantee, privilege, grantable in conn.execute(GRANTS, (oid,)).fetchall():
        option = " WITH GRANT OPTION" if grantable else ""
        out.after.append(f"GRANT {privilege} ON TABLE {name} TO {grantee}{option};")
    columns = conn.execute(COLUMN_GRANTS, (oid,)).fetchone()
    if columns and columns[0]:
        out.cannot.append(f"column-level grants of {name}: grant them again by hand")
