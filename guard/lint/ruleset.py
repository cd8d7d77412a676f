"""The rule set as data: each rule's id, category, default severity and summary, and the
Finding a rule produces. Imported by the package and by every rule module, so it imports
none of them (no import circle).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from msgspec import Struct

if TYPE_CHECKING:
    from guard.lint import Linter
    from guard.migrations.files import Statement


class Rule(Struct, frozen=True):
    """A lint rule: its id, category, default severity and one-line summary."""

    id: str
    category: str
    severity: str
    summary: str


class Finding(Struct, frozen=True):
    """One rule hit in one statement of one file."""

    file: str
    line: int
    column: int
    rule: str
    category: str
    severity: str
    message: str
    alternative: str | None = None
    statement_index: int = 0
    accepted: str | None = None  # the pragma's reason, when a pragma accepts it

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file, "line": self.line, "column": self.column, "rule": self.rule,
            "category": self.category, "severity": self.severity, "message": self.message,
            "alternative": self.alternative, "statement_index": self.statement_index,
            "accepted": self.accepted,
        }



ALL = (
    # destructive: data that existed before is gone
    Rule("drop-table", "destructive", "error", "DROP TABLE deletes the table and its rows"),
    Rule("drop-materialized-view", "destructive", "error", "DROP MATERIALIZED VIEW deletes its stored rows"),
    Rule("drop-schema", "destructive", "error", "DROP SCHEMA deletes every object in it (with CASCADE)"),
    Rule("drop-column", "destructive", "error", "DROP COLUMN deletes the column's data"),
    Rule("drop-database", "destructive", "error", "DROP DATABASE deletes a whole database"),
    Rule("drop-type", "destructive", "warning", "DROP TYPE/DOMAIN fails or (CASCADE) drops columns using it"),
    Rule("drop-cascade", "destructive", "error",
         "DROP ... CASCADE also drops what depends on the object: columns, materialized views, tables' defaults"),
    Rule("drop-owned", "destructive", "error",
         "DROP OWNED BY drops every table (and its rows) the roles own in this database"),
    Rule("drop-extension", "destructive", "warning", "DROP EXTENSION drops the extension's own tables and data"),
    Rule("truncate", "destructive", "error", "TRUNCATE deletes every row (CASCADE: of referencing tables too)"),
    Rule("delete-without-where", "destructive", "error", "DELETE without WHERE deletes every row"),
    Rule("update-without-where", "destructive", "error", "UPDATE without WHERE overwrites every row"),
    Rule("merge", "destructive", "error", "MERGE ... THEN DELETE/UPDATE deletes or overwrites existing rows"),
    # A warning, where UPDATE ... WHERE is no finding: seed upserts of a few keys are everyday
    # migrations, and `guard run` copies the table first whatever the severity.
    Rule("upsert", "destructive", "warning", "INSERT ... ON CONFLICT DO UPDATE overwrites the existing rows it meets"),
    Rule("alter-column-type", "destructive", "warning",
         "ALTER COLUMN TYPE rewrites the table and loses data when the new type is narrower"),
    # breaking: no data lost, clients using the old shape fail
    Rule("rename", "breaking", "warning", "renaming a table, column or view breaks clients using the old name"),
    Rule("drop-function", "breaking", "warning", "DROP FUNCTION/PROCEDURE breaks callers, triggers, policies"),
    Rule("drop-view", "breaking", "warning", "DROP VIEW breaks clients reading it"),
    Rule("sequence-restart", "breaking", "warning",
         "ALTER SEQUENCE RESTART, setval(seq, constant), identity RESTART: later inserts may hit stored ids"),
    Rule("row-security-no-policy", "breaking", "warning",
         "ENABLE ROW LEVEL SECURITY with no policy hides every row from roles other than the owner"),
    Rule("triggers-disabled", "breaking", "warning",
         "DISABLE TRIGGER ALL / session_replication_role = replica stop foreign keys being enforced"),
    Rule("add-required-column", "breaking", "warning",
         "ADD COLUMN NOT NULL without DEFAULT fails on rows, else breaks INSERTs not naming it"),
    # locking
    Rule("create-index", "locking", "warning", "CREATE INDEX without CONCURRENTLY blocks writes to an existing table"),
    Rule("add-foreign-key", "locking", "warning", "a FOREIGN KEY without NOT VALID scans both tables under lock"),
    Rule("add-check", "locking", "warning", "a CHECK without NOT VALID scans the table under ACCESS EXCLUSIVE"),
    Rule("add-unique", "locking", "warning", "ADD PRIMARY KEY/UNIQUE builds its index under ACCESS EXCLUSIVE"),
    Rule("set-not-null", "locking", "warning", "SET NOT NULL scans the table under ACCESS EXCLUSIVE"),
    Rule("volatile-default", "locking", "warning",
         "ADD COLUMN computed per row (volatile default, STORED generated, identity, serial) rewrites the table"),
    Rule("validate-same-transaction", "locking", "warning",
         "VALIDATE in the transaction that added the constraint NOT VALID scans under the strong lock"),
    Rule("scan-under-lock", "locking", "warning",
         "UPDATE/DELETE/INSERT ... SELECT reads every row of a table an earlier statement of the file locked"),
    Rule("alter-domain-check", "locking", "warning",
         "ALTER DOMAIN ADD / VALIDATE CONSTRAINT, SET NOT NULL scan every column of the domain under SHARE"),
    Rule("table-rewrite", "locking", "warning",
         "SET TABLESPACE / SET LOGGED / SET UNLOGGED / SET ACCESS METHOD rewrite the table under ACCESS EXCLUSIVE"),
    Rule("attach-partition", "locking", "warning",
         "ATTACH PARTITION scans the partition under ACCESS EXCLUSIVE unless a CHECK proves its bound"),
    Rule("refresh-materialized-view", "locking", "warning",
         "REFRESH MATERIALIZED VIEW without CONCURRENTLY blocks its readers while it runs"),
    Rule("vacuum-full", "locking", "warning", "VACUUM FULL / CLUSTER rewrite the table under ACCESS EXCLUSIVE"),
    Rule("lock-table", "locking", "warning",
         "LOCK TABLE in SHARE mode or stronger blocks writes (ACCESS EXCLUSIVE: reads) to the end of the transaction"),
    Rule("reindex", "locking", "warning", "REINDEX without CONCURRENTLY blocks writes (and reads of the index)"),
    # non-transactional
    # guard runs files with these outside a transaction: a failure half-way leaves the
    # statements before it applied, hence a warning.
    Rule("concurrently", "non-transactional", "warning",
         "CREATE/DROP INDEX, REINDEX and DETACH PARTITION ... CONCURRENTLY cannot run in a transaction"),
    Rule("vacuum", "non-transactional", "warning", "VACUUM cannot run in a transaction"),
    Rule("enum-add-value", "non-transactional", "warning",
         "ALTER TYPE ... ADD VALUE cannot run in a transaction before PostgreSQL 12"),
    Rule("non-transactional", "non-transactional", "warning",
         "a statement PostgreSQL refuses inside a transaction block (CLUSTER, REINDEX SCHEMA, subscriptions)"),
    Rule("database-level", "non-transactional", "error",
         "CREATE/DROP DATABASE or TABLESPACE, ALTER SYSTEM, DISCARD ALL, COMMIT/ROLLBACK PREPARED: not in a migration"),
    Rule("transaction-control", "non-transactional", "error",
         "BEGIN/COMMIT/ROLLBACK in a file break guard's one transaction per file"),
    # effect unknown: the file runs with the runtime tripwire
    Rule("effect-unknown", "effect-unknown", "info",
         "a DO block, CALL or function call whose effect no parser can know: the run watches it"),
    # the shadow's trace (guard lint --trace) disagrees with the static verdict
    Rule("trace", "locking", "warning",
         "on the shadow the statement scanned or rewrote an existing table under a lock blocking writes"),
    Rule("trace-unconfirmed", "locking", "info",
         "guard check --shadow: a static locking finding the shadow's trace did not show (its schema may differ)"),
    # style
    Rule("syntax", "style", "error", "the file does not parse"),
    Rule("pragma", "style", "error", "a guard:allow pragma with an unknown rule or no reason"),
)
_BY_ID = {r.id: r for r in ALL}

Handler = Callable[[Any, "Statement", "Linter", int, str], list[Finding]]


def finding(rule: str, statement: Statement, index: int, display: str, message: str,
            alternative: str | None) -> Finding:
    """A Finding of `rule` at the statement's position, with the rule's default category/severity."""
    r = _BY_ID[rule]
    return Finding(display, statement.line, statement.column, rule, r.category, r.severity,
                   message, alternative, index)
