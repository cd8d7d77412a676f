"""The schema the migration set itself declares: the lint's catalog when no database is at hand.

The files before the ones linted (already applied, or simply earlier in the folder) created the
tables, columns, constraints, indexes, domains and functions the later files alter. Read with
PostgreSQL's own parser, they answer some of the questions guard.lint.catalog.PgCatalog answers
from pg_catalog, e.g. "is there a validated CHECK (note IS NOT NULL) on public.items_checked"
(then SET NOT NULL skips its scan, PostgreSQL 12+: tablecmds.c NotNullImpliedByRelConstraints),
"what type does public.items.code have" (varchar(20) -> varchar(50) keeps the stored values:
ATColumnChangeRequiresRewrite), "is public.positive_qty a domain with a CHECK" (ADD COLUMN of
it checks every row: ATExecAddColumn, DomainHasConstraints).

Only what the files say for certain is answered; anything else is None (unknown), and the rules
keep their conservative verdict. What the files cannot tell: objects made by hand or by
extensions, and a database where someone changed them since (a database at hand answers then).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from guard.lint.checks import check_columns, check_name

if TYPE_CHECKING:
    from guard.lint.partition import PartitionFacts
    from guard.migrations.files import Statement

LEARNED = frozenset({"_CreateStmt", "_AlterTableStmt", "_IndexStmt", "_CreateDomainStmt", "_AlterDomainStmt",
                     "_CreateFunctionStmt", "_DropStmt", "_DoStmt", "_RenameStmt", "_VariableSetStmt",
                     "_AlterFunctionStmt", "_CreatePolicyStmt", "_CreateSeqStmt", "_AlterSeqStmt"})

# Type names as pg_type spells them (the parser already maps int, integer, varchar, ...).
_ALIASES = {"int": "int4", "integer": "int4", "smallint": "int2", "bigint": "int8", "boolean": "bool",
            "decimal": "numeric", "real": "float4", "double precision": "float8", "char": "bpchar",
            "character varying": "varchar", "serial": "int4", "bigserial": "int8", "smallserial": "int2",
            "serial4": "int4", "serial8": "int8", "serial2": "int2"}
# pg_cast rows with castmethod 'b' (binary coercible) between common built-in types.
_BINARY = frozenset({("varchar", "text"), ("text", "varchar"), ("cidr", "inet"), ("xml", "text"),
                     ("bpchar", "varchar")})
# Built-in VOLATILE functions defaults call (pg_proc.provolatile 'v'): a function of the same
# name declared elsewhere does not make an unqualified call to one of these stable.
BUILTIN_VOLATILE = frozenset({"random", "gen_random_uuid", "clock_timestamp", "timeofday", "nextval", "setval",
                              "uuid_generate_v4", "uuid_generate_v1", "txid_current", "random_normal", "currval",
                              "lastval", "pg_current_xact_id", "setseed"})
_NEXTVAL = re.compile(r"nextval\s*\(\s*'((?:[^']|'')+)'", re.I)
_KEY_PART = re.compile(r'"((?:[^"]|"")*)"|([^.]+)')


def _split(key: str) -> tuple[str, str]:
    """(schema, name) of a quoted, possibly qualified name; an unqualified one is in public."""
    parts = [m.group(1).replace('""', '"') if m.group(1) is not None else m.group(2) for m in _KEY_PART.finditer(key)]
    return ("public", parts[-1]) if len(parts) < 2 else (parts[-2], parts[-1])


def _rel(rv: Any, schema: str = "public") -> tuple[str, str]:
    return (getattr(rv, "schemaname", None) or schema, rv.relname)


def _type(type_name: Any) -> tuple[str, int | None]:
    """(pg_type name, atttypmod) of a pglast TypeName (typmod None: not worked out)."""
    from guard.lint.alter import _typmod

    name = type_name.names[-1].sval
    return _ALIASES.get(name, name), (-1 if type_name.arrayBounds else _typmod(type_name))


class Column(Struct):
    type: str
    typmod: int | None
    not_null: bool = False
    array: bool = False


class Table(Struct):
    columns: dict[str, Column] = field(default_factory=dict)
    checks: dict[str, tuple[str | None, bool]] = field(default_factory=dict)  # name -> (IS NOT NULL column, valid)
    persistence: str = "p"
    tablespace: str = "pg_default"
    access_method: str = "heap"
    partitioned: bool = False
    default_partition: str | None = None
    partition_key: tuple[str, tuple[str, ...]] | None = None  # (strategy 'r'/'l'/'h', key columns)
    check_texts: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (expression SQL, valid)
    check_refs: dict[str, frozenset[str]] = field(default_factory=dict)  # name -> columns it references
    guessed: set[str] = field(default_factory=set)  # names guard chose for unnamed CHECKs (PostgreSQL's rule)
    row_security: bool = False  # ENABLE ROW LEVEL SECURITY
    policies: int = 0  # CREATE POLICY ... ON it
    foreign_keys: bool = False  # a FOREIGN KEY references it or is declared on it

    def forget_checks(self, names: Iterable[str]) -> None:
        for name in list(names):
            self.checks.pop(name, None)
            self.check_texts.pop(name, None)
            self.check_refs.pop(name, None)
            self.guessed.discard(name)

    def drop_check(self, name: str) -> None:
        """DROP CONSTRAINT name; a name guard does not know may be an unnamed CHECK's real name
        (one guard guessed wrong): then every unnamed CHECK is forgotten (unknown, not proven)."""
        self.forget_checks([name] if name in self.checks else list(self.guessed))


class DeclaredCatalog(Struct):
    """guard.lint.Catalog's questions answered from the files read so far (`read`)."""

    tables: dict[tuple[str, str], Table] = field(default_factory=dict)
    indexes: dict[tuple[str, str], tuple[tuple[str, str], tuple[str, ...]]] = field(default_factory=dict)
    domains: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> (base type, has constraints)
    functions: dict[str, str] = field(default_factory=dict)  # name -> provolatile ('i', 's', 'v')
    schema: str = "public"  # where an unqualified CREATE goes (the search_path's first schema)
    sequences: set[tuple[str, str]] = field(default_factory=set)  # CREATE SEQUENCE
    sequence_users: set[tuple[str, str]] = field(default_factory=set)  # named by a nextval() or OWNED BY

    # ------------------------------------------------------------------ reading the files

    def read(self, statements: Iterable[Statement]) -> None:
        """Learn from each statement of a file (guard.migrations.files.Statement; one that does
        not parse teaches nothing). Only the kinds that declare something are parsed again."""
        for statement in statements:
            if f"_{statement.kind}" in LEARNED:
                self._learn_sql(statement.sql)
            if "nextval" in statement.sql.lower():  # a default, a function body, a DO block: its sequence is used
                self.sequence_users.update(_split(m.group(1)) for m in _NEXTVAL.finditer(statement.sql))

    def _learn_sql(self, text: str) -> None:
        """Parse one statement's SQL and learn from the kinds that declare something."""
        import pglast

        try:
            nodes = pglast.parse_sql(text)
        except pglast.parser.ParseError:
            return
        for raw in nodes:
            name = "_" + type(raw.stmt).__name__
            if name in LEARNED:
                getattr(self, name)(raw.stmt)

    def _CreateStmt(self, node: Any) -> None:  # noqa: N802 - named after the parse node
        from pglast import ast

        key = _rel(node.relation, self.schema)
        if node.if_not_exists and key in self.tables:
            return  # PostgreSQL leaves the existing table as it is (a notice)
        table = Table(persistence="u" if node.relation.relpersistence == "u" else "p",
                      tablespace=node.tablespacename or "pg_default", access_method=node.accessMethod or "heap",
                      partitioned=node.partspec is not None)
        if node.partspec is not None:
            names = tuple(getattr(p, "name", None) or "" for p in node.partspec.partParams or ())
            table.partition_key = (str(getattr(node.partspec.strategy, "value", node.partspec.strategy)), names)
        for element in node.tableElts or ():
            if isinstance(element, ast.ColumnDef) and element.typeName is not None:
                self._column(table, element, key[1])
            elif isinstance(element, ast.Constraint):
                self._constraint(table, element, key[1])
        self.tables[key] = table
        if node.partbound is not None and node.partbound.is_default and node.inhRelations:
            parent = self.tables.get(_rel(node.inhRelations[0], self.schema))
            if parent is not None:
                parent.default_partition = ".".join(key)

    def _column(self, table: Table, col: Any, relname: str) -> None:
        from pglast import enums

        name, typmod = _type(col.typeName)
        column = Column(name, typmod, array=bool(col.typeName.arrayBounds))
        table.columns[col.colname] = column
        for con in col.constraints or ():
            if getattr(con, "contype", None) in (enums.ConstrType.CONSTR_NOTNULL, enums.ConstrType.CONSTR_PRIMARY):
                column.not_null = True
            elif getattr(con, "contype", None) in (enums.ConstrType.CONSTR_CHECK, enums.ConstrType.CONSTR_FOREIGN):
                self._constraint(table, con, relname)

    def _constraint(self, table: Table, con: Any, relname: str) -> None:
        from pglast import enums

        from guard.lint.alter import _not_null_column

        if con.contype == enums.ConstrType.CONSTR_CHECK:
            from pglast.stream import RawStream

            name = check_name(relname, con, table.checks)
            if not con.conname:
                table.guessed.add(name)
            table.checks[name] = (_not_null_column(con), not con.skip_validation)
            table.check_texts[name] = (RawStream()(con.raw_expr), not con.skip_validation)
            table.check_refs[name] = check_columns(con.raw_expr)
        elif con.contype == enums.ConstrType.CONSTR_FOREIGN:
            table.foreign_keys = True
            referenced = self.tables.get(_rel(con.pktable, self.schema)) if con.pktable is not None else None
            if referenced is not None:
                referenced.foreign_keys = True
        elif con.contype == enums.ConstrType.CONSTR_PRIMARY and not con.indexname:
            for key in con.keys or ():
                if key.sval in table.columns:
                    table.columns[key.sval].not_null = True

    def _AlterTableStmt(self, node: Any) -> None:  # noqa: N802
        from pglast import ast, enums

        key = _rel(node.relation, self.schema)
        table = self.tables.get(key)
        if table is None:
            return
        for cmd in node.cmds or ():
            sub = enums.AlterTableType(cmd.subtype).name
            column = table.columns.get(cmd.name or "")
            if sub == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef) and cmd.def_.typeName is not None:
                self._column(table, cmd.def_, key[1])
            elif sub == "AT_DropColumn":  # the column's CHECKs go with it (docs: ALTER TABLE DROP COLUMN)
                table.columns.pop(cmd.name, None)
                table.forget_checks(n for n, refs in table.check_refs.items() if cmd.name in refs)
            elif sub == "AT_AlterColumnType" and column is not None and cmd.def_.typeName is not None:
                column.type, column.typmod = _type(cmd.def_.typeName)
                column.array = bool(cmd.def_.typeName.arrayBounds)
            elif sub in ("AT_SetNotNull", "AT_DropNotNull") and column is not None:
                column.not_null = sub == "AT_SetNotNull"
            elif sub == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
                self._constraint(table, cmd.def_, key[1])
            elif sub == "AT_ValidateConstraint" and cmd.name in table.checks:
                table.checks[cmd.name] = (table.checks[cmd.name][0], True)
                table.check_texts[cmd.name] = (table.check_texts[cmd.name][0], True)
            elif sub == "AT_DropConstraint":
                table.drop_check(cmd.name)
            elif sub in ("AT_SetLogged", "AT_SetUnLogged"):
                table.persistence = "p" if sub == "AT_SetLogged" else "u"
            elif sub == "AT_SetTableSpace":
                table.tablespace = cmd.name
            elif sub == "AT_SetAccessMethod":
                table.access_method = cmd.name
            elif sub in ("AT_EnableRowSecurity", "AT_DisableRowSecurity"):
                table.row_security = sub == "AT_EnableRowSecurity"
            elif sub == "AT_AttachPartition" and cmd.def_.bound.is_default:
                table.default_partition = ".".join(_rel(cmd.def_.name, self.schema))

    def _CreatePolicyStmt(self, node: Any) -> None:  # noqa: N802
        table = self.tables.get(_rel(node.table, self.schema))
        if table is not None:
            table.policies += 1

    def _CreateSeqStmt(self, node: Any) -> None:  # noqa: N802
        self.sequences.add(_rel(node.sequence, self.schema))

    def _AlterSeqStmt(self, node: Any) -> None:  # noqa: N802
        if any(o.defname == "owned_by" for o in node.options or ()):
            self.sequence_users.add(_rel(node.sequence, self.schema))

    def _IndexStmt(self, node: Any) -> None:  # noqa: N802
        if node.idxname:
            columns = tuple(p.name for p in node.indexParams or () if getattr(p, "name", None))
            schema = getattr(node.relation, "schemaname", None) or self.schema
            if node.if_not_exists and (schema, node.idxname) in self.indexes:
                return  # the existing index stays
            self.indexes[(schema, node.idxname)] = (_rel(node.relation, self.schema), columns)

    def _CreateDomainStmt(self, node: Any) -> None:  # noqa: N802
        base, _ = _type(node.typeName)
        name = node.domainname[-1].sval  # keyed without schema: a checked domain of that name anywhere counts
        self.domains[name] = (base, bool(node.constraints) or self.domains.get(name, ("", False))[1])

    def _AlterDomainStmt(self, node: Any) -> None:  # noqa: N802
        name = node.typeName[-1].sval
        if name in self.domains and node.subtype in ("C", "O"):
            self.domains[name] = (self.domains[name][0], True)

    def _CreateFunctionStmt(self, node: Any) -> None:  # noqa: N802
        volatility = "v"
        for option in node.options or ():
            if option.defname == "volatility":
                volatility = {"immutable": "i", "stable": "s"}.get(option.arg.sval, "v")
        self._volatility(node.funcname[-1].sval, volatility)

    def _volatility(self, name: str, volatility: str) -> None:
        # overloads and schemas: the name may be volatile if any of them is (as PgCatalog.volatile)
        self.functions[name] = "v" if self.functions.get(name) == "v" else volatility

    def _AlterFunctionStmt(self, node: Any) -> None:  # noqa: N802
        for action in node.actions or ():
            if action.defname == "volatility":
                name = node.func.objname[-1].sval
                self._volatility(name, {"immutable": "i", "stable": "s"}.get(action.arg.sval, "v"))

    def _DropStmt(self, node: Any) -> None:  # noqa: N802
        from pglast import enums

        kind = enums.ObjectType(node.removeType).name
        for obj in node.objects or ():
            parts = [getattr(p, "sval", "") for p in obj] if isinstance(obj, tuple) else [getattr(obj, "sval", "")]
            if not parts:
                continue
            key = (parts[-2] if len(parts) > 1 else self.schema, parts[-1])
            if kind == "OBJECT_TABLE":
                self.tables.pop(key, None)
            elif kind == "OBJECT_SCHEMA":  # CASCADE took its tables; without, they were none
                for gone in [k for k in self.tables if k[0] == parts[-1]]:
                    self.tables.pop(gone)
            elif kind == "OBJECT_INDEX":
                self.indexes.pop(key, None)

    def new_file(self) -> None:
        """A new file: guard resets the session between files (search_path back to its default)."""
        self.schema = "public"

    def _DoStmt(self, node: Any) -> None:  # noqa: N802
        """A DO block's static statements are learnt; one that runs SQL built at run time, or
        that PL/pgSQL cannot read, may have changed any table: forget them all (unknown again)."""
        from guard.lint import plpgsql

        inner = plpgsql.body_statements(node, keep_unknown=True)
        if not inner or any(s.dynamic for s in inner):
            self.tables.clear()
            self.indexes.clear()
            self.sequences.clear()
            return
        for statement in inner:
            self._learn_sql(statement.sql)

    def _RenameStmt(self, node: Any) -> None:  # noqa: N802
        from pglast import enums

        kind = enums.ObjectType(node.renameType).name
        if node.relation is None:
            return
        key = _rel(node.relation, self.schema)
        table = self.tables.get(key)
        if kind == "OBJECT_TABLE" and table is not None:
            self.tables[(key[0], node.newname)] = self.tables.pop(key)
        elif kind == "OBJECT_COLUMN" and table is not None and node.subname in table.columns:
            table.columns[node.newname] = table.columns.pop(node.subname)
            for name, (column, valid) in list(table.checks.items()):
                if name in table.check_texts and node.subname in table.check_refs.get(name, ()):
                    table.check_texts.pop(name)  # its text names the old column: no longer a proof
                if column == node.subname:
                    table.checks[name] = (node.newname, valid)
        elif kind == "OBJECT_TABCONSTRAINT" and table is not None:
            if node.subname in table.checks:
                moved = {d: getattr(table, d).pop(node.subname) for d in ("checks", "check_texts", "check_refs")
                         if node.subname in getattr(table, d)}
                table.forget_checks([node.newname])
                for d, value in moved.items():
                    getattr(table, d)[node.newname] = value
            else:
                table.drop_check(node.subname)

    def _VariableSetStmt(self, node: Any) -> None:  # noqa: N802
        if (node.name or "").lower() != "search_path":
            return
        first = [getattr(getattr(a, "val", None), "sval", None) for a in node.args or ()][:1]
        self.schema = first[0] if first and first[0] and first[0] != "$user" else "public"

    # ------------------------------------------------------------------ guard.lint.Catalog

    def knows(self, table: str) -> bool:
        """The files declare `table` (quoted, possibly qualified)."""
        return self._table(table) is not None

    def _table(self, key: str) -> Table | None:
        return self.tables.get(_split(key))

    def row_security(self, table: str) -> tuple[bool, int] | None:
        """(row security enabled, policies created) of `table`, None when the files do not declare it."""
        t = self._table(table)
        return None if t is None else (t.row_security, t.policies)

    def foreign_keys(self, table: str) -> bool | None:
        """Whether a FOREIGN KEY the files declare is on `table` or references it (None: not declared)."""
        t = self._table(table)
        return None if t is None else t.foreign_keys

    def sequence_collides(self, sequence: str, next_value: int | None) -> bool | None:
        """False when the files create `sequence` and no column default names it (nothing stores
        its values: no id to collide with); None otherwise (which ids are stored is unknown)."""
        key = _split(sequence)
        return False if key in self.sequences and key not in self.sequence_users else None

    def has_dependents(self, kind: str, name: str) -> bool | None:
        return None  # the files cannot tell what else depends on an object: DROP ... CASCADE stays risky

    def not_null_proven(self, table: str, column: str) -> bool:
        """A validated CHECK (column IS NOT NULL), or the column is declared NOT NULL."""
        t = self._table(table)
        if t is None:
            return False
        col = t.columns.get(column)
        return bool(col and col.not_null) or any(c == column and valid for c, valid in t.checks.values())

    def type_change_rewrites(self, table: str, column: str, new_type: str, new_typmod: int | None) -> bool | None:
        """As PgCatalog.type_change_rewrites, for a declared column and a built-in or declared type."""
        from guard.lint.catalog import _keeps_stored_value

        t = self._table(table)
        col = t.columns.get(column) if t is not None else None
        if col is None or col.typmod is None or new_typmod is None or col.array:
            return None
        new = _ALIASES.get(new_type.rpartition(".")[2], new_type.rpartition(".")[2])
        old_kind, old_base = ("d", self.domains[col.type][0]) if col.type in self.domains else ("b", None)
        old = (col.type, col.typmod, col.type, old_kind, old_base, -1)
        return not _keeps_stored_value(old, (new, new, (col.type, new) in _BINARY, "unknown"), new_typmod)

    def domain_checked(self, type_name: str) -> bool | None:
        """A declared domain with a CHECK or NOT NULL (or over one); None when not declared."""
        name = type_name.rpartition(".")[2]
        seen = set()
        while name in self.domains and name not in seen:
            seen.add(name)
            base, checked = self.domains[name]
            if checked:
                return True
            name = base
        return False if seen else None

    def volatile(self, name: str) -> bool | None:
        """What the files declare of the function's volatility; None for a name PostgreSQL may
        resolve to a built-in (pg_catalog is searched first: a declared app.random() is not it)."""
        schema, _, short = name.rpartition(".")
        if schema in ("", "pg_catalog") and short in BUILTIN_VOLATILE:
            return None
        kind = self.functions.get(short)
        return None if kind is None else kind == "v"

    def function_kind(self, name: str) -> str | None:
        return "user" if name.rpartition(".")[2] in self.functions else None

    def relation_exists(self, name: str) -> bool:
        key = _split(name)
        return key in self.tables or key in self.indexes

    def storage(self, name: str) -> tuple[str, str, str] | None:
        t = self._table(name)
        return None if t is None else (t.persistence, t.tablespace, t.access_method)

    def default_partition(self, name: str) -> str | None:
        """The declared DEFAULT partition (taken to hold rows: it existed before)."""
        t = self._table(name)
        return None if t is None else t.default_partition

    def partition_facts(self, parent: str, partition: str, validated: tuple[str, ...] = ()) -> PartitionFacts | None:
        """What guard.lint.partition needs to prove a bound, from the declarations; None if unknown
        (validated: ignored, the batch's own statements are read as they are linted)."""
        from guard.lint.partition import PartitionFacts

        top, part = self._table(parent), self._table(partition)
        if top is None or part is None or top.partition_key is None:
            return None
        strategy, names = top.partition_key
        if any(n not in top.columns for n in names):
            return None  # an expression key
        return PartitionFacts(strategy, tuple((n, top.columns[n].type) for n in names),
                              tuple(text for text, valid in part.check_texts.values() if valid),
                              frozenset(n for n, c in part.columns.items() if c.not_null))

    def index_nullable(self, index: str) -> bool | None:
        found = self.indexes.get(_split(index))
        if found is None or found[0] not in self.tables:
            return None
        columns = self.tables[found[0]].columns
        if not found[1] or any(c not in columns for c in found[1]):
            return None
        return any(not columns[c].not_null for c in found[1])
