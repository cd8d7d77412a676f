"""What a destructive statement destroys, read with PostgreSQL's parser (pglast), and the
rewrites that make a DELETE or an UPDATE copy exactly the rows it destroys.

Names here are as the parser read them (unquoted identifiers folded to lower case, quoted ones
kept): the Protector then asks the server which relation they are (``to_regclass``), with the
search_path of that point of the transaction.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct
from psycopg import sql


class Target(Struct, frozen=True):
    """What one destructive statement destroys."""

    kind: str  # table | column | rows | schema
    relation: str  # as written, each part quoted (server resolves it)
    column: str | None = None
    updated: tuple[str, ...] = ()
    dropped: bool = False
    schema_name: str | None = None
    statement: str = ""  # DeleteStmt | UpdateStmt | MergeStmt | TruncateStmt | DropStmt | AlterTableStmt | InsertStmt
    cascade: bool = False  # TRUNCATE ... CASCADE: the tables whose foreign keys point at it go too
    retyped: bool = False  # ALTER COLUMN ... TYPE (the column stays, with another type)
    only: bool = False  # ONLY: not the tables that inherit from it


def _writing_ctes(node: Any) -> list[Target]:
    """The tables a SELECT's data-modifying WITH queries (DELETE, UPDATE, MERGE, an upsert)
    change: each copied whole, as for MERGE (the WITH query shares the statement's snapshot,
    queries-with.html, so no rewrite of its own is made). A plain INSERT changes no row."""
    from pglast import ast, enums

    found = []
    for cte in getattr(node.withClause, "ctes", None) or ():
        query = cte.ctequery
        if isinstance(query, ast.SelectStmt) and query.withClause is not None:
            found.extend(_writing_ctes(query))
            continue
        conflict = getattr(query, "onConflictClause", None) if isinstance(query, ast.InsertStmt) else None
        if isinstance(query, (ast.DeleteStmt, ast.UpdateStmt, ast.MergeStmt)) or (
                conflict is not None and conflict.action == enums.OnConflictAction.ONCONFLICT_UPDATE):
            found.append(Target("table", _relation(query.relation), statement="MergeStmt",
                                only=_only(query.relation)))
    return found


def ident(name: str) -> str:
    """``name`` quoted as an SQL identifier when it needs to be (psycopg's quoting)."""
    return sql.Identifier(name).as_string(None)


def targets(statement: str) -> list[Target]:
    """The tables, columns or rows ``statement`` destroys (empty when none or unknown)."""
    import pglast

    try:
        parsed = pglast.parse_sql(statement)
    except pglast.parser.ParseError:
        return []
    found: list[Target] = []
    for raw in parsed:
        own = _of(raw.stmt)
        if type(raw.stmt).__name__ in ("InsertStmt", "UpdateStmt", "DeleteStmt", "MergeStmt") and \
                getattr(raw.stmt, "withClause", None) is not None:
            ctes = _writing_ctes(raw.stmt)  # WITH d AS (DELETE ...) INSERT INTO archive ...
            whole = {t.relation for t in ctes}
            # the statement's own table changed by a WITH query too: copied whole, once (a row copy
            # beside a whole one would put its rows back twice)
            own = [Target("table", t.relation, statement="MergeStmt", only=t.only)
                   if t.kind == "rows" and t.relation in whole else t for t in own]
            found.extend(ctes)
        found.extend(own)
    return found


def _of(node: Any) -> list[Target]:
    from pglast import ast, enums

    name = type(node).__name__
    if isinstance(node, ast.DropStmt):
        if node.removeType == enums.ObjectType.OBJECT_TABLE:
            return [Target("table", _qualified([n.sval for n in names]), dropped=True, statement=name)
                    for names in node.objects or ()]
        if node.removeType == enums.ObjectType.OBJECT_SCHEMA:
            return [Target("schema", ident(n.sval), schema_name=n.sval, dropped=True, statement=name)
                    for n in node.objects or ()]
        return []
    if isinstance(node, ast.TruncateStmt):
        cascade = node.behavior == enums.DropBehavior.DROP_CASCADE
        return [Target("table", _relation(rel), statement=name, cascade=cascade, only=not rel.inh)
                for rel in node.relations or ()]
    if isinstance(node, ast.DeleteStmt):
        return [Target("rows", _relation(node.relation), statement=name, only=_only(node.relation))]
    if isinstance(node, ast.UpdateStmt):
        columns = tuple(dict.fromkeys(t.name for t in node.targetList or () if t.name))
        return [Target("rows", _relation(node.relation), updated=columns, statement=name, only=_only(node.relation))]
    if isinstance(node, ast.MergeStmt):
        return [Target("table", _relation(node.relation), statement=name, only=_only(node.relation))]
    if isinstance(node, ast.SelectStmt):
        return _writing_ctes(node)
    conflict = getattr(node, "onConflictClause", None) if isinstance(node, ast.InsertStmt) else None
    if conflict is not None and conflict.action == enums.OnConflictAction.ONCONFLICT_UPDATE:  # an upsert
        return [Target("table", _relation(node.relation), statement=name)]
    if isinstance(node, ast.AlterTableStmt) and node.objtype == enums.ObjectType.OBJECT_TABLE:
        rel = _relation(node.relation)
        return [Target("column", rel, column=cmd.name, statement=name,
                       retyped=cmd.subtype == enums.AlterTableType.AT_AlterColumnType) for cmd in node.cmds or ()
                if cmd.subtype in (enums.AlterTableType.AT_DropColumn, enums.AlterTableType.AT_AlterColumnType)]
    return []


def _qualified(parts: list[str]) -> str:
    return ".".join(ident(p) for p in parts)


def _only(rel: Any) -> bool:
    """``ONLY rel``: not the tables that inherit from it."""
    return not rel.inh


def _relation(rel: Any) -> str:
    return _qualified([p for p in (rel.schemaname, rel.relname) if p])


def _ref(rel: Any) -> str:
    """How the statement's own clauses name its target: the alias, else the table name."""
    return str(rel.alias.aliasname if rel.alias is not None else rel.relname)


def _single(statement: str, kind: str) -> Any:
    import pglast

    parsed = pglast.parse_sql(statement)
    if len(parsed) != 1 or type(parsed[0].stmt).__name__ != kind:
        return None
    return parsed[0].stmt


def _wrap(node: Any, copy: str, copy_name: str, *, count: bool = True) -> str:
    """``node`` (a DELETE or UPDATE returning the destroyed rows) as one statement that also
    stores them in ``copy`` and records their number in guard.copies. The statement's own
    WITH list moves up front: data-modifying WITH queries must be at the top level.
    ``count`` False: only the copy (guard counts its rows afterwards, as itself)."""
    from pglast.stream import RawStream

    head = "WITH "
    if node.withClause is not None:
        own = RawStream()(node.withClause)
        recursive = "RECURSIVE " if node.withClause.recursive and not own.startswith("RECURSIVE") else ""
        head = f"WITH {recursive}{own}, "
        node.withClause = None
    literal = sql.Literal(copy_name).as_string(None)
    if not count:
        return f"{head}guard_destroyed AS ({RawStream()(node)}) INSERT INTO {copy} SELECT * FROM guard_destroyed"  # noqa: S608
    # The user's own statement, deparsed; names quoted, the value a literal.
    return (
        f"{head}guard_destroyed AS ({RawStream()(node)}), "  # noqa: S608
        f"guard_copied AS (INSERT INTO {copy} SELECT * FROM guard_destroyed RETURNING 1) "
        f"UPDATE guard.copies SET rows = (SELECT count(*) FROM guard_copied) WHERE copy = {literal}"
    )


def capture_delete(statement: str, copy: str, copy_name: str, *, count: bool = True) -> str | None:
    """The DELETE ``statement`` rewritten to copy exactly the rows it deletes into ``copy``
    (``DELETE ... RETURNING``: the rows the statement itself removed, whatever its condition
    evaluates to: random(), LIMIT without order, now(), sequences). None when it is not one
    plain DELETE."""
    from pglast import ast

    node = _single(statement, "DeleteStmt")
    if node is None:
        return None
    star = ast.ColumnRef(fields=(ast.String(sval=_ref(node.relation)), ast.A_Star()))
    node.returningClause = ast.ReturningClause(exprs=(ast.ResTarget(val=star),))
    return _wrap(node, copy, copy_name, count=count)


def capture_update(
    statement: str, copy: str, copy_name: str, canonical: str, *, count: bool = True, new_key: list[str] | None = None,
) -> str | None:
    """The UPDATE ``statement`` rewritten to copy the old values of exactly the rows it
    changes. PostgreSQL before 18 returns only new values, so the statement joins its target
    to the same table read with the statement's own snapshot, row for row (tableoid, ctid: a
    TID scan per row), and returns that row. ``canonical``: the target's regclass text;
    ``new_key``: primary key columns (quoted) whose new values are returned too, after it."""
    from pglast import ast

    node = _single(statement, "UpdateStmt")
    if node is None:
        return None
    ref = ident(_ref(node.relation))
    new_values = "".join(f", {ref}.{k} AS guard_new_{i}" for i, k in enumerate(new_key or ()))
    returning = _join_old_rows(node, ref, canonical, f"(guard_prev.guard_row).*{new_values}",
                               ", guard_p AS guard_row")
    node.returningClause = ast.ReturningClause(exprs=returning)
    return _wrap(node, copy, copy_name, count=count)


def _join_old_rows(node: Any, ref: str, canonical: str, select: str, extra: str = "") -> Any:
    """Join the UpdateStmt ``node`` (target ``ref``) to its table read with the statement's own
    snapshot, ``canonical`` (regclass text) as ``guard_prev``, row for row by (tableoid, ctid);
    returns the target list of ``select`` over it (what the statement should return)."""
    import pglast
    from pglast import ast, enums

    # Parsed, not run: names quoted by psycopg / regclass.
    helper: Any = pglast.parse_sql(
        f"SELECT {select} FROM (SELECT tableoid AS guard_tableoid, ctid AS guard_ctid{extra} "  # noqa: S608
        f"FROM {canonical} AS guard_p) AS guard_prev "
        f"WHERE {ref}.ctid = guard_prev.guard_ctid AND {ref}.tableoid = guard_prev.guard_tableoid"
    )[0].stmt
    node.fromClause = (*(node.fromClause or ()), *helper.fromClause)
    node.whereClause = (
        helper.whereClause if node.whereClause is None
        else ast.BoolExpr(boolop=enums.BoolExprType.AND_EXPR, args=(node.whereClause, helper.whereClause))
    )
    return helper.targetList


class Member(Struct, frozen=True):
    """One table of an inheritance family a DELETE or UPDATE of its parent reaches."""

    oid: int
    source: str  # schema-qualified, quoted: read with ONLY
    columns: str  # the copy's select list (guard.protect.COPY_COLUMNS)
    copy: str  # the copy, schema-qualified and quoted
    copy_name: str  # as registered in guard.copies


def capture_family(statement: str, members: list[Member], canonical: str, *, update: bool,
                   count: bool = True) -> str | None:
    """The DELETE or UPDATE ``statement`` of an inheritance parent (``canonical``, without
    ONLY: it reaches every table that inherits from it) rewritten to copy what it destroys
    table by table, whole rows with the child's own columns, so restore SQL puts each row back
    into its own table. The statement returns the (tableoid, ctid) it removed or changed (for
    UPDATE those of the old row version, joined as capture_update does); every copy reads its
    table with the statement's own snapshot, which still holds those versions (WITH queries
    "cannot see one another's effects on the target tables", queries.html#QUERIES-WITH-MODIFYING).
    None when it is not one plain DELETE/UPDATE."""
    import pglast
    from pglast import ast

    node = _single(statement, "UpdateStmt" if update else "DeleteStmt")
    if node is None:
        return None
    ref = ident(_ref(node.relation))
    if update:
        returning = _join_old_rows(node, ref, canonical, "guard_prev.guard_tableoid, guard_prev.guard_ctid")
    else:
        own: Any = pglast.parse_sql(f"SELECT {ref}.tableoid AS guard_tableoid, {ref}.ctid AS guard_ctid")[0].stmt
        returning = own.targetList
    node.returningClause = ast.ReturningClause(exprs=returning)
    return _wrap_family(node, members, count=count)


def _wrap_family(node: Any, members: list[Member], *, count: bool) -> str:
    from pglast.stream import RawStream

    head = "WITH "
    if node.withClause is not None:
        own = RawStream()(node.withClause)
        recursive = "RECURSIVE " if node.withClause.recursive and not own.startswith("RECURSIVE") else ""
        head = f"WITH {recursive}{own}, "
        node.withClause = None
    parts = [f"guard_destroyed AS ({RawStream()(node)})"]
    # Names: psycopg-quoted copies, regclass text; values: oids (integers) and literals.
    for i, m in enumerate(members):
        parts.append(
            f"guard_copied_{i} AS (INSERT INTO {m.copy} SELECT {m.columns} FROM ONLY {m.source} AS guard_t "  # noqa: S608
            f"JOIN guard_destroyed AS guard_d ON guard_d.guard_tableoid = {int(m.oid)} "
            f"AND guard_t.ctid = guard_d.guard_ctid RETURNING 1)")
    if count:
        cases = " ".join(f"WHEN {sql.Literal(m.copy_name).as_string(None)} THEN (SELECT count(*) FROM guard_copied_{i})"  # noqa: S608
                         for i, m in enumerate(members))
        names = ", ".join(sql.Literal(m.copy_name).as_string(None) for m in members)
        tail = f"UPDATE guard.copies SET rows = CASE copy {cases} END WHERE copy IN ({names})"  # noqa: S608
    else:
        tail = " UNION ALL ".join(f"SELECT count(*) FROM guard_copied_{i}" for i in range(len(members)))  # noqa: S608
    return head + ", ".join(parts) + " " + tail
