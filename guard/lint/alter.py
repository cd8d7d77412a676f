"""Checks for long locks, full scans and rewrites, read from the lock table (guard.lint.locks).

A statement is "locking" when it holds a lock that blocks writes (SHARE or stronger) on a
table that existed before the batch while it reads or rewrites every row of it. Tables
created earlier in the batch hold no rows: nothing to wait for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.lint import held, locks
from guard.lint.destroy import relation
from guard.lint.names import from_rangevar
from guard.lint.ruleset import Handler, finding

if TYPE_CHECKING:
    from guard.lint import Finding, Linter
    from guard.migrations.files import Statement

_LOCK = locks.ALTER_TABLE


def _index(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    table = from_rangevar(node.relation)
    if node.concurrent or linter.table_is_new(table):
        return []
    if not node.relation.inh and getattr(linter.catalog, "partitioned", lambda _: True)(str(linter.scope.resolve(table))):
        return []  # ON ONLY a partitioned table: an invalid index on the parent alone, nothing read
    if node.if_not_exists and node.idxname and linter.catalog is not None:
        schema = str(linter.scope.resolve(table)).rpartition(".")[0]
        if linter.catalog.relation_exists(f"{schema}.{node.idxname}" if schema else node.idxname):
            return []  # IF NOT EXISTS meets the index: a notice, nothing built
    held.hold(linter, held.key_of(linter, node.relation), locks.STATEMENTS["CREATE INDEX"].lock)
    return [finding("create-index", st, i, d, f"CREATE INDEX on {table} takes {locks.STATEMENTS['CREATE INDEX'].lock} "
                    "(blocks its writes) while it reads every row", "CREATE INDEX CONCURRENTLY, alone in its own migration file")]


def _alter_table(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import ast, enums

    table = from_rangevar(node.relation)
    shown, existed = relation(linter, table)
    key = str(linter.scope.resolve(table))
    out: list[Finding] = []
    if existed:  # the statement's lock is taken before any sub-command runs
        _hold_alter(node, key, linter)
        held.hold(linter, key, _statement_lock(node))
    for cmd in node.cmds or ():
        sub = enums.AlterTableType(cmd.subtype).name
        if sub in ("AT_DropColumn", "AT_DropConstraint"):
            linter.forget_checks(key)
        if sub == "AT_DropColumn" and existed:
            out.append(finding("drop-column", st, i, d, f"DROP COLUMN {shown}.{cmd.name} deletes its data",
                               "stop using the column first; drop it in a later release"))
        elif not existed:
            if sub == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
                _remember_constraint(cmd.def_, key, linter, st)
            continue
        elif sub == "AT_AlterColumnType":
            if _keeps_values(cmd, key, linter):
                continue
            out.append(finding("alter-column-type", st, i, d,
                               f"changing the type of {shown}.{cmd.name} rewrites the table under "
                               f"{_LOCK[sub].lock} and loses data if the new type is narrower{unseen(linter, key)}",
                               "add a new column, backfill in batches, switch readers, drop the old one"))
        elif sub == "AT_SetNotNull":
            out.extend(_set_not_null(key, shown, cmd.name, st, linter, i, d))
        elif sub == "AT_AddColumn" and isinstance(cmd.def_, ast.ColumnDef):
            out.extend(_add_column(cmd.def_, shown, st, linter, i, d))
        elif sub == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint):
            _remember_constraint(cmd.def_, key, linter, st)
            out.extend(_constraint(cmd.def_, shown, key, linter, st, i, d))
        elif sub == "AT_ValidateConstraint":
            out.extend(_validate(key, shown, cmd.name, st, linter, i, d))
        elif sub in ("AT_SetTableSpace", "AT_SetLogged", "AT_SetUnLogged", "AT_SetAccessMethod"):
            if _already(linter, key, sub, cmd.name):
                continue
            words = sub.removeprefix("AT_Set").upper().replace("UNLOGGED", "UNLOGGED").replace("ACCESSMETHOD", "ACCESS METHOD")
            out.append(finding("table-rewrite", st, i, d, f"SET {words} rewrites {shown} under {_LOCK[sub].lock}"
                               f"{unseen(linter, key)}",
                               "a new table filled in batches, or a maintenance window"))
        elif sub == "AT_AttachPartition":
            part = from_rangevar(cmd.def_.name)
            if not linter.table_is_new(part) and not _bound_proven(linter, key, part, cmd.def_.bound):
                out.append(finding("attach-partition", st, i, d, f"ATTACH PARTITION {part} scans it under ACCESS "
                                   f"EXCLUSIVE to check its bound{unseen(linter, str(linter.scope.resolve(part)))}",
                                   "first ADD a CHECK matching the bound NOT VALID "
                                   "and VALIDATE it; ATTACH then skips the scan; drop the CHECK after"))
            elif not cmd.def_.bound.is_default:
                out.extend(default_partition(table, key, st, linter, i, d))
    return out


def _bound_proven(linter: Linter, parent: str, part: Any, bound: Any) -> bool:
    """The partition's valid CHECKs prove its bound (catalog or declarations): no scan."""
    from msgspec.structs import replace

    from guard.lint.partition import bound_proven

    ask = getattr(linter.catalog, "partition_facts", None)
    name = str(linter.scope.resolve(part))
    batch = linter.batch_checks.get(name, {})
    validated = tuple(n for n, (_, valid) in batch.items() if valid)
    facts = ask(parent, name, validated) if ask is not None else None
    if facts is None:
        return False
    added = tuple(text for text, valid in batch.values() if valid and text is not None)
    return bound_proven(replace(facts, checks=facts.checks + added), bound)


