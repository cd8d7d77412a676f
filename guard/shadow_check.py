"""`guard check --shadow`: the dry run's part of the check, and the check with no target.

A pull request from a fork has no secrets, so no database URL: `guard check --shadow embedded`
then lints every file and dry-runs every file on the shadow, and says in the report that the
backup gate and the comparison with the target's history were not checked. Exit codes as
`guard check`: 0 ready, 1 the dry run failed, 3 the lint policy would block.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from guard.errors import Blocked, Interrupted, MigrationFileError, UsageError
from guard.report.model import MigrationError, MigrationResult

if TYPE_CHECKING:
    from guard.check import CheckOptions
    from guard.config import Config
    from guard.lint import Finding
    from guard.migrations.files import MigrationFile
    from guard.report.model import RunReport

Progress = Callable[[str], None]

# Errors naming a Supabase platform object: a hint that the shadow lacks the Supabase base.
SUPABASE_NAMES = re.compile(r'"(auth|storage|extensions|realtime|vault|anon|authenticated|service_role|'
                            r'supabase_\w+)"|\b(auth|storage|extensions)\.\w+')

NOT_CHECKED_WITHOUT_TARGET = (
    "not checked: the backup gate (no database URL: guard cannot ask the target's providers)",
    "not checked: which files are pending (no database URL: every file was dry-run from an empty shadow)",
)


def check_without_target(config: Config, options: CheckOptions, report: RunReport, *,
                         progress: Progress) -> RunReport:
    """Lint and dry-run every local file; no connection to any target."""
    from guard.run.files import display, load_migrations
    from guard.run.lint_gate import hard_gate

    if options.shadow_from_target:
        raise UsageError("--shadow-from-target needs the target: set database_url, or drop the flag")
    report.migrations_dir = display(config.migrations.dir, config.base_dir)
    report.warnings.extend(NOT_CHECKED_WITHOUT_TARGET)
    try:
        files = load_migrations(config.migrations, config.base_dir, progress)
    except MigrationFileError as exc:
        not_applicable(report, exc)
        return report
    report.migrations = [
        MigrationResult(f.version, f.name, display(f.path, config.base_dir), "pending",
                        sum(1 for s in f.statements if s.kind)) for f in files
    ]
    findings = _lint(config, files)
    report.findings = [f.as_dict() for f in findings]
    if run_shadow(config, options, report, files, files, None, progress):
        return report
    try:
        hard_gate(findings)
    except Blocked as exc:
        report.set_outcome("blocked", f"guard run would be blocked: {exc}", changed=False)
        return report
    report.set_outcome("ready", f"every file ({len(files)}) applies on the shadow; "
                       "the backup gate and the pending set were not checked (no database URL).",
                       changed=False)
    return report


def _lint(config: Config, files: list[MigrationFile]) -> list[Finding]:
    """Each file linted on its own: without the target's history any file may be the pending
    one, and a table an earlier file creates may well exist (and be locked) in production. What
    the earlier files declare (column types, CHECKs, domains) is the schema it is judged against
    (guard.lint.declared)."""
    from guard.lint import LintConfig, Linter
    from guard.lint.declared import DeclaredCatalog
    from guard.run.files import display

    found: list[Finding] = []
    declared = DeclaredCatalog()
    for file in files:
        linter = Linter(server_major=None, catalog=declared,
                        config=LintConfig(disabled=config.lint.disable, severity=config.lint.severity))
        found.extend(linter.lint_file(file, display=display(file.path, config.base_dir)))  # reads it too
    return found


def run_shadow(
    config: Config,
    options: CheckOptions,
    report: RunReport,
    files: list[MigrationFile],
    pending: list[MigrationFile],
    url: str | None,
    progress: Progress,
) -> bool:
    """Run the dry run and fill ``report.shadow``; True when it failed (the report says where)."""
    from guard.run.files import display
    from guard.shadow import SUPABASE_SCHEMAS, choose_base, open_shadow
    from guard.shadow_copy import copy_schema
    from guard.shadow_trace import disagreement_findings, traced_dry_run

    assert options.shadow is not None
    base = choose_base(config, database_url=url)
    with open_shadow(options.shadow, target_url=url, base=base, progress=progress) as shadow:
        if options.shadow_from_target and url:
            excluded = SUPABASE_SCHEMAS if base == "supabase" else ()
            copy_schema(url, shadow, exclude_schemas=excluded, progress=progress)
            to_apply = pending
        else:
            to_apply = files
        progress(f"dry run: applying {len(to_apply)} file(s) to the shadow as {shadow.role}")
        outcome, traced = traced_dry_run(
            shadow, to_apply, {f.version for f in pending}, report.findings,
            lock_timeout=config.migrations.lock_timeout,
            statement_timeout=config.migrations.statement_timeout,
            display=lambda f: display(f.path, config.base_dir),
            progress=progress, with_target=url is not None,
        )
        verify_failed: list[str] = []
        if outcome.failed is None and not outcome.interrupted:  # shadow: true checks (issue #19)
            from guard.run.verify import on_shadow

            verify_failed = on_shadow(config.verify, shadow.url, config.base_dir, report, progress)
        if outcome.interrupted:
            # A cancelled job, not a migration that does not apply: leave (the shadow is
            # cleaned up on the way out) and let the CLI say which signal it was.
            raise Interrupted(outcome.interrupted)
    report.shadow = {
        "mode": "embedded" if options.shadow == "embedded" else "url",
        "from_target": options.shadow_from_target,
        "base": shadow.base,
        "role": shadow.role,
        "applied": [r.version for r in outcome.results if r.status == "applied"],
        "failed": outcome.failed.version if outcome.failed else None,
        "not_checked": list(shadow.limits),
        "trace": traced,  # each pending statement's observed locks beside its static verdict
    }
    report.findings.extend(f.as_dict() for f in
                           disagreement_findings(traced, to_apply, lambda f: display(f.path, config.base_dir)))
    for limit in shadow.limits:
        report.warnings.append(f"dry run: {limit}")
    failed = _verdict(report, outcome, {f.version for f in pending}, supabase=base == "supabase")
    if not failed and verify_failed:
        report.set_outcome("dry_run_failed", f"on the shadow, verification failed: {', '.join(verify_failed)}",
                           changed=False)
    return failed or bool(verify_failed)


def _verdict(report: RunReport, outcome: object, pending_versions: set[str], *, supabase: bool) -> bool:
    from guard.migrations.apply import ApplyOutcome

    assert isinstance(outcome, ApplyOutcome)
    shadow_status = {r.version: r for r in outcome.results}
    failed = outcome.failed
    if failed is None:
        for result in report.migrations:
            if result.version in shadow_status:
                result.duration_ms = shadow_status[result.version].duration_ms
        return False
    # Report the failing file (pending or not: an applied file that fails from scratch is
    # worth knowing too, but the verdict is about what would run).
    listed = {m.version for m in report.migrations}
    if failed.version not in listed:
        report.migrations.insert(0, failed)
    else:
        report.migrations = [failed if m.version == failed.version else m for m in report.migrations]
    err = failed.error
    where = f"{err.file}:{err.line}" if err and err.line else failed.file
    state = f" (SQLSTATE {err.sqlstate})" if err and err.sqlstate else ""
    scope = "" if failed.version in pending_versions else " (an already applied file, replayed from scratch)"
    hint = ""
    if err and err.sqlstate in ("42501", "58P01") or (err and "superuser" in err.message):
        hint = "; the dry run runs without superuser, as migrations do on Supabase"
    elif err and not supabase and SUPABASE_NAMES.search(err.message):
        hint = ("; this looks like a Supabase project: add supabase/config.toml or set shadow.base: supabase "
                "in guard.yml")
    report.set_outcome(
        "dry_run_failed",
        f"dry run failed at {where}: {err.message if err else '?'}{state}{scope}{hint}",
        changed=False,
    )
    return True


def not_applicable(report: RunReport, exc: MigrationFileError) -> None:
    """A file that does not even parse cannot apply: the dry-run verdict, exit 1."""
    name = exc.file.rsplit("/", 1)[-1]
    version = name.split("_", 1)[0]
    report.migrations = [
        MigrationResult(version, name.removesuffix(".sql").split("_", 1)[-1], exc.file, "failed", 0,
                        error=MigrationError(exc.message.split(": ", 1)[-1], None, exc.file, exc.line))
    ]
    report.set_outcome("dry_run_failed", f"{exc}", changed=False)
