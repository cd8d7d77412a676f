"""Statements that take no long lock and lose no row, yet break what later writes and reads do.

- A sequence moved back (ALTER SEQUENCE ... RESTART [WITH n], `setval(seq, n)` with a constant,
  ALTER TABLE ... ALTER COLUMN ... RESTART on an identity column): the ids it hands out next may
  already be stored, and every INSERT taking one fails with a duplicate key (23505) until the
  sequence passes them (PostgreSQL: ALTER SEQUENCE and "Sequence Manipulation Functions").
- ENABLE ROW LEVEL SECURITY on a table with no policy: a role that is neither the owner nor has
  BYPASSRLS sees no row and writes none ("default deny", docs ddl-rowsecurity.html); on Supabase
  the Data API's roles anon and authenticated are such roles, so the API returns nothing.
- DISABLE TRIGGER ALL (the internal triggers enforcing foreign keys among them, ALTER TABLE ref.
  page) and `session_replication_role = replica` (ordinary triggers, foreign keys' included, do
  not fire: runtime-config-client.html): rows written meanwhile are never checked, and enabling
  the triggers again does not check them.
- ADD COLUMN ... NOT NULL without a DEFAULT: fails on a table holding rows (23502), and where it
  succeeds every INSERT not naming the column fails.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from guard.lint import locks
from guard.lint.names import ObjectName, from_rangevar
from guard.lint.ruleset import Handler, finding

if TYPE_CHECKING:
    from guard.lint import Finding, Linter
    from guard.migrations.files import Statement

_COLLIDE = "inserts taking the ids it hands out next fail with a duplicate key while those ids are stored"
_RESYNC = ("move it forward only: SELECT setval('<sequence>', (SELECT max(id) FROM <table>)); "
           "or accept it with a pragma when nothing stores its values")


def _number(node: Any) -> int | None:
    """The integer an A_Const / Integer / Float node holds, else None (an expression)."""
    while type(node).__name__ == "TypeCast":  # 1::bigint
        node = node.arg
    value = getattr(node, "val", node)
    for attr in ("ival", "fval"):
        raw = getattr(value, attr, None)
        if raw is not None:
            try:
                return int(raw)
            except ValueError:
                return None
    return None


def _collides(linter: Linter, sequence: str | None, next_value: int | None) -> bool | None:
    """The catalog's answer (guard.lint.catalog / declared) to: is `next_value` (None: the
    sequence's START) at or below an id a column drawing from `sequence` stores? None: unknown."""
    ask = getattr(linter.catalog, "sequence_collides", None)
    if ask is None or sequence is None:
        return None
    result: bool | None = ask(sequence, next_value)
    return result


