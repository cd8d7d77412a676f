"""click commands only: parse, call one function, map its outcome to an exit code.

Exit codes (DESIGN.md): 0 applied / nothing pending, 1 failed and rolled back, 2 usage or
configuration error, 3 blocked before any change, 4 failed after part committed or unknown.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import click

from guard import __version__
from guard.context import Context, env_masker, internal_error, safe
from guard.errors import EXIT_BLOCKED, EXIT_USAGE, GuardError

# Off while the command's modules load (psycopg, pglast, guard's own): every collection
# then walks objects that will never be garbage (classes, functions, module dicts), about
# 10 ms of a one-file run. _start_work() turns it back on before the command's real work.
gc.disable()

def _common(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Options every database command takes."""
    fn = click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
                      help="Path to guard.yml (default: ./guard.yml if present, or $GUARD_CONFIG).")(fn)
    fn = click.option("--database-url", default=None, metavar="URL",
                      help="Target database (else database_url, GUARD_DATABASE_URL, DATABASE_URL).")(fn)
    return fn


def _report_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """--report, --summary and --json, for the commands that produce a RunReport."""
    fn = click.option("--json", "as_json", is_flag=True, help="Print the JSON report instead of text.")(fn)
    fn = click.option("--summary", "summary_path", type=click.Path(dir_okay=False), default=None,
                      help="Also write the Markdown report here.")(fn)
    fn = click.option("--report", "report_path", default=None, metavar="PATH",
                      help="JSON report path (default guard-report.json).")(fn)
    return fn


def _load(ctx: Context, config_path: str | None, flags: dict[str, tuple[str, Any]]) -> Any:
    from guard.config import load_config

    try:
        config = load_config(config_path=config_path, environ=ctx.environ, flags=flags)
    except GuardError as exc:
        ctx.fail(exc)
    for secret in config.secrets:
        ctx.mask.add(secret, "a secret in the configuration")
    return config


def _masked(ctx: Context, text: str | None) -> str | None:
    return ctx.mask(text) if text else text  # --reason is stored (backup_logs, guard.runs)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", prog_name="guard")
@click.option("-v", "--verbose", is_flag=True, help="Show more detail (stack traces of internal errors).")
@click.pass_context
def cli(click_ctx: click.Context, verbose: bool) -> None:
    """migration-guard: confirm a recent backup, log a manual backup, mark the restore point,
    apply the migrations, and say exactly how to restore when they fail.

    Exit codes: 0 applied or nothing pending, 1 failed and rolled back, 2 usage or
    configuration error, 3 blocked before any change, 4 failed after part committed or unknown.
    """
    click_ctx.obj = Context(verbose)


@cli.command(context_settings={"allow_interspersed_args": False})
@_common
@click.option("--migrations-dir", default=None, metavar="DIR",
              help="Migration files (default supabase/migrations).")
@click.option("--reason", default=None, help="Why: recorded with the manual backup entry.")
@click.option("--allow-stale-backup", is_flag=True,
              help="Proceed without a confirmed recent backup (needs --reason; the override is logged).")
@click.option("--include-all", is_flag=True, default=None,
              help="Also apply pending files older than the newest applied version.")
@click.option("--max-age", default=None, metavar="DURATION",
              help="Newest automated backup may be at most this old (default 26h).")
@click.option("--transaction", type=click.Choice(["per-file", "all"]), default=None,
              help="One transaction per file (default) or one for all files.")
@click.option("--lock-timeout", default=None, metavar="DURATION", help="lock_timeout for migrations (default 5s).")
@click.option("--statement-timeout", default=None, metavar="DURATION",
              help="statement_timeout for migrations (default 15min).")
@_report_options
@click.option("--acknowledge", default=None, metavar="RUN_ID",
              help="Let go of an earlier run that never finished, after checking it (needs --reason).")
