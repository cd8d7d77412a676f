"""Extensions in a shadow dry run: which a migration may create there, and what stays unchecked.

A migration's ``CREATE EXTENSION`` runs as the dry-run role, which (as `postgres` on Supabase)
is not a superuser: trusted extensions it creates itself; a few untrusted ones that only read
the database (ALLOWED_UNTRUSTED) guard installs beforehand as the server's superuser, as
Supabase's supautils would. An extension the server does not have (pg_graphql, pg_net,
pg_cron, pgsodium...) or one that reaches outside the database (dblink, file_fdw...) is left
out, and so are the statements that use it (found by the names it defines, EXTENSION_NAMES):
each is a limit of the dry run, listed in the report, never a failure.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

if TYPE_CHECKING:
    import psycopg

    from guard.migrations.files import MigrationFile, Statement
    from guard.shadow_roles import RoleStatements

# Untrusted extensions guard installs for the dry run: they read the database only, or (the
# spi trigger functions moddatetime, autoinc, insert_username, refint, which Supabase offers and
# its docs use for updated_at columns) change only the row being written.
ALLOWED_UNTRUSTED = frozenset({"pg_stat_statements", "pgstattuple", "pg_buffercache", "pgrowlocks",
                               "pg_visibility", "amcheck", "pageinspect", "pg_walinspect",
                               "pg_freespacemap", "pg_prewarm", "sslinfo",
                               "moddatetime", "autoinc", "insert_username", "refint"})
# What statements using an extension name, beyond its own schema ("cron." for pg_cron...).
# A schema an extension creates is named qualified ("cron.job") or on its own ("GRANT USAGE ON
# SCHEMA cron", "IN SCHEMA cron"): both are patterns of its names.
EXTENSION_NAMES: dict[str, tuple[str, ...]] = {
    "pg_cron": (r"\bcron\s*\.", r'\bschema\s+"?cron\b'),
    "pg_net": (r"\bnet\s*\.", r'\bschema\s+"?net\b'),
    "http": (r"\bhttp_(get|post|put|patch|delete|head)\s*\(", r"\bhttp\s*\(\s*\("),
    "pgsodium": (r"\bpgsodium\s*\.", r'\bschema\s+"?pgsodium\b'),
    "pg_graphql": (r"\bgraphql\s*\.",),
    "pgjwt": (r"\b(extensions\s*\.\s*)?(sign|verify|url_encode|url_decode)\s*\(",),
    "vector": (r"\b(vector|halfvec|sparsevec)\b", r"\b(hnsw|ivfflat)\b"),
    "postgis": (r"\b(geometry|geography)\b", r"\bst_\w+\s*\(", r"\busing\s+gist\b"),
    "pg_jsonschema": (r"\bjsonb?_matches_schema\s*\(",),
    "pg_hashids": (r"\bid_(en|de)code\w*\s*\(",),
    "pgroonga": (r"\bpgroonga\w*",),
    "wrappers": (r"\bforeign\s+data\s+wrapper\b", r"\bserver\b.*\bforeign\b"),
    "pgmq": (r"\bpgmq\s*\.", r'\bschema\s+"?pgmq\b'),
    "timescaledb": (r"\bcreate_hypertable\s*\(", r"\btimescaledb\b"),
}
# Types an extension defines: in a table or function the shadow cannot create as written, they
# stand in as bytea, so the table exists for the statements after it (its columns unchecked).
EXTENSION_TYPES: dict[str, frozenset[str]] = {
    "vector": frozenset({"vector", "halfvec", "sparsevec"}),
    "postgis": frozenset({"geometry", "geography", "box2d", "box3d"}),
}
STAND_IN_KINDS = frozenset({"CreateStmt", "AlterTableStmt", "CreateFunctionStmt"})
# Schemas every extension may share: a reference to them says nothing about which is used.
SHARED_SCHEMAS = frozenset({"public", "extensions", "pg_catalog"})
EXTENSIONS = """
SELECT a.name, a.installed_version IS NOT NULL,
       coalesce(bool_or(v.trusted) FILTER (WHERE v.version = a.default_version), false)
  FROM pg_available_extensions a
  LEFT JOIN pg_available_extension_versions v ON v.name = a.name
 GROUP BY a.name, a.installed_version
