"""`guard demo`: the whole flow on a throw-away embedded PostgreSQL, with no configuration.

1. start a cluster, create a sample Supabase-style project, `guard init`, log an automated backup;
2. a guarded run of two good files (exit 0);
3. a guarded run whose only file fails (exit 1): nothing committed, no restore needed;
4. that file fixed, and a next one that fails after it committed (exit 4): the restore plan;
then stop the cluster and remove everything.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from guard.config import Config, load_config

if TYPE_CHECKING:
    from guard.context import Context

GOOD = {
    "20250101000000_create_profiles.sql": """\
-- Profiles of our users.
create table public.profiles (
    id bigint generated always as identity primary key,
    email text not null unique,
    created_at timestamptz not null default now()
);
insert into public.profiles (email) values ('ada@example.com'), ('linus@example.com');
""",
    "20250102000000_add_display_name.sql": """\
alter table public.profiles add column display_name text;
update public.profiles set display_name = split_part(email, '@', 1);
""",
}
ROLLED_BACK = {
    "20250201000000_create_orders.sql": """\
create table public.orders (
    id bigint generated always as identity primary key,
    profile_id bigint not null references public.profiles (id),
    total_cents integer not null check (total_cents >= 0)
);
-- A typo: there is no profile 42, so the foreign key stops this file.
insert into public.orders (profile_id, total_cents) values (42, 1200);
""",
}
PARTIAL = {
    # The fix of the file above: it now commits...
    "20250201000000_create_orders.sql": ROLLED_BACK["20250201000000_create_orders.sql"]
    .replace("there is no profile 42, so the foreign key stops this file", "fixed: profile 2")
    .replace("(42, 1200)", "(2, 1200)"),
    # ... and the next file fails: no order has items yet, so this divides by zero.
    "20250202000000_price_per_item.sql": """\
alter table public.orders add column items integer not null default 0;
update public.orders set total_cents = total_cents / items;
""",
}


def run_demo(ctx: Context, *, keep: bool = False) -> int:
    from guard.embedded import Cluster

    workdir = Path(tempfile.mkdtemp(prefix="guard-demo-"))
    ctx.progress("starting a throw-away PostgreSQL ...")
    cluster = Cluster(password=None)
    codes: list[int] = []
    try:
        cluster.start()
        ctx.progress(f"PostgreSQL {cluster.major} on 127.0.0.1:{cluster.port}")
        url = cluster.url("postgres")
        migrations = workdir / "supabase" / "migrations"
        migrations.mkdir(parents=True)
        environ = {"GUARD_DATABASE_URL": url}
        config = load_config(environ=environ, cwd=workdir)
        config = _with_report(config, workdir / "guard-report.json")

        from guard.commands.backup import backup_log_command, init_command

        _section(ctx, "guard init  (backup log table + get_backup_stats())")
        init_command(ctx, config)
        _section(ctx, "guard backup log --kind automated  (what your nightly backup job records)")
        backup_log_command(ctx, config, reason="Nightly automated backup", kind="automated",
                           status="completed", at=None, meta=("source=demo",))

        for title, files in (
            ("1/3  a good migration set  ->  expect exit 0", GOOD),
            ("2/3  the only pending file fails  ->  expect exit 1", ROLLED_BACK),
            ("3/3  that file fixed; the next one fails after it committed  ->  expect exit 4", PARTIAL),
        ):
            _section(ctx, f"guard run   {title}")
            for name, text in files.items():
                (migrations / name).write_text(text, encoding="utf-8")
                ctx.out(f"  wrote supabase/migrations/{name}\n")
            ctx.out("\n")
            codes.append(_guarded_run(ctx, config))

        from guard.demo_page import write_demo_page
        ctx.out(f"\nBackups page (a month of sample history added): {write_demo_page(ctx, config, workdir if keep else None)}\n")
        ctx.out(f"\nDemo finished: exit codes {codes} (expected [0, 1, 4]).\n")
        if keep:
            ctx.out(f"Sample project kept in {workdir}\n")
        return 0 if codes == [0, 1, 4] else 1
    finally:
        cluster.stop()
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _guarded_run(ctx: Context, config: Config) -> int:
    from guard.commands.run import run_command

    return run_command(ctx, config, reason=None, allow_stale_backup=False,
                       summary_path=None, as_json=False)


def _with_report(config: Config, path: Path) -> Config:
    import msgspec.structs

    return msgspec.structs.replace(config, report=path)


def _section(ctx: Context, title: str) -> None:
    ctx.out("\n" + "=" * 78 + f"\n$ {title}\n" + "=" * 78 + "\n")