@click.argument("command", nargs=-1, type=click.UNPROCESSED, metavar="[-- COMMAND...]")
@click.pass_obj
def run(ctx: Context, config_path: str | None, database_url: str | None, migrations_dir: str | None,
        reason: str | None, allow_stale_backup: bool, include_all: bool | None, max_age: str | None,
        transaction: str | None, lock_timeout: str | None, statement_timeout: str | None,
        report_path: str | None, summary_path: str | None, as_json: bool,
        acknowledge: str | None, command: tuple[str, ...]) -> None:
    """Run the guarded migration: check backups, log a manual backup, mark the restore
    point, apply pending files, report (and print a restore plan on failure).

    With `-- COMMAND...` guard wraps another migration tool instead of applying files
    itself (e.g. `guard run -- alembic upgrade head`): the command runs without a shell with
    DATABASE_URL set, and a catalog fingerprint before and after says what it changed."""
    _start_work("psycopg", "pglast", "guard.run")
    from guard.commands.run import run_command

    config = _load(ctx, config_path, {
        "database_url": ("--database-url", database_url),
        "migrations.dir": ("--migrations-dir", migrations_dir),
        "migrations.include_all": ("--include-all", include_all),
        "migrations.transaction": ("--transaction", transaction),
        "migrations.lock_timeout": ("--lock-timeout", lock_timeout),
        "migrations.statement_timeout": ("--statement-timeout", statement_timeout),
        "backups.max_age": ("--max-age", max_age),
        "report": ("--report", report_path),
    })
    from guard.report.mask import argv_secrets

    for secret in argv_secrets(command):  # `guard run -- tool --password "$PW"`
        ctx.mask.add(secret, "a secret in the wrapped command's arguments")
    code = run_command(ctx, config, reason=_masked(ctx, reason), allow_stale_backup=allow_stale_backup,
                       summary_path=Path(summary_path) if summary_path else None, as_json=as_json,
                       acknowledge=acknowledge, command=command)
    sys.exit(code)


@cli.command()
@_common
@click.option("--migrations-dir", default=None, metavar="DIR",
              help="Migration files (default supabase/migrations).")
@click.option("--shadow", default=None, metavar="embedded|URL",
              help="Dry run on a throw-away database: 'embedded' or a scratch database URL.")
@click.option("--shadow-from-target", is_flag=True,
              help="Load a schema-only copy of the target into the shadow first; try only pending files.")
@click.option("--include-all", is_flag=True, default=False,
              help="Count pending files older than the newest applied version as pending.")
@click.option("--max-age", default=None, metavar="DURATION",
              help="Newest automated backup may be at most this old (default 26h).")
@_report_options
@click.pass_obj
def check(ctx: Context, config_path: str | None, database_url: str | None, migrations_dir: str | None,
          shadow: str | None, shadow_from_target: bool, include_all: bool, max_age: str | None,
          report_path: str | None, summary_path: str | None, as_json: bool) -> None:
    """For pull requests: what `guard run` would do, read-only against the target (pending
    files, backups, policy), plus an optional dry run on a shadow database.
    Exit 0 run would proceed, 3 run would be blocked, 1 a pending file does not apply."""
    _start_work("psycopg", "pglast", "guard.check", "guard.run")
    from guard.commands.run import check_command

    config = _load(ctx, config_path, {
        "database_url": ("--database-url", database_url),
        "migrations.dir": ("--migrations-dir", migrations_dir),
        "backups.max_age": ("--max-age", max_age),
        "report": ("--report", report_path),
    })
    sys.exit(check_command(ctx, config, shadow=shadow, shadow_from_target=shadow_from_target,
                           include_all=include_all,
                           summary_path=Path(summary_path) if summary_path else None, as_json=as_json))


@cli.command()
@_common
@click.pass_obj
def init(ctx: Context, config_path: str | None, database_url: str | None) -> None:
    """Install (idempotently) the backup log table, its row-level security and
    get_backup_stats() in the target database."""
    from guard.commands.backup import init_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    _guarded(ctx, lambda: init_command(ctx, config))


@cli.group()
def backup() -> None:
    """Record backups in the backup log and check that they are running."""


@backup.command("log")
@_common
@click.option("--reason", required=True, help="Why this backup was taken.")
@click.option("--kind", type=click.Choice(["manual", "automated"]), default="manual", show_default=True,
              help="automated: recorded by a scheduled backup job; manual: before a risky change.")
@click.option("--status", type=click.Choice(["completed", "failed"]), default="completed", show_default=True,
              help="Outcome of the backup being recorded.")
@click.option("--at", "at", default=None, metavar="TIMESTAMP",
              help="When the backup completed (ISO 8601; default now).")
@click.option("--meta", multiple=True, metavar="KEY=VALUE", help="Extra metadata (repeatable).")
@click.pass_obj
def backup_log(ctx: Context, config_path: str | None, database_url: str | None, reason: str, kind: str,
               status: str, at: str | None, meta: tuple[str, ...]) -> None:
    """Write one entry to the backup log."""
    from guard.commands.backup import backup_log_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    _guarded(ctx, lambda: backup_log_command(ctx, config, reason=_masked(ctx, reason) or "", kind=kind, status=status,
                                             at=at, meta=meta))


