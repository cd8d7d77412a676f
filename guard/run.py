"""The guarded run: the numbered steps of DESIGN.md, in order, once.

Everything before step 8 only reads. A refusal before then leaves the database untouched.
The run produces one RunReport; the CLI renders it and exits with its exit code.
"""

from __future__ import annotations

import datetime as dt
import functools
import getpass
import os
import secrets
import socket
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard import __version__, journal
from guard.backups import (
    BackupEntry,
    BackupVerdict,
    ProviderContext,
    SinkContext,
    SinkError,
    check_backups,
    make_providers,
    make_sinks,
)
from guard.config import Config, require_database_url
from guard.db import (
    acquire_lock,
    connect,
    describe_url,
    refuse_transaction_pooler,
    release_lock,
    server_facts,
)
from guard.errors import (
    EXIT_BLOCKED,
    EXIT_CHANGED,
    EXIT_FAILED_ROLLED_BACK,
    Blocked,
    GuardError,
    Interrupted,
)
from guard.migrations import history
from guard.migrations.apply import ApplyOutcome, apply_pending
from guard.migrations.files import under
from guard.migrations.plan import compute_plan
from guard.protect import DESTRUCTIVE_KINDS, Protector
from guard.protect import finish_run as _finish_protection
from guard.report.model import (
    BackupsReport,
    DatabaseInfo,
    MigrationError,
    MigrationResult,
    ProviderReport,
    RestoreTarget,
    RunReport,
    SinkReport,
    iso,
)
from guard.restore import RestoreContext, build_plan, plan_for_unfinished, supabase_project_ref
from guard.tripwire import for_run

if TYPE_CHECKING:
    import psycopg

    from guard.lint import Finding
    from guard.migrations.files import MigrationFile

CREATE_RESTORE_POINT = "SELECT pg_create_restore_point(%s)::text"
CLOCK_AND_LSN = """
SELECT clock_timestamp(),
       CASE WHEN pg_is_in_recovery() THEN NULL ELSE pg_current_wal_lsn()::text END
"""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunOptions:
    reason: str | None = None
    allow_stale_backup: bool = False
    include_all: bool = False
    acknowledge: str | None = None  # run id of an unfinished earlier run to let go of
    command: tuple[str, ...] = ()  # a migration tool to wrap instead of the built-in runner


@dataclass
class _State:
    journal_started: bool = False
    server_major: int | None = None
    conn: Any = None  # a replacement connection after the original was lost


RECONNECT_DELAYS = (0.5, 1, 2, 4, 8)  # about 15 s: long enough for a server restart


def url_of(config: Config) -> str:
    return require_database_url(config)


def _reconcile(
    conn: psycopg.Connection[Any],
    url: str,
    report: RunReport,
    outcome: ApplyOutcome,
    progress: Progress,
) -> psycopg.Connection[Any] | None:
    """After a lost connection or a signal: settle each file's status from the history.

    Returns a usable connection (the original, or a new one), or None when the server cannot
    be reached again; then files whose commit was in flight stay "unknown".
    """
    import time

    import psycopg

    from guard.errors import ConnectError

    live: psycopg.Connection[Any] | None = None if (conn.broken or conn.closed) else conn
    if live is None:
        for delay in RECONNECT_DELAYS:
            progress(f"connection lost; reconnecting in {delay:g}s to read the history")
            time.sleep(delay)
            try:
                live = connect(url, application_name=f"guard run {report.run_id}")
                break
            except ConnectError:
                continue
    if live is None:
        report.warnings.append("could not reconnect to read the history: outcome of the last file unknown")
        return None
    try:
        applied = {a.version for a in history.read_history(live)}
    except psycopg.Error:
        return live
    outcome.committed = [r.version for r in outcome.results if r.version in applied]
    for result in outcome.results:
        if result.version in applied and result.status != "applied":
            result.status = "applied"
            result.error = None
        elif result.status == "applied" and result.version not in applied:
            # Committed, then lost: a crash with synchronous_commit = off loses recent commits.
            result.status = "failed"
            result.error = MigrationError(
                message="committed, but not in the history after the server came back "
                "(lost in a crash: is synchronous_commit off?)",
                sqlstate=None, file=result.file, line=None,
            )
        elif result.status == "unknown":
            result.status = "failed"
            if result.error is not None:
                result.error.message += " (the connection broke at COMMIT; the history shows it did not commit)"
    outcome.unknown = False
    return live


