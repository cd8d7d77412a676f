"""`guard lint`, `guard snapshot`, `guard drill`, `guard decrypt`: tools around the run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from guard.config import Config, require_database_url
from guard.errors import EXIT_BLOCKED, UsageError

if TYPE_CHECKING:
    from guard.context import Context
from guard.commands.common import open_connection, plural


def lint_command(ctx: Context, config: Config, *, paths: tuple[str, ...], fmt: str, shadow: str | None = None) -> int:
    """`guard lint`: findings for the given files, else the pending files (with a database),
    else every file of the migrations folder. Exit 0 without blocking errors, 3 with.
    With `shadow` (--trace --shadow): the files also run on the shadow, traced."""
    from guard.lint import LintConfig, blocking, lint_paths
    from guard.lint import render as lint_render
    from guard.migrations.files import discover

    settings = LintConfig(disabled=config.lint.disable, severity=config.lint.severity)
    server_major: int | None = None
    existing = None
    conn = None
    context: list[Path] = []
    if paths:
        files: list[Path] = []
        for raw in paths:
            path = Path(raw)
            if path.is_dir():
                files.extend(sorted(path.glob("*.sql")))
            elif path.is_file():
                files.append(path)
            elif path.exists():  # a FIFO, a device, a socket: reading it could block for ever
                raise UsageError(f"{raw}: not a regular file or a directory")
            else:
                raise UsageError(f"{raw}: no such file or directory")
        context = _earlier_files(files)
    elif config.database_url:
        from guard.run.files import display, load_migrations
        from guard.run.plan import plan_pending
        from guard.run.report import new_report

        conn = open_connection(config, "lint")
        conn.execute("SET default_transaction_read_only = on")
        row = conn.execute("SELECT current_setting('server_version_num')::int / 10000").fetchone()
        server_major = int(row[0]) if row else None
        loaded = load_migrations(config.migrations, config.base_dir, ctx.progress)
        pending = plan_pending(conn, loaded, new_report("lint", config, ctx.environ),
                               include_all=config.migrations.include_all,
                               display=lambda f: display(f.path, config.base_dir))
        files = [f.path for f in pending]

        def existing(name: str) -> bool:
            assert conn is not None
            found = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()
            return bool(found and found[0])
    else:
        files = [ref.path for ref in discover(config.migrations.dir, ignore=config.migrations.ignore)]
    try:
        from guard.lint.catalog import PgCatalog

        findings = lint_paths(files, display_root=config.base_dir, server_major=server_major,
                              config=settings, existing_tables=existing,
                              catalog=PgCatalog(conn) if conn is not None else None, context=context)
    finally:
        if conn is not None:
            conn.close()
    if shadow is not None:
        return _traced(ctx, config, files, findings, shadow, fmt, context)
    renderer = {"text": lint_render.text, "json": lint_render.as_json, "github": lint_render.github}[fmt]
    (ctx.workflow if fmt == "github" else ctx.out)(renderer(findings))  # annotations are guard's own
    return EXIT_BLOCKED if blocking(findings) else 0


def _earlier_files(files: list[Path]) -> list[Path]:
    """The migration set before the linted files: in each linted file's folder, the other *.sql
    files whose names sort before it (read for what they declare: guard.lint.declared)."""
    linted = {f.resolve() for f in files}
    out: list[Path] = []
    for folder in sorted({f.resolve().parent for f in files}):
        first = min(f.name for f in linted if f.parent == folder)
        out.extend(p for p in sorted(folder.glob("*.sql")) if p.name < first and p.resolve() not in linted)
    return out


def _traced(ctx: Context, config: Config, files: list[Path], findings: list[Any], shadow: str, fmt: str,
            context: list[Path]) -> int:
    """`guard lint --trace --shadow`: the earlier files (context), then the files run on the
    shadow; observed locks beside findings."""
    from guard.lint import blocking
    from guard.lint import render as lint_render
    from guard.lint.observe import render, trace_on_shadow

    extra, observed = trace_on_shadow(shadow, files, findings, display_root=config.base_dir,
                                      target_url=config.database_url, progress=ctx.progress, context=context)
    findings = findings + extra
    if fmt == "json":
        ctx.out(lint_render.as_json_with_traces(findings, [o.as_dict() for o in observed]))
        return EXIT_BLOCKED if blocking(findings) else 0
    if fmt == "text":
        ctx.out(render(observed))
    renderer = {"text": lint_render.text, "github": lint_render.github}[fmt]
    (ctx.workflow if fmt == "github" else ctx.out)(renderer(findings))
    return EXIT_BLOCKED if blocking(findings) else 0


def snapshot_command(ctx: Context, config: Config, *, mode: str, reason: str | None = None) -> int:
    """`guard snapshot`: take it, log it as a manual backup, print where it is and how to restore it."""
    from guard.snapshot import take_snapshot
    from guard.snapshot_log import record_snapshot

    manifest = take_snapshot(require_database_url(config), mode=mode, out_dir=config.snapshot.dir,
                             encrypt=config.snapshot.encrypt, key=config.snapshot.key, progress=ctx.progress)
    if manifest.mode == "full":
        rows = sum(n or 0 for n in manifest.tables.values())
        content = f"{plural(len(manifest.tables), 'table')}, {plural(rows, 'row')}"
    else:
        content = f"{plural(len(manifest.tables), 'table')}, schema only"
    state = f"encrypted ({manifest.encryption['algorithm']})" if manifest.encryption else "NOT encrypted"
    ctx.out(
        f"snapshot {manifest.path}\n"
        f"  database  {manifest.database} (PostgreSQL {manifest.server_version}), {content}\n"
        f"  file      {manifest.bytes} bytes, {state}, sha256 {manifest.sha256}\n"
        f"  manifest  {manifest.manifest_path}\n"
        # With the directory in the paths (the manifest's own command is relative to it):
        # pasted from where guard ran, it works.
        f"  restore   {' && '.join(manifest.restore_steps(manifest.directory))}\n"
    )
    for line in record_snapshot(manifest, config, reason=reason, environ=ctx.environ, progress=ctx.progress):
        ctx.out(f"  logged    {line}\n")
    return 0


def drill_command(ctx: Context, config: Config, *, snapshot: Path | None, target: str | None, as_json: bool) -> int:
    """`guard drill`: run it, print the verdict with the restore duration; 0 pass, 1 fail."""
    from guard.drill import run_drill

    result = run_drill(snapshot, snapshot_dir=config.snapshot.dir, key=config.snapshot.key, target_url=target,
                       checks=config.drill.checks, progress=ctx.progress, production_url=config.database_url)
    if as_json:
        ctx.out(json.dumps(result.to_dict(), indent=2) + "\n")
        return 0 if result.ok else 1
    took = f"restore took {result.restore_seconds:.2f}s" if result.restore_seconds is not None else "no restore"
    if result.ok:
        tables = plural(result.tables or 0, "table")
        what = (f"{tables}, {plural(result.rows or 0, 'row')} match the manifest" if result.mode == "full"
                else f"{tables}, schema only")
        checks = f", {result.checks_run} check(s) passed" if result.checks_run else ""
        ctx.out(f"drill passed: {result.snapshot} into {result.target}: {took} "
                f"({result.bytes} bytes; {what}{checks})\n")
    else:
        ctx.out(f"drill FAILED: {result.snapshot}: {result.reason} ({took})\n")
    for place in result.recorded:
        ctx.progress(f"drill recorded in {place}")
    return 0 if result.ok else 1


def decrypt_command(ctx: Context, config: Config, *, source: Path, target: Path) -> int:
    """`guard decrypt`: an encrypted snapshot back to a pg_restore-able dump."""
    from guard.snapshot import decrypt_file

    if not config.snapshot.key:
        raise UsageError("no snapshot key is set", hint="set GUARD_SNAPSHOT_KEY (or snapshot.key) to the key it was taken with")
    decrypt_file(source, target, config.snapshot.key)
    ctx.out(f"decrypted {source.name} -> {target}\n")
    return 0