@backup.command("prune")
@_common
@click.option("--older-than", default=None, metavar="DURATION",
              help="Drop protective copies older than this (e.g. 30d); default: the expired ones.")
@click.pass_obj
def backup_prune(ctx: Context, config_path: str | None, database_url: str | None, older_than: str | None) -> None:
    """Drop expired protective copies (protect.retention), or those older than a duration."""
    from guard.commands.backup import prune_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    _guarded(ctx, lambda: prune_command(ctx, config, older_than=older_than))


@backup.command("remove")
@_common
@click.argument("entry_id", metavar="ID", type=click.IntRange(min=1, max=2**63 - 1))
@click.pass_obj
def backup_remove(ctx: Context, config_path: str | None, database_url: str | None, entry_id: int) -> None:
    """Delete entry ID of the backup log (a damaged one that blocks runs; guard names it)."""
    from guard.commands.backup import remove_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    _guarded(ctx, lambda: remove_command(ctx, config, entry_id=entry_id))


@backup.command("status")
@_common
@click.option("--max-age", default=None, metavar="DURATION", help="Freshness limit (default 26h).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--html", "html", type=click.Path(dir_okay=False), default=None, metavar="PATH",
              help="Also write the Backups page (one self-contained HTML file) to PATH.")
@click.pass_obj
def backup_status(ctx: Context, config_path: str | None, database_url: str | None, max_age: str | None,
                  as_json: bool, html: str | None) -> None:
    """Backup log statistics, the 20 most recent entries, and every provider's verdict.
    Exits 3 when no recent automated backup is confirmed (a gate for scheduled jobs)."""
    from guard.commands.backup import backup_status_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url),
                                      "backups.max_age": ("--max-age", max_age)})
    _guarded(ctx, lambda: backup_status_command(ctx, config, as_json=as_json, html=Path(html) if html else None))


@cli.command()
@_common
@click.argument("paths", nargs=-1, type=click.Path())
@click.option("--migrations-dir", default=None, metavar="DIR",
              help="Migration files (default supabase/migrations).")
@click.option("--format", "fmt", type=click.Choice(["text", "json", "github"]), default="text",
              show_default=True, help="Output format.")
@click.option("--trace", is_flag=True, help="Also run the files on --shadow and show each statement's locks.")
@click.option("--shadow", default=None, metavar="embedded|URL", help="The scratch database --trace runs on.")
@click.pass_obj
def lint(ctx: Context, config_path: str | None, database_url: str | None, paths: tuple[str, ...],
         migrations_dir: str | None, fmt: str, trace: bool, shadow: str | None) -> None:
    """Risk analysis of migration statements with PostgreSQL's parser: destructive, locking,
    non-transactional. Default: the pending files (with a database), else all files.
    Exit 0 without error findings, 3 with."""
    _start_work("pglast", "guard.lint.rules")
    from guard.commands.tools import lint_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url),
                                      "migrations.dir": ("--migrations-dir", migrations_dir)})
    if trace != (shadow is not None):
        raise click.UsageError("--trace and --shadow go together: --trace --shadow embedded|URL")
    _guarded(ctx, lambda: lint_command(ctx, config, paths=paths, fmt=fmt, shadow=shadow))


@cli.command("restore-plan")
@_common
@click.argument("run_id", required=False)
@click.option("--format", "fmt", type=click.Choice(["text", "markdown", "json"]), default="text",
              show_default=True, help="Output format.")
@click.pass_obj
def restore_plan(ctx: Context, config_path: str | None, database_url: str | None, run_id: str | None,
                 fmt: str) -> None:
    """Print the restore plan of a past run from guard's journal (default: the latest
    failed or unfinished run)."""
    from guard.commands.backup import restore_plan_command

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    _guarded(ctx, lambda: restore_plan_command(ctx, config, run_id=run_id, fmt=fmt))