def _journal_interrupted(url: str, run_id: str) -> None:
    """From a side thread and connection: the journal says "interrupted" even if the process
    is gone before the main connection can say more."""
    import psycopg

    try:
        conn = connect(url, application_name=f"guard signal {run_id}", connect_timeout=5)
    except GuardError:
        return
    try:
        conn.execute(journal.MARK_INTERRUPTED, (run_id,))
    except psycopg.Error:
        pass
    finally:
        conn.close()


@contextmanager
def _signals_cancel(outcome: ApplyOutcome, progress: Progress, url: str, run_id: str) -> Iterator[None]:
    """SIGINT/SIGTERM: raise Interrupted in the main thread (psycopg cancels the statement on
    the server, the file's transaction rolls back); a second signal exits at once."""
    import signal
    import threading

    marker: list[threading.Thread] = []

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    seen: list[str] = []

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if seen:
            # Second signal: leave now. The journal row stays "running", so the next run
            # refuses and reports exactly what the history shows committed.
            os._exit(EXIT_CHANGED if outcome.committed else EXIT_FAILED_ROLLED_BACK)
        seen.append(name)
        progress(f"{name} received: cancelling the running statement (again to exit at once)")
        thread = threading.Thread(target=_journal_interrupted, args=(url, run_id), daemon=True)
        thread.start()
        marker.append(thread)
        raise Interrupted(name)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        for thread in marker:
            thread.join(timeout=10)