def default_partition(parent: Any, key: str, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """A new partition of a table whose DEFAULT partition holds rows: PostgreSQL scans the default
    partition under ACCESS EXCLUSIVE for rows the new bound now claims (partbounds.c
    check_default_partition_contents). Known with a database only (pg_partitioned_table.partdefid)."""
    ask = getattr(linter.catalog, "default_partition", None)
    default = ask(key) if ask is not None and not linter.table_is_new(parent) else None
    if default is None:
        return []
    return [finding("attach-partition", st, i, d, f"a new partition of {key} makes PostgreSQL scan its default "
                    f"partition {default} under ACCESS EXCLUSIVE for rows the new bound claims",
                    "first ADD to the default partition a CHECK excluding the new bound NOT VALID, VALIDATE it in "
                    "the next file; the scan is then skipped")]


def _already(linter: Linter, key: str, sub: str, name: str | None) -> bool:
    """With a database: the table is already in that state, so PostgreSQL rewrites nothing
    (tablecmds.c: ATExecSetTableSpace returns early for the same tablespace, ATPrepChangePersistence
    for the same persistence; PostgreSQL 15 keeps the file for the same access method)."""
    ask = getattr(linter.catalog, "storage", None)
    state = ask(key) if ask is not None else None
    if state is None:
        return False
    persistence, tablespace, method = state
    wanted = {"AT_SetLogged": ("p", persistence), "AT_SetUnLogged": ("u", persistence),
              "AT_SetTableSpace": (name, tablespace), "AT_SetAccessMethod": (name, method)}[sub]
    return wanted[0] == wanted[1]


def unseen(linter: Linter, key: str) -> str:
    """A note for a verdict that depends on the table's current shape when nothing at hand shows
    it (no database, no earlier file declaring it): the conservative answer, said so."""
    knows = getattr(linter.catalog, "knows", None)
    if knows is None or knows(key):
        return ""
    return (f" (assumed: guard cannot see {key} here, no database and no earlier migration file declares it; "
            "`guard check` with the database URL reads its catalog)")


def _statement_lock(node: Any) -> str:
    """The lock an ALTER TABLE takes: the strongest of its sub-commands' (AlterTableGetLockLevel)."""
    from pglast import ast, enums

    modes = []
    for cmd in node.cmds or ():
        sub = enums.AlterTableType(cmd.subtype).name
        fact = _LOCK.get(sub, locks.LockFact(locks.ACCESS_EXCLUSIVE))
        if sub == "AT_AddConstraint" and isinstance(cmd.def_, ast.Constraint) \
                and cmd.def_.contype == enums.ConstrType.CONSTR_FOREIGN:
            modes.append(locks.SHARE_ROW_EXCLUSIVE)
        else:
            modes.append(fact.lock)
    return locks.strongest(modes) or locks.ACCESS_EXCLUSIVE


def _hold_alter(node: Any, key: str, linter: Linter) -> None:
    """Locks an ALTER TABLE leaves held on tables other than its own: a FOREIGN KEY's
    SHARE ROW EXCLUSIVE on the referenced table."""
    from pglast import ast, enums

    for cmd in node.cmds or ():
        con = cmd.def_
        if isinstance(con, ast.Constraint) and con.contype == enums.ConstrType.CONSTR_FOREIGN and con.pktable:
            held.hold(linter, held.key_of(linter, con.pktable), locks.SHARE_ROW_EXCLUSIVE)


def _typmod(type_name: Any) -> int | None:
    """The atttypmod PostgreSQL stores for a TypeName's modifiers (-1: none; None: not worked out)."""
    raw = [getattr(getattr(m, "val", None), "ival", None) for m in type_name.typmods or ()]
    base = type_name.names[-1].sval
    if not raw:
        return -1
    mods = [m for m in raw if isinstance(m, int)]
    if len(mods) != len(raw):
        return None
    if base in ("varchar", "bpchar") and len(mods) == 1:
        return mods[0] + 4  # VARHDRSZ
    if base == "numeric" and len(mods) in (1, 2):
        return ((mods[0] << 16) | (mods[1] if len(mods) == 2 else 0)) + 4
    if base in ("timestamp", "timestamptz", "time", "timetz", "varbit", "bit") and len(mods) == 1:
        return mods[0]
    return None


def _keeps_values(cmd: Any, key: str, linter: Linter) -> bool:
    """True when the database at hand shows ALTER COLUMN ... TYPE stores the values unchanged
    (no USING, a binary-coercible change): no rewrite, no loss."""
    col = cmd.def_
    if linter.catalog is None or not _plain_using(col.raw_default, cmd.name) or col.typeName is None \
            or col.collClause is not None:  # a new collation rebuilds the column's indexes: a scan
        return False
    name = ".".join(p.sval for p in col.typeName.names)
    rewrites = linter.catalog.type_change_rewrites(key, cmd.name, name, _typmod(col.typeName))
    return rewrites is False


def _plain_using(expr: Any, column: str) -> bool:
    """No USING, or one that is the column itself (`USING code`, `USING code::varchar(30)`): the
    same conversion PostgreSQL applies without USING."""
    from pglast import ast

    if isinstance(expr, ast.TypeCast):
        expr = expr.arg
    if expr is None:
        return True
    if not isinstance(expr, ast.ColumnRef):
        return False
    fields = list(expr.fields or ())
    return len(fields) == 1 and getattr(fields[0], "sval", None) == column


def _set_not_null(key: str, shown: str, column: str, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    proven = linter.not_null_checks.get((key, column))
    if proven is None and linter.catalog is not None and key not in linter.checks_changed:
        proven = linter.catalog.not_null_proven(key, column)
    if proven and (linter.server_major is None or linter.server_major >= 12):
        return []
    return [finding("set-not-null", st, i, d, f"SET NOT NULL on {shown}.{column} scans the table under ACCESS "
                    f"EXCLUSIVE{unseen(linter, key)}", f"ADD CONSTRAINT ... CHECK ({column} IS NOT NULL) NOT VALID; VALIDATE it in a later "
                    "file; then SET NOT NULL (PostgreSQL 12+ skips the scan) and drop the CHECK")]


def _not_null_column(con: Any) -> str | None:
    """The column of a CHECK (column IS NOT NULL), else None."""
    from pglast import ast, enums

    expr = con.raw_expr
    if isinstance(expr, ast.NullTest) and expr.nulltesttype == enums.NullTestType.IS_NOT_NULL \
            and isinstance(expr.arg, ast.ColumnRef) and len(expr.arg.fields or ()) == 1:
        return str((expr.arg.fields or ())[0].sval)
    return None


def _remember_constraint(con: Any, key: str, linter: Linter, st: Statement) -> None:
    from pglast import enums

    if con.contype == enums.ConstrType.CONSTR_CHECK:
        from pglast.stream import RawStream

        from guard.lint.checks import check_name

        column = _not_null_column(con)
        checks = linter.batch_checks.setdefault(key, {})
        name = check_name(key.rpartition(".")[2].strip('"'), con, checks)
        if column is not None:
            linter.not_null_checks[(key, column)] = not con.skip_validation or linter.not_null_checks.get((key, column), False)
            linter.not_null_names[(key, name)] = column
        checks[name] = (RawStream()(con.raw_expr), not con.skip_validation)
    if con.skip_validation and con.conname:
        linter.not_valid[(key, con.conname)] = st.line


def _validate(key: str, shown: str, name: str, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    checks = linter.batch_checks.setdefault(key, {})
    checks[name] = (checks.get(name, (None, True))[0], True)
    column = linter.not_null_names.get((key, name))
    if column is not None and (key, column) in linter.not_null_checks:
        linter.not_null_checks[(key, column)] = True
    line = linter.not_valid.get((key, name))
    mode = held.blocking(linter, key)
    if mode is None:
        return []
    earlier = f"the transaction that added it NOT VALID (line {line})" if line is not None else \
        "a transaction that already locked the table"
    return [finding("validate-same-transaction", st, i, d, f"VALIDATE CONSTRAINT {name} on {shown} runs in "
                    f"{earlier}: the scan holds {mode}, taken by an earlier statement of the file",
                    "move VALIDATE CONSTRAINT to the next migration file (its own transaction)")]


def _add_column(col: Any, shown: str, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    out: list[Finding] = []
    rewrite = _rewrite_reason(col, linter)
    if rewrite:
        out.append(finding("volatile-default", st, i, d, f"ADD COLUMN {shown}.{col.colname} with {rewrite} rewrites "
                           "the whole table under ACCESS EXCLUSIVE", "add the column without a default, set the "
                           "default, backfill in batches (for STORED: a trigger plus a backfill)"))
    for con in col.constraints or ():
        kind = getattr(con, "contype", None)
        if kind in (enums.ConstrType.CONSTR_UNIQUE, enums.ConstrType.CONSTR_PRIMARY):
            out.append(finding("add-unique", st, i, d, f"ADD COLUMN {shown}.{col.colname} UNIQUE/PRIMARY KEY builds "
                               "an index under ACCESS EXCLUSIVE", "add the column; CREATE UNIQUE INDEX CONCURRENTLY; "
                               "then ADD CONSTRAINT ... USING INDEX"))
        elif kind == enums.ConstrType.CONSTR_CHECK and not con.skip_validation:
            out.append(finding("add-check", st, i, d, f"ADD COLUMN {shown}.{col.colname} with a CHECK scans the "
                               "table under ACCESS EXCLUSIVE", "add the column, then the CHECK NOT VALID, then VALIDATE"))
        elif kind == enums.ConstrType.CONSTR_FOREIGN and _has_default(col):
            # parse_utilcmd.c transformAlterTableStmt: a new column's FOREIGN KEY is checked
            # only when the column gets a default (else every value is NULL)
            out.append(finding("add-foreign-key", st, i, d, f"ADD COLUMN {shown}.{col.colname} REFERENCES checks "
                               "every row under SHARE ROW EXCLUSIVE", "add the column, then the FOREIGN KEY NOT VALID"))
    return out


def _has_default(col: Any) -> bool:
    from pglast import enums

    return any(getattr(c, "contype", None) in (enums.ConstrType.CONSTR_DEFAULT, enums.ConstrType.CONSTR_IDENTITY,
                                               enums.ConstrType.CONSTR_GENERATED) for c in col.constraints or ())


def _rewrite_reason(col: Any, linter: Linter) -> str | None:
    """Why ADD COLUMN must compute a value per row (a rewrite), or None (a catalog-only change)."""
    from pglast import enums

    type_name = col.typeName.names[-1].sval if col.typeName is not None else ""
    if type_name in ("serial", "bigserial", "smallserial", "serial4", "serial8", "serial2"):
        return f"type {type_name} (a nextval() default per row)"
    if col.typeName is not None and _checked_domain(col.typeName, linter):
        return f"the domain {type_name}, whose constraints PostgreSQL checks on every row"
    for con in col.constraints or ():
        kind = getattr(con, "contype", None)
        if kind == enums.ConstrType.CONSTR_IDENTITY:
            return "an identity (a sequence value per row)"
        if kind == enums.ConstrType.CONSTR_GENERATED:
            return "a STORED generated expression (computed for every row)"
        if kind == enums.ConstrType.CONSTR_DEFAULT:
            if linter.server_major is not None and linter.server_major < 11:
                return "a default before PostgreSQL 11"
            unknown = _volatile_calls(con.raw_expr, linter)
            if unknown:
                return f"the volatile default {unknown[0]}() (a function not known to be stable counts as volatile)"
    return None


def _volatile_calls(expr: Any, linter: Linter) -> list[str]:
    """Functions the expression calls that may be VOLATILE: with a database, as pg_proc says
    (a function it does not have, e.g. one the batch creates, counts as volatile); without one,
    those not on the built-in list NON_VOLATILE_FUNCTIONS."""
    from guard.lint.destroy import _function_names

    ask = getattr(linter.catalog, "volatile", None)
    out = []
    for name in _function_names(expr):
        known = ask(name) if ask is not None else None
        if known is True or (known is None and name.rpartition(".")[2] not in locks.NON_VOLATILE_FUNCTIONS):
            out.append(name)
    return out


def _checked_domain(type_name: Any, linter: Linter) -> bool:
    """The column type is a domain with a CHECK or NOT NULL: created so in this batch, or (with a
    database) as pg_type/pg_constraint show. ADD COLUMN of it rewrites (ATExecAddColumn)."""
    name = ".".join(p.sval for p in type_name.names)
    if type_name.names[-1].sval in linter.checked_domains:
        return True
    ask = getattr(linter.catalog, "domain_checked", None)
    return bool(ask(name)) if ask is not None and not type_name.arrayBounds else False


def _nullable_key(con: Any, table: str, linter: Linter) -> bool:
    """ADD PRIMARY KEY USING INDEX: a column of the index may be NULL, so PostgreSQL scans for
    NULLs under ACCESS EXCLUSIVE (index_check_primary_key). Unknown (no database) counts as nullable."""
    ask = getattr(linter.catalog, "index_nullable", None)
    if ask is None:
        return True
    schema = table.rpartition(".")[0]
    return ask(f"{schema}.{con.indexname}" if schema else con.indexname) is not False


def _domain_created(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """CREATE DOMAIN ... CHECK / NOT NULL: remember it (a new column of it checks every row)."""
    if node.constraints:
        linter.checked_domains.add(node.domainname[-1].sval)
    return []


def _constraint(con: Any, shown: str, key: str, linter: Linter, st: Statement, i: int, d: str) -> list[Finding]:
    from pglast import enums

    kind = con.contype
    if kind == enums.ConstrType.CONSTR_FOREIGN and not con.skip_validation:
        return [finding("add-foreign-key", st, i, d, f"a FOREIGN KEY on {shown} without NOT VALID checks every "
                        "row under SHARE ROW EXCLUSIVE on both tables", "ADD ... NOT VALID, then VALIDATE CONSTRAINT "
                        "in the next migration file (it takes a weaker lock)")]
    if kind == enums.ConstrType.CONSTR_CHECK and not con.skip_validation:
        return [finding("add-check", st, i, d, f"a CHECK on {shown} without NOT VALID scans the table under "
                        "ACCESS EXCLUSIVE", "ADD ... NOT VALID, then VALIDATE CONSTRAINT in the next migration file")]
    if kind == enums.ConstrType.CONSTR_PRIMARY and con.indexname and _nullable_key(con, key, linter):
        return [finding("add-unique", st, i, d, f"ADD PRIMARY KEY USING INDEX {con.indexname} on {shown} sets its "
                        "columns NOT NULL: a scan under ACCESS EXCLUSIVE unless they are NOT NULL already",
                        "make the columns NOT NULL first without a scan (a validated CHECK (col IS NOT NULL), "
                        "then SET NOT NULL), then ADD PRIMARY KEY USING INDEX")]
    if kind in (enums.ConstrType.CONSTR_PRIMARY, enums.ConstrType.CONSTR_UNIQUE,
                enums.ConstrType.CONSTR_EXCLUSION) and not con.indexname:
        return [finding("add-unique", st, i, d, f"ADD PRIMARY KEY/UNIQUE/EXCLUDE on {shown} builds its index under "
                        "ACCESS EXCLUSIVE", "CREATE UNIQUE INDEX CONCURRENTLY first, then ADD ... USING INDEX")]
    return []


def _option_true(options: Any, name: str) -> bool:
    for opt in options or ():
        if getattr(opt, "defname", "") == name:
            arg = getattr(opt, "arg", None)
            value = getattr(arg, "sval", None) or getattr(arg, "boolval", None) or getattr(arg, "ival", None)
            return arg is None or str(value).lower() in ("true", "on", "1", "yes")
    return False


def _vacuum(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if not _option_true(node.options, "full"):
        return []
    return [finding("vacuum-full", st, i, d, "VACUUM FULL rewrites the table under ACCESS EXCLUSIVE",
                    "pg_repack, or a maintenance window")]


def _cluster(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if node.relation is not None and linter.table_is_new(from_rangevar(node.relation)):
        return []
    return [finding("vacuum-full", st, i, d, "CLUSTER rewrites the table under ACCESS EXCLUSIVE",
                    "pg_repack, or a maintenance window")]


def _reindex(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if _option_true(node.params, "concurrently"):
        return []
    return [finding("reindex", st, i, d, "REINDEX blocks writes (and reads through the index) while it runs",
                    "REINDEX ... CONCURRENTLY (PostgreSQL 12+), alone in its own file")]


def _refresh(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    if linter.table_is_new(from_rangevar(node.relation)):
        return []
    mode = locks.STATEMENTS["REFRESH MATERIALIZED VIEW" + (" CONCURRENTLY" if node.concurrent else "")].lock
    held.hold(linter, held.key_of(linter, node.relation), mode)
    if node.concurrent:
        return []
    return [finding("refresh-materialized-view", st, i, d, f"REFRESH MATERIALIZED VIEW {from_rangevar(node.relation)} "
                    "holds ACCESS EXCLUSIVE (blocks its readers) while it recomputes", "REFRESH MATERIALIZED VIEW "
                    "CONCURRENTLY (needs a unique index on the view)")]


def _domain(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    name = ".".join(p.sval for p in node.typeName)
    if node.subtype in ("C", "O"):
        linter.checked_domains.add(node.typeName[-1].sval)
    if node.subtype == "C" and not getattr(node.def_, "skip_validation", False):
        what = "ADD CONSTRAINT"
    elif node.subtype == "O":
        what = "SET NOT NULL"
    elif node.subtype == "V":  # typecmds.c AlterDomainValidateConstraint: SHARE on each table, a scan
        what = f"VALIDATE CONSTRAINT {node.name}"
    else:
        return []
    return [finding("alter-domain-check", st, i, d, f"ALTER DOMAIN {name} {what} checks every column of the domain "
                    f"in every table, under {locks.STATEMENTS['ALTER DOMAIN ADD CONSTRAINT'].lock}",
                    "unlike a table's, a domain's VALIDATE blocks writes to every table using it: run it in a "
                    "quiet window" if node.subtype == "V" else
                    "ADD CONSTRAINT ... NOT VALID: it checks new values only (its VALIDATE blocks writes too)")]


def _dropdb(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [finding("drop-database", st, i, d, f"DROP DATABASE {node.dbname} deletes a whole database",
                    "never from a migration")]


def _transaction(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    if node.kind in (enums.TransactionStmtKind.TRANS_STMT_COMMIT_PREPARED,
                     enums.TransactionStmtKind.TRANS_STMT_ROLLBACK_PREPARED,
                     enums.TransactionStmtKind.TRANS_STMT_PREPARE):
        return []
    return [finding("transaction-control", st, i, d, "transaction control in a migration file fights guard's "
                    "one transaction per file", "remove BEGIN/COMMIT: guard wraps each file in a transaction")]


HANDLERS: dict[str, Handler] = {
    "IndexStmt": _index,
    "AlterTableStmt": _alter_table,
    "VacuumStmt": _vacuum,
    "ClusterStmt": _cluster,
    "ReindexStmt": _reindex,
    "RefreshMatViewStmt": _refresh,
    "AlterDomainStmt": _domain,
    "CreateDomainStmt": _domain_created,
    "DropdbStmt": _dropdb,
    "TransactionStmt": _transaction,
}