@cli.command()
@_common
@click.argument("run_id", required=False)
@click.option("--yes", is_flag=True, help="Carry it out (without it: print what it would do, change nothing).")
@click.option("--force", is_flag=True, help="Also drop tables the run added that were written to since.")
@click.option("--whole-database", is_flag=True, help="Use Supabase's restore point or PITR, not the local inverse.")
@click.option("--confirm", default=None, metavar="PROJECT_REF", help="Required for whole-database paths.")
@click.option("--poll", default="5s", show_default=True, help="How often to ask Supabase how a restore is going.")
@click.option("--wait", default="30min", show_default=True, help="How long to follow a restore before exit 4.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def undo(ctx: Context, config_path: str | None, database_url: str | None, run_id: str | None, yes: bool,
         force: bool, whole_database: bool, confirm: str | None, poll: str, wait: str, as_json: bool) -> None:
    """Put the database back as it was before a guarded run (default: the latest that changed
    it and was not undone), by the most precise path: the run's local inverse, else Supabase's
    restore point or PITR (--confirm PROJECT_REF). Exit 0 undone, 1 failed and rolled back,
    3 refused, 4 partly undone or unknown."""
    from guard.commands.undo import undo_command
    from guard.config.values import parse_duration
    from guard.errors import UsageError
    from guard.undo.result import UndoOptions

    config = _load(ctx, config_path, {"database_url": ("--database-url", database_url)})
    try:
        poll_s, wait_s = parse_duration(poll), parse_duration(wait)
    except ValueError as exc:
        ctx.fail(UsageError(f"--poll/--wait: {exc}"))
    options = UndoOptions(run_id=run_id, yes=yes, force=force, whole_database=whole_database, confirm=confirm,
                          poll=poll_s, wait=wait_s)
    _guarded(ctx, lambda: undo_command(ctx, config, options, as_json=as_json))


@cli.command()
@_common
@click.option("--full", "mode", flag_value="full", help="Schema and data (the default); encrypted.")
@click.option("--schema-only", "mode", flag_value="schema", help="Schema only, no rows.")
@click.option("--out", type=click.Path(file_okay=False), default=None, metavar="DIR",
              help="Where to write it (default snapshot.dir, ./snapshots).")
@click.option("--no-encrypt", is_flag=True, help="Write the snapshot unencrypted (snapshot.encrypt: false).")
@click.option("--reason", default=None, help="Why it was taken (recorded with it in the backup log).")
@click.pass_obj
def snapshot(ctx: Context, config_path: str | None, database_url: str | None, mode: str | None,
             out: str | None, no_encrypt: bool, reason: str | None) -> None:
    """A pg_dump (custom format) of the database and a manifest beside it: SHA-256, per-table
    row counts from the dump's own snapshot, the restore command. Full snapshots are encrypted
    (AES-256-GCM) with snapshot.key / GUARD_SNAPSHOT_KEY unless --no-encrypt."""
    from guard.commands.tools import snapshot_command

    config = _load(ctx, config_path, {
        "database_url": ("--database-url", database_url),
        "snapshot.dir": ("--out", out),
        "snapshot.encrypt": ("--no-encrypt", False if no_encrypt else None),
    })
    _guarded(ctx, lambda: snapshot_command(ctx, config, mode=mode or "full", reason=reason))


@cli.command()
@_common
@click.argument("snapshot_path", metavar="[SNAPSHOT]", required=False, type=click.Path(exists=True))
@click.option("--target", default=None, metavar="URL",
              help="An empty scratch database to restore into, instead of a throw-away embedded one.")