def _alter_sequence(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """ALTER SEQUENCE ... RESTART [WITH n] (sequence.c AlterSequence: the next nextval returns n)."""
    restart = [o for o in node.options or () if o.defname == "restart"]
    name = from_rangevar(node.sequence)
    if not restart or linter.table_is_new(name):
        return []
    value = _number(restart[-1].arg) if restart[-1].arg is not None else None
    if restart[-1].arg is not None and value is None:
        return []
    key = str(linter.scope.resolve(name))
    if _collides(linter, key, value) is False:
        return []
    where = f"RESTART WITH {value}" if value is not None else "RESTART (to its START value)"
    return [finding("sequence-restart", st, i, d, f"ALTER SEQUENCE {name} {where} (under "
                    f"{locks.SHARE_ROW_EXCLUSIVE} on the sequence: nextval waits) moves it back: {_COLLIDE}",
                    _RESYNC)]


def _identity_restart(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """ALTER TABLE ... ALTER COLUMN c RESTART [WITH n] on an identity column (AT_SetIdentity)."""
    from pglast import enums

    table = from_rangevar(node.relation)
    if linter.table_is_new(table):
        return []
    out = []
    key = str(linter.scope.resolve(table))
    for cmd in node.cmds or ():
        if enums.AlterTableType(cmd.subtype).name != "AT_SetIdentity":
            continue
        restart = [o for o in cmd.def_ or () if getattr(o, "defname", "") == "restart"]
        if not restart:
            continue
        value = _number(restart[-1].arg) if restart[-1].arg is not None else None
        if restart[-1].arg is not None and value is None:
            continue
        sequence = getattr(linter.catalog, "identity_sequence", lambda _t, _c: None)(key, cmd.name)
        if _collides(linter, sequence, value) is False:
            continue
        where = f"RESTART WITH {value}" if value is not None else "RESTART (to its START value)"
        out.append(finding("sequence-restart", st, i, d, f"ALTER COLUMN {table}.{cmd.name} {where} moves its "
                           f"identity sequence back under {locks.ALTER_TABLE['AT_SetIdentity'].lock}: {_COLLIDE}",
                           _RESYNC.replace("<table>", str(table))))
    return out


def _setval_calls(node: Any) -> list[Any]:
    """The calls of setval (pg_catalog's or unqualified) with a value, anywhere in a statement."""
    return [c for c in _calls(node, "setval") if len(c.args or ()) >= 2
            and [getattr(p, "sval", "") for p in c.funcname][:-1] in ([], ["pg_catalog"])]


def _text_arg(node: Any) -> str | None:
    """'public.s' or 'public.s'::regclass as text, else None."""
    inner = getattr(node, "arg", node)  # a TypeCast
    value = getattr(getattr(inner, "val", None), "sval", None)
    return str(value) if value is not None else None


def _regclass_name(text: str) -> ObjectName:
    """'public."My Seq"' as regclass's input reads it: dot-separated, double quotes keep case and
    dots, unquoted parts fold to lower case (regclassin via stringToQualifiedNameList)."""
    parts, part, quoted, i = [], "", False, 0
    while i < len(text):
        ch = text[i]
        if ch == '"' and quoted and text[i + 1:i + 2] == '"':
            part, i = part + '"', i + 2
            continue
        if ch == '"':
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(part)
            part = ""
        else:
            part += ch if quoted else ch.lower()
        i += 1
    parts.append(part)
    return ObjectName(parts[-2] if len(parts) > 1 else None, parts[-1])


def _new_sequence(linter: Linter, arg: Any) -> tuple[bool, str | None]:
    """(whether setval's first argument names a sequence created in this batch, its resolved
    name when known): a literal, or pg_get_serial_sequence('table', 'column') of a new table."""
    text = _text_arg(arg)
    if text is not None:
        name = _regclass_name(text)
        return linter.table_is_new(name), str(linter.scope.resolve(name))
    inner = getattr(arg, "arg", arg)
    if type(inner).__name__ == "FuncCall" and [getattr(p, "sval", "") for p in inner.funcname][-1:] == \
            ["pg_get_serial_sequence"] and len(inner.args or ()) == 2 and _text_arg(inner.args[0]) is not None:
        return linter.table_is_new(_regclass_name(str(_text_arg(inner.args[0])))), None
    return False, None


def _setval(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """setval(seq, n [, is_called]) with a constant n: the next value is n + 1 (n when is_called is
    false). A computed n (the usual `(SELECT max(id) FROM t)`) is not flagged."""
    out = []
    for call in _setval_calls(node):
        value = _number(call.args[1])
        if value is None:
            continue
        called = getattr(getattr(call.args[2], "val", None), "boolval", True) if len(call.args) > 2 else True
        text = _text_arg(call.args[0])
        new, sequence = _new_sequence(linter, call.args[0])
        if new:
            continue
        if _collides(linter, sequence, value + (1 if called is not False else 0)) is False:
            continue
        from pglast.stream import RawStream

        shown = f"'{text}'" if text is not None else RawStream()(call.args[0])
        out.append(finding("sequence-restart", st, i, d, f"setval({shown}, {value}) (under {locks.ROW_EXCLUSIVE} on the "
                           "sequence) may move it "
                           f"back: {_COLLIDE}", _RESYNC))
    return out


def _replication_role(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """SET [LOCAL] session_replication_role = replica; set_config() of it in a SELECT."""
    from pglast import ast

    if isinstance(node, (ast.AlterRoleSetStmt, ast.AlterDatabaseSetStmt)):
        node = node.setstmt  # ALTER ROLE / DATABASE ... SET: every later session of it
    if isinstance(node, ast.VariableSetStmt):
        if (node.name or "").lower() != "session_replication_role":
            return []
        values = [str(getattr(getattr(a, "val", None), "sval", "")).lower() for a in node.args or ()]
    else:
        values = []
        for call in _calls(node, "set_config"):
            args = [_text_arg(a) for a in call.args or ()]
            if len(args) >= 2 and (args[0] or "").lower() == "session_replication_role":
                values.append((args[1] or "replica").lower())  # a computed value: assume the worst
    if "replica" not in values:
        return []
    return [finding("triggers-disabled", st, i, d, "session_replication_role = replica: ordinary triggers stop "
                    "firing, the internal ones enforcing foreign keys among them; rows written meanwhile are "
                    "never checked", "keep foreign keys on: load in an order the keys accept, or add them "
                    "NOT VALID and VALIDATE after")]


def _calls(node: Any, wanted: str) -> list[Any]:
    """The calls of a function named `wanted` (any schema) anywhere in a statement's tree."""
    from pglast.visitors import Visitor

    calls: list[Any] = []

    class _Calls(Visitor):
        def visit_FuncCall(self, _ancestors: Any, call: Any) -> None:  # noqa: N802
            if [getattr(p, "sval", "") for p in call.funcname or ()][-1:] == [wanted]:
                calls.append(call)

    _Calls()(node)
    return calls


def _select(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    return [*_setval(node, st, linter, i, d), *_replication_role(node, st, linter, i, d)]


def _alter_table(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    from pglast import enums

    table = from_rangevar(node.relation)
    out = _identity_restart(node, st, linter, i, d)
    if linter.table_is_new(table):
        return out
    for cmd in node.cmds or ():
        sub = enums.AlterTableType(cmd.subtype).name
        if sub == "AT_EnableRowSecurity":
            out.extend(_row_security(table, st, linter, i, d))
        elif sub == "AT_DisableTrigAll" or (sub == "AT_DisableTrig" and
                                            str(cmd.name).startswith("RI_ConstraintTrigger")):
            keys = getattr(linter.catalog, "foreign_keys", lambda _k: None)(str(linter.scope.resolve(table)))
            if keys is False:
                continue  # no foreign key on either side: only its own triggers stop
            what = "TRIGGER ALL" if sub == "AT_DisableTrigAll" else f"TRIGGER {cmd.name}"
            out.append(finding("triggers-disabled", st, i, d, f"DISABLE {what} on {table} (under "
                               f"{locks.ALTER_TABLE[sub].lock}) turns off the internal triggers enforcing its "
                               "foreign keys: rows written meanwhile are never checked, and ENABLE does not check "
                               "them", "DISABLE TRIGGER USER leaves the foreign keys on; or drop the key and add "
                               "it back NOT VALID, then VALIDATE"))
        elif sub == "AT_AddColumn":
            out.extend(_required_column(cmd.def_, table, st, i, d))
    return out


def _required_column(col: Any, table: ObjectName, st: Statement, i: int, d: str) -> list[Finding]:
    """ADD COLUMN ... NOT NULL (or PRIMARY KEY) with no DEFAULT, identity or generated value."""
    from pglast import enums

    constraints = getattr(col, "constraints", None) or ()
    # DEFAULT NULL gives no value: the column is as empty as without one
    kinds = {enums.ConstrType(c.contype).name for c in constraints
             if not (c.contype == enums.ConstrType.CONSTR_DEFAULT and getattr(c.raw_expr, "isnull", False))}
    type_name = getattr(getattr(col, "typeName", None), "names", None) or ()
    serial = [getattr(p, "sval", "") for p in type_name][-1:] in (["serial"], ["bigserial"], ["smallserial"],
                                                                   ["serial4"], ["serial8"], ["serial2"])
    if not kinds & {"CONSTR_NOTNULL", "CONSTR_PRIMARY"} or serial or \
            kinds & {"CONSTR_DEFAULT", "CONSTR_IDENTITY", "CONSTR_GENERATED"}:
        return []
    return [finding("add-required-column", st, i, d, f"ADD COLUMN {table}.{col.colname} NOT NULL without a DEFAULT "
                    f"checks every row under {locks.ALTER_TABLE['AT_AddColumn'].lock}: it fails on a table holding "
                    "rows (column contains null values) and, where it succeeds, breaks every INSERT that does not "
                    "name the column",
                    "ADD COLUMN with a DEFAULT (no rewrite since PostgreSQL 11), or nullable: backfill, then "
                    "SET NOT NULL after a valid CHECK (col IS NOT NULL)")]


def _row_security(table: ObjectName, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    """ENABLE ROW LEVEL SECURITY on `table` with no policy: none in the catalog, the files before,
    this file (before or after the statement: one transaction), or earlier files of the batch."""
    key = str(linter.scope.resolve(table))
    if key in linter.policies or any(str(linter.scope.resolve(p)) == key for p in linter.file_policies):
        return []
    known = getattr(linter.catalog, "row_security", lambda _k: None)(key)
    if known is not None and (known[0] or known[1]):
        return []  # already enabled (nothing changes), or policies wait for it
    return [finding("row-security-no-policy", st, i, d, f"ENABLE ROW LEVEL SECURITY on {table} "
                    f"(under {locks.ALTER_TABLE['AT_EnableRowSecurity'].lock}) with no policy for it: every role "
                    "but its owner and BYPASSRLS roles sees no row (on Supabase, anon and authenticated: the "
                    "API returns nothing)", f"CREATE POLICY ... ON {table} in the same file")]


def policy_targets(sql: str) -> list[ObjectName]:
    """The tables CREATE POLICY statements in `sql` apply to (none when it does not parse)."""
    import pglast

    try:
        nodes = pglast.parse_sql(sql)
    except pglast.parser.ParseError:
        return []
    statements: list[Any] = [n.stmt for n in nodes]
    return [from_rangevar(s.table) for s in statements if type(s).__name__ == "CreatePolicyStmt"]


def _policy(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    linter.policies.add(str(linter.scope.resolve(from_rangevar(node.table))))
    return []


def _sequence_created(node: Any, st: Statement, linter: Linter, i: int, d: str) -> list[Finding]:
    linter.note_created(from_rangevar(node.sequence), if_not_exists=bool(node.if_not_exists))
    return []


HANDLERS: dict[str, Handler] = {
    "AlterSeqStmt": _alter_sequence,
    "CreateSeqStmt": _sequence_created,
    "SelectStmt": _select,
    "VariableSetStmt": _replication_role,
    "AlterRoleSetStmt": _replication_role,
    "AlterDatabaseSetStmt": _replication_role,
    "AlterTableStmt": _alter_table,
    "CreatePolicyStmt": _policy,
}
