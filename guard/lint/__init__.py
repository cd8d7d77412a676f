"""Risk analysis of migration statements, with PostgreSQL's own parser (pglast).

Each statement is classified: destructive (loses data), locking (long exclusive lock or
table rewrite), breaking (clients using the old shape fail; no data lost), non-transactional
(cannot run in a transaction block), effect-unknown (DO blocks, CALL, calls of functions the
parser cannot see into: the file runs with the tripwire, see `needs_tripwire`), or safe. Findings
carry file:line:column, the rule id, a one-line reason and the safe alternative. A pragma
``-- guard:allow <rule> <reason>`` on the line before a statement (or on its lines) accepts
a finding; unknown rules and pragmas without a reason are errors themselves.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from msgspec import Struct, field
from msgspec.structs import replace

from guard.errors import ConfigError, MigrationFileError
from guard.lint.names import ObjectName, Scope
from guard.lint.ruleset import Finding, Rule

if TYPE_CHECKING:
    from guard.migrations.files import MigrationFile, Statement

SEVERITIES = ("error", "warning", "info")
CATEGORIES = ("destructive", "locking", "breaking", "non-transactional", "effect-unknown", "style")
# Categories a reviewer must look at (the lint benchmark counts these as "flagged").
RISK_CATEGORIES = frozenset({"destructive", "locking", "breaking"})
# Rules whose statement PostgreSQL refuses in a transaction block but guard runs (each file
# holding one runs statement by statement, outside a transaction).
OUTSIDE_TRANSACTION_RULES = frozenset({"concurrently", "vacuum", "enum-add-value", "non-transactional"})
PRAGMA = re.compile(r"--\s*guard:allow\b(?P<rest>[^\n]*)")


class LintConfig(Struct, frozen=True):
    """The ``lint:`` section as the linter uses it: disabled rules and severity overrides."""

    disabled: frozenset[str] = frozenset()
    severity: Mapping[str, str] = field(default_factory=dict)

    def validate(self, source: str = "lint") -> None:
        for rule in (*self.disabled, *self.severity):
            if rule not in RULES:
                raise ConfigError(f"unknown rule {rule!r}", key=source, hint="see docs/lint.md for the rules")
        for rule, level in self.severity.items():
            if level not in SEVERITIES:
                raise ConfigError(f"severity of {rule} must be error, warning or info", key=f"{source}.severity")


def _rules() -> dict[str, Rule]:
    from guard.lint.ruleset import ALL

    return {r.id: r for r in ALL}


class _Rules(Mapping[str, Rule]):
    def __getitem__(self, key: str) -> Rule:
        return _rules()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(_rules())

    def __len__(self) -> int:
        return len(_rules())


RULES: Mapping[str, Rule] = _Rules()


class Catalog(Protocol):
    """What the lint may ask a connected database (all optional knowledge: None = unknown)."""

    def not_null_proven(self, table: str, column: str) -> bool:
        """A valid CHECK (column IS NOT NULL) exists on `table` (a quoted regclass text)."""

    def function_kind(self, name: str) -> str | None:
        """"builtin" for a pg_catalog function, "user" for any other existing one, None if unknown."""

    def type_change_rewrites(self, table: str, column: str, new_type: str, new_typmod: int | None) -> bool | None:
        """Whether ALTER COLUMN ... TYPE rewrites the stored values (None: cannot tell)."""

    def has_dependents(self, kind: str, name: str) -> bool | None:
        """Whether DROP ... CASCADE of the object would drop others too (None: cannot tell)."""

    def relation_exists(self, name: str) -> bool:
        """A relation of any kind (an index too) `name` exists."""


class Linter(Struct):
    """Lints files in order, following the objects the batch creates, renames and drops.

    existing_tables(text) answers whether a relation exists (text: a quoted, possibly qualified
    name for to_regclass); catalog answers finer questions when a database is at hand.
    """

    server_major: int | None = None
    config: LintConfig = field(default_factory=LintConfig)
    existing_tables: Callable[[str], bool] | None = None
    catalog: Catalog | None = None
    scope: Scope = field(default_factory=Scope)
    # per file (one transaction): NOT VALID constraints added, by (table, constraint name)
    not_valid: dict[tuple[str, str], int] = field(default_factory=dict)
    # (table, column) with a CHECK (column IS NOT NULL): validated, or still NOT VALID
    not_null_checks: dict[tuple[str, str], bool] = field(default_factory=dict)
    # (table, CHECK name) -> the column it proves NOT NULL (named as PostgreSQL names it)
    not_null_names: dict[tuple[str, str], str] = field(default_factory=dict)
    # tables whose CHECKs the batch dropped, renamed or changed columns of: the catalog's no longer prove
    checks_changed: set[str] = field(default_factory=set)
    # per file (one transaction): table (resolved text) -> strongest lock taken on it so far
    held: dict[str, str] = field(default_factory=dict)
    # domains the batch gave a CHECK or NOT NULL (a new column of one rewrites the table)
    checked_domains: set[str] = field(default_factory=set)
    # table -> CHECK constraints the batch added or validated: name -> (expression SQL or None, valid)
    batch_checks: dict[str, dict[str, tuple[str | None, bool]]] = field(default_factory=dict)
    # tables (resolved text) the batch created a policy for so far; per file: every CREATE POLICY's table
    policies: set[str] = field(default_factory=set)
    file_policies: list[ObjectName] = field(default_factory=list)

    def forget_checks(self, key: str) -> None:
        """The batch dropped or renamed a constraint or column of `key`: no CHECK of it proves NOT NULL."""
        self.checks_changed.add(key)
        for known in [k for k in self.not_null_checks if k[0] == key]:
            del self.not_null_checks[known]

    def __post_init__(self) -> None:
        self.scope.exists = self.existing_tables

    def table_is_new(self, name: ObjectName | str) -> bool:
        """True when the relation holds no rows from before this batch (created in it)."""
        if isinstance(name, str):
            schema, _, short = name.rpartition(".")
            name = ObjectName(schema or None, short)
        if self.existing_tables is None:
            target = self.scope.resolve(name)
            return (target in self.scope.created or self.scope._created_unqualified(target)) \
                and target not in self.scope.origin
        return self.scope.is_new(name)

    def note_created(self, name: ObjectName, *, temporary: bool = False, if_not_exists: bool = False) -> None:
        """CREATE TABLE `name`: a new, empty table, unless IF NOT EXISTS met one that exists (or,
        without a database, might exist); a temporary one hides same-named tables (pg_temp is
        searched first)."""
        if temporary:
            self.scope.note_created(ObjectName("pg_temp", name.name))
            return
        if if_not_exists and (self.existing_tables is None or not self.scope.is_new(name)):
            return
        self.scope.note_created(name)

    def lint_file(self, file: MigrationFile, *, display: str, text: str | None = None) -> list[Finding]:
        from guard.lint import rules

        if text is None:
            text = file.text
        if text is None:
            try:
                text = file.path.read_text(encoding="utf-8-sig")
            except (OSError, UnicodeDecodeError):
                text = ""
        pragmas, pragma_findings = _pragmas(text, display)
        findings: list[Finding] = list(pragma_findings)
        self.scope.reset_file()
        self.not_valid.clear()
        self.held.clear()
        from guard.lint.integrity import policy_targets

        self.file_policies = [t for s in file.statements if s.kind == "CreatePolicyStmt" for t in policy_targets(s.sql)]
        learn = getattr(self.catalog, "read", None)  # guard.lint.declared: the batch declares as it goes
        getattr(self.catalog, "new_file", lambda: None)()
        for index, statement in enumerate(file.statements):
            if statement.kind:
                findings.extend(rules.check(statement, self, index, display))
                if learn is not None:
                    learn([statement])
        if any(f.rule in OUTSIDE_TRANSACTION_RULES for f in findings):
            # guard runs this file statement by statement: no lock outlives its statement
            findings = [f for f in findings if f.rule not in ("validate-same-transaction", "scan-under-lock",
                                                              "lock-table")]
            findings.extend(_lock_outside(file.statements, display))
        kept = [self._apply_policy(f, pragmas, file.statements) for f in findings
                if f.rule not in self.config.disabled]
        return sorted(kept, key=lambda f: (f.line, f.column))

    def _apply_policy(self, finding: Finding, pragmas: dict[int, list[tuple[str, str]]],
                      statements: Sequence[Statement]) -> Finding:
        level = self.config.severity.get(finding.rule)
        if level:
            finding = replace(finding, severity=level)
        if finding.rule in ("pragma", "syntax"):
            return finding
        statement = statements[finding.statement_index]
        last_line = statement.start_line + statement.sql.count("\n")
        for line in range(statement.start_line - 1, last_line + 1):
            for rule, reason in pragmas.get(line, []):
                if rule == finding.rule:
                    return replace(finding, severity="info", accepted=reason)
        return finding


def _lock_outside(statements: Sequence[Statement], display: str) -> list[Finding]:
    """LOCK in a file guard runs outside a transaction: PostgreSQL refuses it there (25P01,
    "LOCK TABLE can only be used in transaction blocks"), after the statements before it ran."""
    from guard.lint.ruleset import finding

    return [replace(finding("lock-table", st, index, display, "LOCK fails in this file: guard runs it outside a "
                            "transaction (a statement of it cannot run in one), and PostgreSQL refuses LOCK "
                            "outside a transaction block", "move the LOCK and what needs it to another file"),
                    severity="error")
            for index, st in enumerate(statements) if st.kind == "LockStmt"]


def _pragmas(text: str, display: str) -> tuple[dict[int, list[tuple[str, str]]], list[Finding]]:
    found: dict[int, list[tuple[str, str]]] = {}
    problems: list[Finding] = []
    if "guard:allow" not in text:
        return found, problems  # most files: no line to look at
    for number, line in enumerate(text.splitlines(), start=1):
        match = PRAGMA.search(line)
        if not match:
            continue
        words = match.group("rest").split(None, 1)
        column = match.start() + 1
        if not words:
            problems.append(Finding(display, number, column, "pragma", "style", "error",
                                    "guard:allow needs a rule id and a reason", "-- guard:allow <rule> <reason>"))
            continue
        rule = words[0]
        reason = words[1].strip() if len(words) > 1 else ""
        if rule not in RULES:
            problems.append(Finding(display, number, column, "pragma", "style", "error",
                                    f"guard:allow names an unknown rule {rule!r}", "see docs/lint.md for rule ids"))
        elif not reason:
            problems.append(Finding(display, number, column, "pragma", "style", "error",
                                    f"guard:allow {rule} needs a reason", f"-- guard:allow {rule} <why it is safe>"))
        else:
            found.setdefault(number, []).append((rule, reason))
    return found, problems


def lint_paths(
    paths: Iterable[Path], *, display_root: Path, server_major: int | None = None,
    config: LintConfig | None = None, existing_tables: Callable[[str], bool] | None = None,
    catalog: Catalog | None = None, context: Sequence[Path] = (),
) -> list[Finding]:
    """Lint files in order; a file that does not parse is one `syntax` error finding.

    Without a catalog (no database), the schema the migration set declares answers instead
    (guard.lint.declared): the `context` files (earlier files, already applied: read, not
    linted, their tables hold rows), then each linted statement once linted."""
    from guard.lint.declared import DeclaredCatalog
    from guard.migrations.files import MigrationFile

    declared = DeclaredCatalog() if catalog is None else None
    if declared is not None:
        for path in context:
            loaded = _load(path, display_root)
            if isinstance(loaded, MigrationFile):
                declared.new_file()
                declared.read(loaded.statements)
    linter = Linter(server_major=server_major, config=config or LintConfig(), existing_tables=existing_tables,
                    catalog=catalog if declared is None else declared)
    findings: list[Finding] = []
    for path in paths:
        loaded = _load(path, display_root)
        if isinstance(loaded, Finding):
            findings.append(loaded)
            continue
        findings.extend(linter.lint_file(loaded, display=_display(path, display_root)))
    return findings


def _display(path: Path, display_root: Path) -> str:
    try:
        return str(path.resolve().relative_to(display_root.resolve()))
    except ValueError:
        return str(path)


def _load(path: Path, display_root: Path) -> MigrationFile | Finding:
    """The parsed file, or the `syntax` finding of a file that does not parse."""
    from guard.migrations.files import FILE_PATTERN, MigrationRef, load

    match = FILE_PATTERN.match(path.name)
    ref = MigrationRef(match.group(1) if match else "0", match.group(2) if match else path.stem, path)
    try:
        return load(ref, display_root=display_root)
    except MigrationFileError as exc:
        return Finding(_display(path, display_root), exc.line or 1, 1, "syntax", "style", "error",
                       exc.message.split(": ", 1)[-1], "fix the SQL")


def blocking(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error" and f.accepted is None]


def classify(findings: Iterable[Finding]) -> set[str]:
    return {f.category for f in findings}


def needs_tripwire(findings_for_file: Iterable[Finding]) -> bool:
    """True when the file holds a statement whose effect the parser cannot know (a DO block,
    CALL, a call of a function that is not built in): the apply step runs it with the
    runtime tripwire. Accepted or not, such a finding keeps this answer."""
    return any(f.category == "effect-unknown" for f in findings_for_file)
