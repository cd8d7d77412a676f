"""The Config: frozen models (msgspec.Struct), one per guard.yml section."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple

from msgspec import Struct, field

from guard.plugins import PluginConfig

__all__ = ["PluginConfig"]


class MigrationsConfig(Struct, frozen=True):
    """The ``migrations:`` section: where the files are and how they are applied."""

    dir: Path = Path("supabase/migrations")
    transaction: str = "per-file"  # or "all"
    lock_timeout: float = 5.0
    statement_timeout: float = 900.0
    include_all: bool = False  # apply files older than the newest applied version
    lock_retries: int = 0  # retries of a file that hit lock_timeout
    lock_retry_delay: float = 5.0  # first retry delay; doubles each time
    # Globs (fnmatch, on file names) of .sql files in dir that are not migrations on purpose.
    ignore: tuple[str, ...] = ()


class BackupsConfig(Struct, frozen=True):
    """The ``backups:`` section: the providers checked before a run and how fresh a backup must be."""

    max_age: float = 26 * 3600.0
    require: str = "any"  # or "all"
    providers: tuple[PluginConfig, ...] = ()
    require_pitr: bool = False  # destructive migrations need confirmed PITR, copies or not


class LogConfig(Struct, frozen=True):
    """The ``log:`` section: the sinks every run is recorded in."""

    sinks: tuple[PluginConfig, ...] = ()


class LintSettings(Struct, frozen=True):
    """The `lint:` section: rules switched off, severities changed, the destructive policy."""

    disable: frozenset[str] = frozenset()
    severity: Mapping[str, str] = field(default_factory=dict)
    # block-unprotected: a destructive statement runs only with a protective copy or PITR;
    # block: never without a pragma; warn: report only.
    destructive: str = "block-unprotected"


class SnapshotConfig(Struct, frozen=True):
    """`guard snapshot` and step 10 of the guarded run: where snapshots go, whether they are
    encrypted, and with what key (a secret: ``key: ${SNAPSHOT_KEY}`` or GUARD_SNAPSHOT_KEY)."""

    dir: Path = Path("snapshots")
    encrypt: bool = True
    mode: str = "off"  # in the guarded run (step 10): off | schema | full
    when: str = "destructive"  # always | destructive (only when a pending statement is)
    key: str | None = None  # a passphrase; never printed

    def __repr__(self) -> str:
        """Every field but the passphrase, which shows as set or not."""
        shown = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__struct_fields__ if name != "key")
        return f"SnapshotConfig({shown}, key={'<set>' if self.key is not None else None})"

    def __rich_repr__(self) -> list[tuple[str, Any]]:
        """As ``__repr__``, for rich, IPython and debuggers: a Struct's own ``__rich_repr__``
        gives every field, the passphrase too (a dataclass's ``repr=False`` hid it there)."""
        shown = [(name, getattr(self, name)) for name in self.__struct_fields__ if name != "key"]
        return [*shown, ("key", "<set>" if self.key is not None else None)]


class DrillCheck(NamedTuple):
    """One `drill.checks` item: SQL whose first value, as text, must equal ``expect``."""

    sql: str
    expect: str


class DrillConfig(Struct, frozen=True):
    """`guard drill`: the operator's own checks, run on the restored copy only."""

    checks: tuple[DrillCheck, ...] = ()


class VerifyCheck(NamedTuple):
    """One `verify:` item: ``sql`` (passes on one row whose first column is true, or on no
    rows with ``expect: empty``) or ``run`` (argv, no shell; exit 0 passes), within ``timeout``
    seconds; ``shadow``: also run by `guard check --shadow`."""

    name: str
    sql: str | None = None
    run: tuple[str, ...] = ()
    expect_empty: bool = False
    timeout: float = 60.0
    shadow: bool = False


class ShadowConfig(Struct, frozen=True):
    """`guard check --shadow`: what the throw-away database starts from (guard.shadow)."""

    base: str = "auto"  # auto | supabase | none | a .sql file (relative to guard.yml)


class ProtectConfig(Struct, frozen=True):
    """Protective copies of what destructive statements destroy (guard/protect.py)."""

    enabled: bool = True
    max_bytes: int = 1 << 30
    schema: str = "guard_backup"
    retention: float = 30 * 86400.0  # seconds a copy is kept; then pruned (it may hold personal data)


class BackupLogConfig(Struct, frozen=True):
    """Where the backup log table lives (``guard init`` creates it there)."""

    schema: str = "public"
    table: str = "backup_logs"


class Config(Struct, frozen=True):
    """guard.yml with its defaults, environment and flags applied (guard/config/load.py)."""

    database_url: str | None = None
    migrations: MigrationsConfig = field(default_factory=MigrationsConfig)
    backups: BackupsConfig = field(default_factory=BackupsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    backup_log: BackupLogConfig = field(default_factory=BackupLogConfig)
    protect: ProtectConfig = field(default_factory=ProtectConfig)
    lint: LintSettings = field(default_factory=LintSettings)
    snapshot: SnapshotConfig = field(default_factory=SnapshotConfig)
    drill: DrillConfig = field(default_factory=DrillConfig)
    shadow: ShadowConfig = field(default_factory=ShadowConfig)
    verify: tuple[VerifyCheck, ...] = ()  # the `verify:` list (issue #19)
    report: Path = Path("guard-report.json")
    reason: str | None = None
    config_file: Path | None = None
    base_dir: Path = Path(".")  # relative paths in the file are relative to it
    secrets: tuple[str, ...] = ()