"""
SCHEMA_EXISTS = "SELECT 1 FROM pg_namespace WHERE nspname = %s"
FUNCTION_KINDS = frozenset({"CreateFunctionStmt"})


def prepare(
    admin: psycopg.Connection[Any],
    files: Sequence[MigrationFile],
    *,
    display: Callable[[MigrationFile], str],
    roles: RoleStatements | None = None,
) -> tuple[list[MigrationFile], list[str]]:
    """``files`` as the dry run should apply them, and the limits that implies (one line each:
    "file:line: not checked: needs pg_graphql, which this shadow lacks").

    ``admin`` is a superuser session on the shadow database (never the target): the allowed
    untrusted extensions the files create are installed through it first. ``roles`` rewrites
    the statements about roles the dry-run role may not run as written (RoleStatements.rewrite).
    """
    from psycopg import sql

    known = {row[0]: (bool(row[1]), bool(row[2])) for row in admin.execute(EXTENSIONS).fetchall()}
    missing: dict[str, list[re.Pattern[str]]] = {}
    limits: list[str] = []
    prepared: list[MigrationFile] = []
    for file in files:
        kept: list[Statement] = []
        for statement in file.statements:
            where = f"{display(file)}:{statement.line}"
            if statement.kind == "CreateExtensionStmt":
                name, schema = _extension(statement.sql)
                verdict = _classify(name, known)
                if verdict == "keep":
                    kept.append(statement)
                    continue
                if verdict == "install" and (schema is None or _schema_exists(admin, schema)):
                    # Without WITH SCHEMA, where the server puts it: the first schema of the
                    # search_path, as for the migration's own role.
                    admin.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}{}").format(
                        sql.Identifier(name),
                        sql.SQL("") if schema is None else sql.SQL(" WITH SCHEMA {}").format(sql.Identifier(schema))))
                    known[name] = (True, False)
                    continue
                why = ("which this shadow lacks" if verdict == "missing"
                       else "which the shadow does not install (it reaches outside the database)")
                limits.append(f"{where}: not checked: needs {name}, {why}")
                missing[name] = _patterns(name, schema)
                continue
            if roles is not None:
                notes, text = roles.rewrite(statement.kind, statement.sql)
                limits.extend(f"{where}: {note}" for note in notes)
                if text is None:
                    continue
                statement = statement if text == statement.sql else replace(statement, sql=text)
            user = _uses(statement.sql, missing)
            if user is not None and statement.kind in STAND_IN_KINDS and user in EXTENSION_TYPES:
                text = _stand_in(statement.sql, EXTENSION_TYPES[user])
                if text is not None and _uses(text, missing) is None:
                    limits.append(f"{where}: not checked: {user}'s types (bytea stands in for them)")
                    if statement.kind in FUNCTION_KINDS:
                        text = "SET LOCAL check_function_bodies = off; " + text
                    statement = replace(statement, sql=text)
                    user = None
            if user is None:
                kept.append(statement)
            elif statement.kind in FUNCTION_KINDS:
                # Kept, but its body is not checked against objects the shadow lacks.
                limits.append(f"{where}: body not checked: uses {user}, which this shadow lacks")
                kept.append(replace(statement, sql="SET LOCAL check_function_bodies = off; " + statement.sql))
            else:
                limits.append(f"{where}: not checked: uses {user}, which this shadow lacks")
        prepared.append(replace(file, statements=tuple(kept)))
    return prepared, limits


def _extension(text: str) -> tuple[str, str | None]:
    """The extension's name and its WITH SCHEMA, from a CREATE EXTENSION statement."""
    import pglast

    node: Any = pglast.parse_sql(text)[0].stmt
    schema = None
    for option in node.options or ():
        if option.defname == "schema":
            schema = option.arg.sval
    return str(node.extname), schema


def _stand_in(text: str, types: frozenset[str]) -> str | None:
    """``text`` with each of ``types`` replaced by bytea, or None when it cannot be rewritten."""
    import pglast
    from pglast import ast
    from pglast.stream import RawStream
    from pglast.visitors import Visitor

    class StandIn(Visitor):
        def visit_TypeName(self, _ancestors: Any, node: Any) -> Any:
            names = [getattr(n, "sval", "") for n in node.names or ()]
            if names and names[-1].lower() in types:
                return ast.TypeName(names=(ast.String("bytea"),), typemod=-1, arrayBounds=node.arrayBounds)
            return None

    try:
        root = pglast.parse_sql(text)
        StandIn()(root)
        rewritten: str = RawStream()(root)
    except Exception:  # noqa: BLE001 - a statement pglast cannot print: left out instead
        return None
    return rewritten


def _classify(name: str, known: dict[str, tuple[bool, bool]]) -> str:
    """keep (the role can create it, or it is there), install (guard does), missing, refused."""
    if name not in known:
        return "missing"
    installed, trusted = known[name]
    if installed or trusted:
        return "keep"
    return "install" if name in ALLOWED_UNTRUSTED else "refused"


def _schema_exists(admin: psycopg.Connection[Any], schema: str) -> bool:
    return admin.execute(SCHEMA_EXISTS, (schema,)).fetchone() is not None


def _patterns(name: str, schema: str | None) -> list[re.Pattern[str]]:
    found = [re.compile(p, re.IGNORECASE) for p in EXTENSION_NAMES.get(name, ())]
    found.append(re.compile(rf'\bextension\s+("{re.escape(name)}"|{re.escape(name)}\b)', re.IGNORECASE))
    if schema and schema.lower() not in SHARED_SCHEMAS:
        quoted = re.escape(schema)
        found.append(re.compile(rf'(\b{quoted}|"{quoted}")\s*\.', re.IGNORECASE))
        found.append(re.compile(rf'\bschema\s+("{quoted}"|{quoted}\b)', re.IGNORECASE))
    return found


def _uses(text: str, missing: dict[str, list[re.Pattern[str]]]) -> str | None:
    """The first missing extension ``text`` names, or None."""
    for name, patterns in missing.items():
        if any(p.search(text) for p in patterns):
            return name
    return None