def new_run_id(now: dt.datetime | None = None) -> str:
    """20 characters, sortable, unique enough: 20261125013000-a1b2c (also a valid restore point name)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)[:5]}"


def ci_context(environ: Mapping[str, str]) -> dict[str, str]:
    """Commit, actor, ref and run URL from GitHub Actions or GitLab CI, when present."""
    ci: dict[str, str] = {}
    pairs = {
        "commit": ("GITHUB_SHA", "CI_COMMIT_SHA"),
        "actor": ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"),
        "ref": ("GITHUB_REF", "CI_COMMIT_REF_NAME"),
        "repository": ("GITHUB_REPOSITORY", "CI_PROJECT_PATH"),
    }
    for key, names in pairs.items():
        for name in names:
            if environ.get(name):
                ci[key] = environ[name]
                break
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        ci["run_url"] = f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    elif environ.get("CI_JOB_URL"):
        ci["run_url"] = environ["CI_JOB_URL"]
    return ci


def actor(ci: Mapping[str, str]) -> str:
    if ci.get("actor"):
        return f"guard ({ci['actor']})"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a run for
        user = "unknown"
    return f"guard ({user}@{socket.gethostname()})"


def new_report(command: str, config: Config, environ: Mapping[str, str]) -> RunReport:
    now = dt.datetime.now(dt.timezone.utc)
    report = RunReport(
        command=command,
        run_id=environ.get("GUARD_RUN_ID") or new_run_id(now),
        started_at=iso(now),
        ci=ci_context(environ),
        tool={"name": "migration-guard", "version": __version__},
    )
    if config.database_url:
        report.database = DatabaseInfo(target=describe_url(config.database_url))
    return report


def load_migrations(config: Config, progress: Progress) -> list[MigrationFile]:
    """Discover and parse every local file (parse errors stop here with file:line)."""
    from guard.migrations.files import discover, load, skipped

    directory = config.migrations.dir
    for path in skipped(directory):
        progress(f"skipping {_display(path, config)}: name does not match <version>_<name>.sql")
    return [load(ref, display_root=config.base_dir) for ref in discover(directory)]


def _display(path: Path, config: Config) -> str:
    """``path`` relative to the project (as Path.relative_to, without resolving)."""
    given = os.fspath(path)
    relative = under(given, os.fspath(config.base_dir))
    return given if relative is None else relative


def guarded_run(
    config: Config,
    options: RunOptions,
    report: RunReport,
    *,
    environ: Mapping[str, str] | None = None,
    progress: Progress | None = None,
    mask: Callable[[str], str] | None = None,
) -> RunReport:
    """Steps 2-13 of the guarded run. Fills ``report``; raises GuardError only for exits 2/3."""
    environ = os.environ if environ is None else environ
    progress = progress or (lambda _line: None)
    mask = mask or (lambda text: text)
    url = require_database_url(config)
    report.migrations_dir = _display(config.migrations.dir, config)
    if options.allow_stale_backup and not options.reason:
        raise GuardError("--allow-stale-backup needs --reason explaining why")
    if options.acknowledge and not options.reason:
        raise GuardError("--acknowledge needs --reason saying what was checked")

    # 5a. Files first: a broken file is refused before we even connect.
    if options.command:
        _check_executable(options.command)
        files: list[MigrationFile] = []
    else:
        files = load_migrations(config, progress)
    by_version = {f.version: f for f in files}

    # 2. Connect and record server facts.
    refuse_transaction_pooler(url)
    conn = connect(url, application_name=f"guard run {report.run_id}")
    state = _State()
    try:
        facts = server_facts(conn)
        report.database = DatabaseInfo(
            target=describe_url(url),
            server_version=facts.version,
            role=facts.role,
            superuser=facts.superuser,
        )
        if facts.in_recovery:
            raise Blocked(
                f"{describe_url(url)} is a standby (in recovery): migrations must run on the primary"
            )
        # 3. Lock: one guard at a time per database.
        acquire_lock(conn, facts.database)
        state.server_major = facts.major
        try:
            # 4. Journal: an earlier run that never finished blocks until acknowledged.
            _check_unfinished(conn, config, options, report)
            if options.command:
                _wrapped_run(conn, config, options, report, environ, progress, mask, state)
            else:
                _locked_run(conn, config, options, report, files, by_version, environ, progress, state)
        except GuardError as exc:
            if state.journal_started:
                status = "blocked" if exc.exit_code == EXIT_BLOCKED else "usage_error"
                report.set_outcome(status, str(exc), changed=False)
                _finish_journal(conn, report, mask)
            raise
        else:
            live = state.conn if state.conn is not None else conn
            if state.journal_started and not (live.broken or live.closed):
                _finish_journal(live, report, mask)
        finally:
            if not (conn.broken or conn.closed):
                release_lock(conn)
        return report
    finally:
        conn.close()
        if state.conn is not None and state.conn is not conn:
            state.conn.close()


def plan_pending(
    conn: psycopg.Connection[Any],
    config: Config,
    options: RunOptions,
    files: list[MigrationFile],
    by_version: dict[str, MigrationFile],
    report: RunReport,
) -> list[MigrationFile]:
    """Step 5: the pending files, or Blocked for a set that is not safe to apply."""
    from guard.migrations.files import fingerprint

    # 5. Plan: what is pending against the history.
    applied = history.read_history(conn)
    plan = compute_plan(
        [f.version for f in files],
        applied,
        include_all=options.include_all or config.migrations.include_all,
        filename_of={f.version: f.ref.filename for f in files},
    )
    for entry in applied:
        local = by_version.get(entry.version)
        if local is None or entry.statements is None:
            continue
        if fingerprint(entry.statements) != fingerprint(s.sql for s in local.statements):
            raise Blocked(
                f"{_display(local.path, config)}: applied as version {entry.version}, "
                "but the file has changed since",
                hint="never edit an applied migration; add a new one instead",
            )
    pending = [by_version[v] for v in plan.pending]
    report.migrations = [
        MigrationResult(f.version, f.name, _display(f.path, config), "pending", len(f.statements))
        for f in pending
    ]
    if plan.remote_only:
        report.warnings.append(
            f"applied versions with no local file: {', '.join(plan.remote_only)}"
        )
    return pending


def _locked_run(
    conn: psycopg.Connection[Any],
    config: Config,
    options: RunOptions,
    report: RunReport,
    files: list[MigrationFile],
    by_version: dict[str, MigrationFile],
    environ: Mapping[str, str],
    progress: Progress,
    state: _State,
) -> None:
    pending = plan_pending(conn, config, options, files, by_version, report)
    if not pending:
        report.set_outcome("nothing_pending", "Nothing pending: the database is up to date.", changed=False)
        return
    progress(f"{len(pending)} pending: {', '.join(f.ref.filename for f in pending)}")

    # 6. Lint: every pending statement, with PostgreSQL's parser; policy acts on the findings.
    findings = lint_pending(conn, config, pending, state.server_major)
    report.findings = [f.as_dict() for f in findings]
    lint_gate(findings, config, None)
    uncopyable = _uncopyable(conn, config, findings, pending)
    if config.migrations.transaction == "all" and outside_transaction(
        findings, pending, lambda f: _display(f.path, config)
    ):
        raise Blocked(
            "transaction: all cannot include statements that must run outside a transaction "
            "(CREATE INDEX CONCURRENTLY, VACUUM...)",
            hint="use transaction: per-file for this release",
        )

    default_reason = "Before migration " + ", ".join(
        f.ref.filename.removesuffix(".sql") for f in pending
    )
    _before_change(conn, config, options, report, [f.version for f in pending], default_reason,
                   progress, state, gate=lambda verdict: lint_gate(findings, config, verdict, uncopyable))
    # 10. Protect (whole database): a snapshot when configured for this kind of release.
    _snapshot_step(config, report, findings, progress)

    # 11. Apply, with SIGINT/SIGTERM turned into a clean cancel of the running statement.
    history.ensure_history(conn)
    outcome = ApplyOutcome()
    nontx = outside_transaction(findings, pending, lambda f: _display(f.path, config))
    # 10. Protect: copies of what destructive statements destroy, made in their transaction.
    protector = (
        Protector(report.run_id, schema=config.protect.schema, max_bytes=config.protect.max_bytes,
                  retention=config.protect.retention, progress=progress)
        if config.protect.enabled
        else None
    )
    # Safety net: the runtime tripwire for files the parser cannot vouch for (guard/tripwire.py).
    tripwire = for_run(conn, config, report, findings, pending, lambda f: _display(f.path, config))
    with _signals_cancel(outcome, progress, url_of(config), report.run_id):
        apply_pending(
            conn,
            pending,
            transaction=config.migrations.transaction,
            lock_timeout=config.migrations.lock_timeout,
            statement_timeout=config.migrations.statement_timeout,
            display=lambda f: _display(f.path, config),
            progress=progress,
            on_commit=functools.partial(journal.committed_row, report.run_id),
            outcome=outcome,
            lock_retries=config.migrations.lock_retries,
            lock_retry_delay=config.migrations.lock_retry_delay,
            before_statement=protector.before if protector else None,
            before_kinds=DESTRUCTIVE_KINDS if protector else None,
            outside_transaction=nontx,
            server_major=state.server_major,
            tripwire=tripwire,  # safety net
        )
    report.migrations = outcome.results
    if protector is not None:
        _finish_protection(conn, config.protect.retention, protector, report.warnings, progress)  # safety net
        committed_files = {r.file for r in outcome.results if r.status == "applied"}
        # A copy made in a file that rolled back rolled back with it.
        report.protective_copies = [
            asdict(c) for c in protector.copies if c.statement.rsplit(":", 1)[0] in committed_files
        ]
        report.warnings.extend(protector.skipped)
    if outcome.connection_lost or outcome.unknown or outcome.interrupted:
        # What committed is whatever the history says: it is written in each file's transaction.
        state.conn = _reconcile(conn, url_of(config), report, outcome, progress)

    # 13. Outcome and restore plan, from what each file's status says.
    report.interrupted = outcome.interrupted
    _set_outcome(report, outcome)
    report.restore_plan = build_plan(report, restore_context(config))


def _set_outcome(report: RunReport, outcome: ApplyOutcome) -> None:
    results = outcome.results
    committed = [r.version for r in results if r.status == "applied"]
    stopped = next((r for r in results if r.status in ("failed", "unknown")), None)
    if stopped is None:
        stopped = next((r for r in results if r.status != "applied"), None)
    lost = " (connection lost)" if outcome.connection_lost else ""
    if stopped is not None and outcome.changed_outside_transaction and not outcome.interrupted:
        report.set_outcome(
            "failed_partially_applied",
            f"{stopped.version} failed outside a transaction after some of its statements took effect.",
            changed=True,
        )
    elif stopped is None:
        report.set_outcome("applied", f"Applied {len(committed)} migration(s).", changed=True)
    elif any(r.status == "unknown" for r in results):
        report.set_outcome(
            "outcome_unknown",
            f"Connection lost while committing {stopped.version}: outcome unknown.",
            changed=None,
        )
    elif outcome.interrupted:
        report.set_outcome(
            "failed_partially_applied" if committed else "failed_rolled_back",
            f"Interrupted by {outcome.interrupted} at {stopped.version}; "
            + (f"{len(committed)} file(s) had committed." if committed else "nothing was committed."),
            changed=bool(committed),
        )
    elif committed:
        report.set_outcome(
            "failed_partially_applied",
            f"{stopped.version} {'failed' if stopped.status == 'failed' else 'was not applied'}{lost} "
            f"after {len(committed)} file(s) committed.",
            changed=True,
        )
    else:
        report.set_outcome(
            "failed_rolled_back",
            f"{stopped.version} failed{lost} and was rolled back; nothing was committed.",
            changed=False,
        )


def _snapshot_step(config: Config, report: RunReport, findings: list[Finding], progress: Progress) -> None:
    mode = config.snapshot.mode
    destructive = any(f.category == "destructive" for f in findings)
    if mode == "off" or (config.snapshot.when == "destructive" and not destructive):
        return
    from guard.snapshot import take_snapshot

    progress(f"taking a {mode} snapshot before applying")
    manifest = take_snapshot(
        require_database_url(config), mode=mode, out_dir=config.snapshot.dir,
        encrypt=config.snapshot.encrypt, key=config.snapshot.key, progress=progress,
    )
    report.snapshot = {
        "file": str(manifest.path), "manifest": str(manifest.manifest_path),
        "mode": mode, "bytes": manifest.bytes, "sha256": manifest.sha256, "encrypted": manifest.encrypted,
        # With the directory in the paths: the plan is read where guard ran, not in snapshot.dir.
        "restore_command": " && ".join(manifest.restore_steps(config.snapshot.dir)),
    }


def _check_executable(command: tuple[str, ...]) -> None:
    import shutil

    if shutil.which(command[0]) is None:
        raise GuardError(
            f"command not found: {command[0]}", hint="guard runs it without a shell; give a path or fix PATH"
        )


def _wrapped_run(
    conn: psycopg.Connection[Any],
    config: Config,
    options: RunOptions,
    report: RunReport,
    environ: Mapping[str, str],
    progress: Progress,
    mask: Callable[[str], str],
    state: _State,
) -> None:
    """Steps 1-10 and 12-13 around another migration tool; the catalog says what it changed."""
    from guard import fingerprint

    argv = list(options.command)
    shown = " ".join(argv[:4]) + (" ..." if len(argv) > 4 else "")
    _before_change(conn, config, options, report, [], f"Before {shown}", progress, state)
    before = fingerprint.take(conn)
    progress(f"running {shown}")
    code = _run_wrapped(argv, require_database_url(config), environ, mask)
    after = fingerprint.take(conn)
    changes = fingerprint.diff(before, after)
    versions = fingerprint.applied_versions(before, after)
    for version in versions:
        journal.mark_committed(conn, report.run_id, version)
    report.wrapped = {
        "argv": argv,
        "exit_code": code,
        "changes": [{"action": c.action, "kind": c.kind, "name": c.name} for c in changes],
    }
    report.migrations = [MigrationResult(v, "", argv[0], "applied", 0) for v in versions]
    listed = "; ".join(c.describe() for c in changes[:5]) + (" ..." if len(changes) > 5 else "")
    if code == 0 and not changes:
        report.set_outcome("nothing_pending", f"{argv[0]} exited 0 and changed nothing.", changed=False)
    elif code == 0:
        report.set_outcome("applied", f"{argv[0]} exited 0; {len(changes)} change(s): {listed}", changed=True)
    elif not changes:
        report.set_outcome(
            "failed_rolled_back", f"{argv[0]} exited {code} without changing the database.", changed=False
        )
    else:
        report.set_outcome(
            "failed_partially_applied",
            f"{argv[0]} exited {code} after changing the database: {listed}",
            changed=True,
        )
    report.restore_plan = build_plan(report, restore_context(config))


def _run_wrapped(argv: list[str], url: str, environ: Mapping[str, str], mask: Callable[[str], str]) -> int:
    """Run argv without a shell, DATABASE_URL in its environment, its output streamed (masked)
    to stderr; SIGINT/SIGTERM are passed on to it. Returns its exit status."""
    import signal
    import subprocess
    import sys
    import threading

    env = {**environ, "DATABASE_URL": url}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        text=True, errors="replace", bufsize=1,
    )
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        def forward(signum: int, _frame: object) -> None:
            proc.send_signal(signum)

        previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stderr.write(mask(line))
            sys.stderr.flush()
        return proc.wait()
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def _before_change(
    conn: psycopg.Connection[Any],
    config: Config,
    options: RunOptions,
    report: RunReport,
    pending: list[str],
    default_reason: str,
    progress: Progress,
    state: _State,
    gate: Callable[[BackupVerdict], None] | None = None,
) -> None:
    """Steps 7-9: confirm a backup, mark the restore point, journal and log the manual backup.

    ``gate`` sees the backup verdict before anything is written (the destructive policy)."""
    # 7. Confirm a recent automated backup (fail closed).
    verdict = _check_backups(conn, config, progress)
    report.backups = _backups_report(verdict)
    if not verdict.ok:
        if not options.allow_stale_backup:
            raise Blocked(
                f"no recent automated backup confirmed: {verdict.reason()}",
                hint="nothing was changed; fix the backups, or pass --allow-stale-backup --reason '...'",
            )
        report.backups.override = {"reason": options.reason, "verdict": verdict.reason()}
        report.warnings.append(f"backup check overridden: {verdict.reason()} (reason: {options.reason})")
        progress("backup check overridden by --allow-stale-backup")
    else:
        progress(f"backups: {verdict.providers[0].provider}: {verdict.providers[0].message}")
    if gate is not None:
        gate(verdict)

    # 8. Mark the restore point: the server's clock and WAL position before the first statement.
    report.restore_target = _mark_restore_point(conn, report.run_id)
    progress(f"restore target: {report.restore_target.timestamp} (LSN {report.restore_target.lsn or 'n/a'})")

    # 9. Log the manual backup before any change; a required sink that fails blocks the run.
    reason = options.reason or config.reason or default_reason
    report.reason = reason
    journal.start(
        conn,
        run_id=report.run_id,
        command=report.command,
        pending=list(pending),
        restore_target=asdict(report.restore_target),
        actor=actor(report.ci),
        reason=reason,
    )
    state.journal_started = True
    _log_manual_backup(conn, config, report, pending, reason, progress)


# Statements the runner handles by running their file outside a transaction.
OUTSIDE_TRANSACTION_RULES = frozenset({"concurrently", "vacuum", "enum-add-value"})
# Destructive rules whose data a protective copy keeps.
PROTECTED_RULES = frozenset({
    "drop-table", "drop-schema", "drop-column", "truncate", "delete-without-where", "update-without-where",
})
TABLE_EXISTS = "SELECT to_regclass(%s) IS NOT NULL"


def lint_pending(
    conn: psycopg.Connection[Any], config: Config, pending: list[MigrationFile], server_major: int | None
) -> list[Finding]:
    """Findings for the pending files, in order (tables created earlier in the batch known)."""
    from guard.lint import LintConfig, Linter

    def existing(name: str) -> bool:
        row = conn.execute(TABLE_EXISTS, (name,)).fetchone()
        return bool(row and row[0])

    linter = Linter(
        server_major=server_major,
        config=LintConfig(disabled=config.lint.disable, severity=config.lint.severity),
        existing_tables=existing,
    )
    findings: list[Finding] = []
    for file in pending:
        findings.extend(linter.lint_file(file, display=_display(file.path, config)))
    return findings


def outside_transaction(
    findings: list[Finding], pending: list[MigrationFile], display: Callable[[MigrationFile], str]
) -> set[str]:
    """Versions of files that must run statement by statement, outside a transaction
    (accepted or not: CREATE INDEX CONCURRENTLY cannot run inside one)."""
    files = {f.file for f in findings if f.rule in OUTSIDE_TRANSACTION_RULES}
    return {p.version for p in pending if display(p) in files}


def _uncopyable(
    conn: psycopg.Connection[Any], config: Config, findings: list[Finding], pending: list[MigrationFile]
) -> dict[tuple[str, int], str]:
    """Destructive findings whose data is above protect.max_bytes: no copy will protect them."""
    from guard.protect import oversized

    by_display = {_display(f.path, config): f for f in pending}
    out: dict[tuple[str, int], str] = {}
    for finding in findings:
        if finding.category != "destructive" or finding.rule not in PROTECTED_RULES:
            continue
        file = by_display.get(finding.file)
        if file is None:
            continue
        too_big = oversized(conn, file.statements[finding.statement_index].sql, config.protect.max_bytes)
        if too_big:
            out[(finding.file, finding.statement_index)] = ", ".join(too_big)
    return out


def lint_gate(
    findings: list[Finding],
    config: Config,
    verdict: BackupVerdict | None,
    uncopyable: dict[tuple[str, int], str] | None = None,
) -> None:
    """Policy (before any change). Without a verdict: errors that nothing can make safe.
    With one: destructive statements need a protective copy or confirmed PITR."""
    from guard.lint import blocking

    errors = blocking(findings)
    if verdict is None:
        hard = [f for f in errors if f.category != "destructive" and f.rule not in OUTSIDE_TRANSACTION_RULES]
        if hard:
            first = hard[0]
            raise Blocked(
                f"{first.file}:{first.line}: {first.rule}: {first.message}"
                + (f" (+{len(hard) - 1} more)" if len(hard) > 1 else ""),
                hint=f"{first.alternative or 'fix it'}; or accept it with -- guard:allow {first.rule} <reason>",
            )
        return
    destructive = [f for f in errors if f.category == "destructive"]
    if not destructive or config.lint.destructive == "warn":
        return
    pitr = any(v.ok and v.pitr is not None and v.pitr.latest is not None for v in verdict.providers)
    uncopyable = uncopyable or {}
    if config.backups.require_pitr and not pitr:
        first = destructive[0]
        raise Blocked(
            f"{first.file}:{first.line}: backups.require_pitr: a destructive migration needs confirmed "
            f"point-in-time recovery, and no provider confirms it ({first.message})",
            hint="enable PITR (Supabase add-on, pgBackRest WAL archiving) or accept with a guard:allow pragma",
        )

    def copied(f: Finding) -> bool:
        return (config.protect.enabled and f.rule in PROTECTED_RULES
                and (f.file, f.statement_index) not in uncopyable)

    unprotected = [
        f for f in destructive
        if config.lint.destructive == "block" or not (copied(f) or pitr)
    ]
    if unprotected:
        first = unprotected[0]
        big = uncopyable.get((first.file, first.statement_index))
        raise Blocked(
            f"{first.file}:{first.line}: destructive statement with neither a protective copy nor "
            f"confirmed PITR: {first.message}" + (f" ({big} is above protect.max_bytes)" if big else ""),
            hint=f"accept it with -- guard:allow {first.rule} <reason>, enable PITR, or set lint.destructive",
        )


def _finish_journal(conn: psycopg.Connection[Any], report: RunReport, mask: Callable[[str], str]) -> None:
    import json

    import psycopg

    try:
        journal.finish(
            conn, report.run_id, status="interrupted" if report.interrupted else report.status,
            exit_code=report.exit_code,
            report_json=mask(json.dumps(report.to_dict(), default=str)),
        )
    except psycopg.Error as exc:
        # The run's outcome stands; the journal row stays "running" and the next run says so.
        report.warnings.append(f"could not close the journal entry: {exc.diag.message_primary or exc}")


def _check_unfinished(
    conn: psycopg.Connection[Any], config: Config, options: RunOptions, report: RunReport
) -> None:
    """Refuse while an earlier run started and never finished, unless acknowledged now."""
    runs = journal.unfinished(conn)
    if options.acknowledge:
        if options.acknowledge not in {r.run_id for r in runs}:
            raise GuardError(
                f"--acknowledge {options.acknowledge}: no unfinished run with that id",
                hint="see `guard restore-plan` for the runs guard knows",
            )
        journal.acknowledge(
            conn, options.acknowledge, by=actor(report.ci), reason=options.reason or ""
        )
        report.warnings.append(
            f"acknowledged unfinished run {options.acknowledge}: {options.reason}"
        )
        runs = [r for r in runs if r.run_id != options.acknowledge]
    if not runs:
        return
    dead = runs[0]
    applied = {a.version for a in history.read_history(conn)}
    committed = [v for v in dead.pending if v in applied]
    report.unfinished_run = {
        "run_id": dead.run_id,
        "started_at": iso(dead.started_at),
        "actor": dead.actor,
        "reason": dead.reason,
        "pending": dead.pending,
        "committed": committed,
        "not_committed": [v for v in dead.pending if v not in applied],
        "restore_target": dead.restore_target,
    }
    report.restore_plan = plan_for_unfinished(dead, committed, restore_context(config))
    raise Blocked(
        f"an earlier run {dead.run_id} (started {iso(dead.started_at)} by {dead.actor or '?'}) "
        f"never finished; the history shows {len(committed)} of its {len(dead.pending)} "
        "file(s) committed",
        hint=f"check the database, then: guard run --acknowledge {dead.run_id} --reason '...'",
    )


def restore_context(config: Config) -> RestoreContext:
    ref = None
    stanza = None
    for plugin in (*config.backups.providers, *config.log.sinks):
        ref = ref or plugin.options.get("project_ref")
        stanza = stanza or plugin.options.get("stanza")
    return RestoreContext(
        project_ref=ref or supabase_project_ref(config.database_url),
        pgbackrest_stanza=stanza,
    )


def _check_backups(
    conn: psycopg.Connection[Any], config: Config, progress: Progress
) -> BackupVerdict:
    from guard.db import server_now

    ctx = ProviderContext(conn=conn, config=config, now=server_now(conn), progress=progress)
    return check_backups(make_providers(config), config.backups.providers, ctx)


def _backups_report(verdict: BackupVerdict) -> BackupsReport:
    return BackupsReport(
        ok=verdict.ok,
        require=verdict.require,
        providers=[
            ProviderReport(
                provider=v.provider,
                status=v.status,
                message=v.message,
                newest_backup=iso(v.newest_backup) if v.newest_backup else None,
                age_seconds=round(v.age_seconds, 1) if v.age_seconds is not None else None,
                max_age_seconds=v.max_age_seconds,
                pitr=(
                    {
                        "earliest": iso(v.pitr.earliest) if v.pitr.earliest else None,
                        "latest": iso(v.pitr.latest) if v.pitr.latest else None,
                    }
                    if v.pitr
                    else None
                ),
                details=dict(v.details),
            )
            for v in verdict.providers
        ],
    )


def _mark_restore_point(conn: psycopg.Connection[Any], run_id: str) -> RestoreTarget:
    import psycopg

    name = f"guard-{run_id}"
    point: str | None = None
    note: str | None = None
    try:
        conn.execute(CREATE_RESTORE_POINT, (name,))
        point = name
    except psycopg.Error as exc:
        # Needs superuser (or a grant) and wal_level >= replica; the timestamp still serves.
        note = f"no named restore point: {exc.diag.message_primary or exc.__class__.__name__}"
    row = conn.execute(CLOCK_AND_LSN).fetchone()
    assert row is not None
    now: dt.datetime = row[0]
    return RestoreTarget(
        timestamp=iso(now),
        unix=int(now.timestamp()),
        lsn=row[1],
        restore_point=point,
        restore_point_note=note,
    )


def _log_manual_backup(
    conn: psycopg.Connection[Any],
    config: Config,
    report: RunReport,
    pending: list[str],
    reason: str,
    progress: Progress,
) -> None:
    target = report.restore_target
    metadata: dict[str, Any] = {
        "run_id": report.run_id,
        "source": "migration-guard",
        "pending_versions": list(pending),
        "restore_point": {
            "timestamp": target.timestamp,
            "unix": target.unix,
            "lsn": target.lsn,
            "name": target.restore_point,
        }
        if target
        else None,
        **{k: v for k, v in report.ci.items()},
    }
    if report.backups and report.backups.override:
        metadata["backup_override"] = report.backups.override
    entry = BackupEntry(
        run_id=report.run_id,
        kind="manual",
        reason=reason,
        created_by=actor(report.ci),
        metadata=metadata,
    )
    ctx = SinkContext(conn=conn, config=config, progress=progress)
    # A restore point is made first, so every other entry can name it.
    sinks = sorted(make_sinks(config), key=lambda pair: not getattr(pair[0], "marks_restore_point", False))
    for sink, plugin in sinks:
        try:
            entry_id = sink.record(entry, ctx)
            if getattr(sink, "marks_restore_point", False):
                entry = BackupEntry(entry.run_id, entry.kind, entry.reason, entry.created_by,
                                    {**entry.metadata, "supabase_restore_point": entry_id})
        except SinkError as exc:
            report.backup_log.append(SinkReport(sink.label, "failed", plugin.required, error=str(exc)))
            if plugin.required:
                raise Blocked(
                    f"could not log the manual backup to {sink.label}: {exc}",
                    hint="nothing was changed; fix the sink or mark it required: false",
                ) from None
            report.warnings.append(f"optional backup log sink {sink.label} failed: {exc}")
            continue
        report.backup_log.append(SinkReport(sink.label, "recorded", plugin.required, id=entry_id))
        progress(f"manual backup logged to {sink.label} (id {entry_id})")