@click.option("--dir", "directory", type=click.Path(file_okay=False), default=None,
              help="Where snapshots are (default snapshot.dir); without SNAPSHOT the newest is drilled.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.pass_obj
def drill(ctx: Context, config_path: str | None, database_url: str | None, snapshot_path: str | None,
          target: str | None, directory: str | None, as_json: bool) -> None:
    """Prove a snapshot restores: verify its SHA-256, decrypt, restore into a throw-away
    PostgreSQL, compare row counts with the manifest, run drill.checks. Prints the restore
    duration; exit 0 pass, 1 fail (with the reason). The outcome is recorded for
    `guard backup status`."""
    from guard.commands.tools import drill_command

    config = _load(ctx, config_path, {
        "database_url": ("--database-url", database_url),
        "snapshot.dir": ("--dir", directory),
    })
    if target:
        from guard import conninfo

        for secret in conninfo.secrets(target):
            ctx.mask.add(secret, "the password of --target")
    _guarded(ctx, lambda: drill_command(ctx, config, snapshot=Path(snapshot_path) if snapshot_path else None,
                                        target=target, as_json=as_json))


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Path to guard.yml (for snapshot.key; default: ./guard.yml if present).")
@click.argument("source", type=click.Path(exists=True, dir_okay=False))
@click.argument("target", type=click.Path(dir_okay=False))
@click.pass_obj
def decrypt(ctx: Context, config_path: str | None, source: str, target: str) -> None:
    """Decrypt a snapshot (snapshot.key / GUARD_SNAPSHOT_KEY) into a dump for pg_restore;
    a wrong key or a damaged file leaves nothing at TARGET."""
    from guard.commands.tools import decrypt_command

    config = _load(ctx, config_path, {})
    _guarded(ctx, lambda: decrypt_command(ctx, config, source=Path(source), target=Path(target)))


@cli.command()
@click.option("--keep", is_flag=True, help="Keep the sample project directory and print its path.")
@click.pass_obj
def demo(ctx: Context, keep: bool) -> None:
    """The whole flow on a throw-away embedded PostgreSQL: a successful guarded migration,
    then a failing one with its restore plan. Needs no configuration."""
    from guard.demo import run_demo

    _guarded(ctx, lambda: run_demo(ctx, keep=keep))


def _start_work(*modules: str) -> None:
    """Import what the command is about to need (still with the collector off), set what
    was loaded aside for good (gc.freeze: the first collections would otherwise walk all of
    it), and turn the cyclic garbage collector back on: the work itself runs with it, so
    memory stays bounded however big the release. A one-file run spent ~30 ms in 99
    collections before; now ~2 ms."""
    import importlib

    for name in modules:
        importlib.import_module(name)
    gc.freeze()
    gc.enable()


def _guarded(ctx: Context, action: Callable[[], int | None]) -> NoReturn:
    _start_work()
    try:
        code = action() or 0
    except GuardError as exc:
        ctx.fail(exc)
    except KeyboardInterrupt:
        raise  # main() says which signal and exits 128 + its number
    except Exception as exc:  # noqa: BLE001 - the last line of defence: masked, one line
        internal_error(exc, verbose=ctx.verbose, mask=ctx.mask)
        sys.exit(EXIT_BLOCKED)
    sys.exit(code)


def _on_sigterm(_signum: int, _frame: object) -> None:
    """SIGTERM (a cancelled CI job) unwinds like Ctrl-C instead of ending the process where
    it stands, with an embedded server still running behind it."""
    from guard.errors import Interrupted

    raise Interrupted("SIGTERM")


def main() -> NoReturn:
    """Console script entry point."""
    import signal

    # The guarded run sets its own handlers while it applies (cancel, journal, exit 1 or 4).
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        dispatch()
        code: int | str | None = 0
    except SystemExit as exc:
        code = exc.code
    if isinstance(code, str):
        click.echo(code, err=True)  # as the interpreter would have printed it
    _exit(code if isinstance(code, int) else (0 if code is None else 1))


def dispatch() -> None:
    """Run the command line in this process; ends with SystemExit carrying the exit code
    (main() then leaves at once; an in-process caller such as bench/phases.py catches it)."""
    try:
        cli.main(prog_name="guard", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:
        # click turns a KeyboardInterrupt (Ctrl-C, or SIGTERM as guard raises it) into Abort;
        # one outside its invoke arrives as it is.
        import signal

        cause = exc.__cause__ if isinstance(exc, click.exceptions.Abort) else exc
        name = getattr(cause, "signal_name", "SIGINT") if isinstance(cause, KeyboardInterrupt) else None
        click.echo(f"guard: interrupted by {name}" if name else "guard: aborted", err=True)
        sys.exit(128 + signal.Signals[name or "SIGINT"].value)
    except click.ClickException as exc:
        # Usage errors: one line naming the culprit, exit 2.
        from guard.report.sanitize import one_line

        message = one_line(env_masker(os.environ)(exc.format_message()))
        click.echo(safe(str, f"guard: error: {message}"), err=True)
        sys.exit(EXIT_USAGE)
    except Exception as exc:  # noqa: BLE001 - never a bare traceback; nothing below settled an outcome
        internal_error(exc, verbose=bool({"-v", "--verbose"} & set(sys.argv[1:2])), mask=env_masker(os.environ))
        sys.exit(EXIT_BLOCKED)


def _exit(code: int) -> NoReturn:
    """End the process once the command is done, without the interpreter's teardown.

    Tearing down every imported module (psycopg, pglast, click...) takes about 30 ms, a
    tenth of a one-file run, and does nothing for a process that is ending: guard's
    connections and files are closed by then. What must still happen does: the output is
    flushed and the exit handlers run (they stop an embedded cluster, remove its files).
    """
    import atexit

    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 1  # the output was lost (a closed pipe): not a success
    atexit._run_exitfuncs()
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
