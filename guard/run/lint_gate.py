"""Step 6: lint every pending statement with PostgreSQL's parser; the policy acts on findings.

Two gates: before the backup check, errors that nothing can make safe; after it, destructive
statements, which need a protective copy or confirmed point-in-time recovery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from guard.config import LintSettings, ProtectConfig
from guard.errors import Blocked
from guard.migrations.own_transactions import several
from guard.run.state import RunState

if TYPE_CHECKING:
    import psycopg

    from guard.backups import BackupVerdict
    from guard.lint import Finding
    from guard.migrations.files import MigrationFile

# Statements the runner handles by running their file outside a transaction.
OUTSIDE_TRANSACTION_RULES = frozenset({"concurrently", "vacuum", "enum-add-value", "non-transactional"})
# Destructive rules whose data a protective copy keeps.
PROTECTED_RULES = frozenset({
    "drop-table", "drop-schema", "drop-column", "truncate", "delete-without-where", "update-without-where",
    "merge",  # the protector copies the target table whole (guard/protect/targets.py)
    "upsert",  # INSERT ... ON CONFLICT DO UPDATE: copied whole too (guard/protect/upsert.py)
})
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"


def lint_pending(
    conn: psycopg.Connection[Any],
    lint: LintSettings,
    pending: list[MigrationFile],
    server_major: int | None,
    display: Callable[[MigrationFile], str],
) -> list[Finding]:
    """Findings for the pending files, in order (tables created earlier in the batch known)."""
    from guard.lint import LintConfig, Linter
    from guard.lint.catalog import PgCatalog

    def existing(name: str) -> bool:
        row = conn.execute(TABLE_EXISTS, (name,)).fetchone()
        return bool(row and row[0])

    linter = Linter(
        server_major=server_major,
        config=LintConfig(disabled=lint.disable, severity=lint.severity),
        existing_tables=existing,
        catalog=PgCatalog(conn),
    )
    findings: list[Finding] = []
    for file in pending:
        findings.extend(linter.lint_file(file, display=display(file)))
    return findings


def outside_transaction(
    findings: list[Finding], pending: list[MigrationFile], display: Callable[[MigrationFile], str]
) -> set[str]:
    """Versions of files that must run statement by statement, outside a transaction
    (accepted or not: CREATE INDEX CONCURRENTLY cannot run inside one)."""
    files = {f.file for f in findings if f.rule in OUTSIDE_TRANSACTION_RULES}
    return {p.version for p in pending if display(p) in files}


def uncopyable(
    conn: psycopg.Connection[Any],
    max_bytes: int,
    findings: list[Finding],
    pending: list[MigrationFile],
    display: Callable[[MigrationFile], str],
) -> dict[tuple[str, int], str]:
    """Destructive findings whose data is above protect.max_bytes: no copy will protect them."""
    from guard.protect import oversized

    by_display = {display(f): f for f in pending}
    out: dict[tuple[str, int], str] = {}
    for finding in findings:
        if finding.category != "destructive" or finding.rule not in PROTECTED_RULES:
            continue
        file = by_display.get(finding.file)
        if file is None:
            continue
        too_big = oversized(conn, file.statements[finding.statement_index].sql, max_bytes)
        if too_big:
            out[(finding.file, finding.statement_index)] = ", ".join(too_big)
    return out


def hard_gate(findings: list[Finding]) -> None:
    """Blocked (exit 3) for blocking findings that nothing can make safe (not destructive, not
    a statement the runner runs outside a transaction)."""
    from guard.lint import blocking

    # A file's own BEGIN/COMMIT is applied as psql applies it (migrations/own_transactions.py).
    hard = [f for f in blocking(findings)
            if f.category != "destructive" and f.rule not in OUTSIDE_TRANSACTION_RULES
            and f.rule != "transaction-control"]
    if hard:
        first = hard[0]
        raise Blocked(
            f"{first.file}:{first.line}: {first.rule}: {first.message}"
            + (f" (+{len(hard) - 1} more)" if len(hard) > 1 else ""),
            hint=f"{first.alternative or 'fix it'}; or accept it with -- guard:allow {first.rule} <reason>",
        )


def destructive_gate(
    findings: list[Finding],
    lint: LintSettings,
    protect: ProtectConfig,
    require_pitr: bool,
    verdict: BackupVerdict,
    uncopyable: dict[tuple[str, int], str] | None = None,
) -> None:
    """Blocked (exit 3) for destructive statements with neither a protective copy (protect on,
    a rule copies cover, data under protect.max_bytes) nor confirmed PITR, per lint.destructive
    and backups.require_pitr."""
    from guard.lint import blocking

    destructive = [f for f in blocking(findings) if f.category == "destructive"]
    if not destructive or lint.destructive == "warn":
        return
    pitr = any(v.ok and v.pitr is not None and v.pitr.latest is not None for v in verdict.providers)
    uncopyable = uncopyable or {}
    if require_pitr and not pitr:
        first = destructive[0]
        raise Blocked(
            f"{first.file}:{first.line}: backups.require_pitr: a destructive migration needs confirmed "
            f"point-in-time recovery, and no provider confirms it ({first.message})",
            hint="enable PITR (Supabase add-on, pgBackRest WAL archiving) or accept with a guard:allow pragma",
        )

    # DROP TABLE/SCHEMA ... CASCADE: the protector copies the dropped tables and its restore SQL
    # recreates the foreign keys the cascade removed (views are named as not recreated), so
    # the cascade is covered where the drop itself is. DROP TYPE ... CASCADE is not.
    copied_drops = {(f.file, f.statement_index) for f in destructive if f.rule in ("drop-table", "drop-schema")}

    def copied(f: Finding) -> bool:
        covered = f.rule in PROTECTED_RULES or (
            f.rule == "drop-cascade" and (f.file, f.statement_index) in copied_drops)
        return protect.enabled and covered and (f.file, f.statement_index) not in uncopyable

    unprotected = [
        f for f in destructive
        if lint.destructive == "block" or not (copied(f) or pitr)
    ]
    if unprotected:
        first = unprotected[0]
        big = uncopyable.get((first.file, first.statement_index))
        raise Blocked(
            f"{first.file}:{first.line}: destructive statement with neither a protective copy nor "
            f"confirmed PITR: {first.message}" + (f" ({big} is above protect.max_bytes)" if big else ""),
            hint=f"accept it with -- guard:allow {first.rule} <reason>, enable PITR, or set lint.destructive",
        )


def lint(state: RunState, settings: LintSettings, protect: ProtectConfig, transaction: str) -> None:
    """Fill ``state.findings`` (in the report too) and stop at errors nothing makes safe: the
    hard gate, ``transaction: all`` with a statement that cannot run in a transaction. Read
    only, the hard gate's refusal is noted and nothing else is asked."""
    state.findings = lint_pending(state.db, settings, state.pending, state.server_major, state.display)
    state.report.findings = [f.as_dict() for f in state.findings]
    if state.read_only:
        return
    hard_gate(state.findings)
    state.uncopyable = uncopyable(state.db, protect.max_bytes, state.findings, state.pending, state.display)
    if transaction == "all" and (outside_transaction(state.findings, state.pending, state.display)
                                 or several(state.pending)):
        raise Blocked(
            "transaction: all cannot include statements that must run outside a transaction "
            "(CREATE INDEX CONCURRENTLY, VACUUM...) nor files with several transactions of their own",
            hint="use transaction: per-file for this release",
        )


def destructive(state: RunState, settings: LintSettings, protect: ProtectConfig, require_pitr: bool) -> None:
    """The destructive policy against the backup verdict (after step 7, before any change)."""
    assert state.verdict is not None
    destructive_gate(state.findings, settings, protect, require_pitr, state.verdict, state.uncopyable)


def would_block(state: RunState, settings: LintSettings, protect: ProtectConfig, require_pitr: bool) -> None:
    """Read only (guard check): the first gate that would refuse, noted in ``state.blocked``."""
    assert state.verdict is not None
    try:
        hard_gate(state.findings)
        destructive_gate(state.findings, settings, protect, require_pitr, state.verdict)
    except Blocked as exc:
        state.blocked.append(str(exc))
