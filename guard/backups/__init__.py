"""Backup providers (is there a recent automated backup?) and log sinks (record the manual one).

A provider answers one question: the newest completed backup and the PITR window, if any.
A sink answers one: record this entry, return its id. Both are small classes registered
by their config ``type:``; the policy that turns answers into a verdict lives here, once.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from msgspec import Struct, field

from guard.config import format_duration
from guard.plugins import (
    BUILTIN_PROVIDERS,
    BUILTIN_SINKS,
    PROVIDER_SPECS,
    PROVIDERS,
    SINK_SPECS,
    SINKS,
    PluginSpec,
    Registered,
    lookup,
)

if TYPE_CHECKING:
    import psycopg

    from guard.config import Config, PluginConfig

__all__ = [
    "BUILTIN_PROVIDERS", "BUILTIN_SINKS", "PROVIDERS", "PROVIDER_SPECS", "SINKS", "SINK_SPECS", "PluginSpec",
    "Registered",
]


class ProviderError(Exception):
    """A provider could not answer (unreachable, unauthorised, malformed). Fail closed."""


def unix_time(value: float, where: str) -> dt.datetime:
    """Unix seconds as an aware UTC datetime; ProviderError naming ``where`` for a value no
    datetime holds (NaN, infinite, beyond year 9999: OverflowError, ValueError or OSError)."""
    try:
        return dt.datetime.fromtimestamp(value, dt.timezone.utc)
    except (OverflowError, ValueError, OSError):
        raise ProviderError(f"{where} is not a time: {str(value)[:40]} (Unix seconds)") from None


# A backup dated later than this past the judge's clock is a wrong answer (or a wrong clock),
# not a fresh backup: its age would be negative, always within max_age.
FUTURE_SLACK = 300.0


def format_age(seconds: float) -> str:
    """A backup's age as shown in every output: ``2h 05min``, or ``3d 1h in the future`` for a
    backup dated ahead of the database server's clock (a negative age, as ``age_seconds``
    holds it), never ``0s`` for one."""
    if seconds <= -1:
        return f"{format_duration(-seconds)} in the future"
    return format_duration(seconds)


class SinkError(Exception):
    """A sink could not record the entry."""


class PitrWindow(Struct, frozen=True):
    """The range point-in-time recovery can restore to (None: unknown ends)."""

    earliest: dt.datetime | None
    latest: dt.datetime | None


class BackupInfo(Struct, frozen=True):
    """What a provider found: the newest completed backup, and whether the newest attempt failed."""

    completed_at: dt.datetime | None
    pitr: PitrWindow | None = None
    newest_failed: bool = False
    details: Mapping[str, Any] = field(default_factory=dict)


class ProviderContext(Struct):
    """What providers may use: a read-only connection to the target and the server's clock.

    Compare backup times with ``now`` (the database server's clock), not the local clock.
    ``progress`` prints one line to the operator (stderr), for waits longer than a second.
    """

    conn: psycopg.Connection[Any]
    config: Config
    now: dt.datetime
    progress: Callable[[str], None] = field(default=lambda _line: None)


class Provider(Protocol):
    label: str

    def newest_backup(self, ctx: ProviderContext) -> BackupInfo: ...


class BackupEntry(Struct, frozen=True):
    """One manual-backup log entry, as every sink receives it."""

    run_id: str
    kind: str
    reason: str
    created_by: str
    metadata: Mapping[str, Any]


class SinkContext(Struct):
    """What sinks may use: the connection to the target, the config, a progress line."""

    conn: psycopg.Connection[Any]
    config: Config
    progress: Callable[[str], None] = field(default=lambda _line: None)


class Sink(Protocol):
    label: str

    def record(self, entry: BackupEntry, ctx: SinkContext) -> str: ...


# ----------------------------------------------------------------------- registries
# The registry itself lives in guard.plugins, which guard.config reads too.


def make_providers(config: Config) -> list[Provider]:
    return [lookup(PROVIDERS, BUILTIN_PROVIDERS, p.type).factory(p, config) for p in config.backups.providers]


def make_sinks(config: Config) -> list[tuple[Sink, PluginConfig]]:
    return [(lookup(SINKS, BUILTIN_SINKS, s.type).factory(s, config), s) for s in config.log.sinks]


# ----------------------------------------------------------------------- policy


class ProviderVerdict(Struct, frozen=True):
    """One provider's answer judged against max_age: ok, stale, failed, missing or error."""

    provider: str
    status: str
    message: str
    newest_backup: dt.datetime | None
    age_seconds: float | None
    max_age_seconds: float
    pitr: PitrWindow | None
    details: Mapping[str, Any]

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class BackupVerdict(Struct, frozen=True):
    """Whether the providers meet ``require`` (any or all), with each one's verdict."""

    ok: bool
    require: str
    providers: tuple[ProviderVerdict, ...]

    def reason(self) -> str:
        failing = [v for v in self.providers if not v.ok]
        if not self.providers:
            return "no backup provider is configured"
        return "; ".join(f"{v.provider}: {v.message}" for v in failing) or "ok"


def check_backups(
    providers: Sequence[Provider], plugin_configs: Sequence[PluginConfig], ctx: ProviderContext
) -> BackupVerdict:
    """Ask every provider; judge each against its max_age; combine with require any/all.

    Anything a provider cannot prove counts against it (fail closed).
    """
    verdicts = []
    for provider, plugin in zip(providers, plugin_configs, strict=True):
        max_age = plugin.max_age if plugin.max_age is not None else ctx.config.backups.max_age
        verdicts.append(_judge(provider, max_age, ctx))
    ok_count = sum(v.ok for v in verdicts)
    require = ctx.config.backups.require
    ok = bool(verdicts) and (ok_count == len(verdicts) if require == "all" else ok_count > 0)
    # The failing ones first: they are what the operator has to act on.
    ordered = tuple(sorted(verdicts, key=lambda v: v.ok))
    return BackupVerdict(ok=ok, require=require, providers=ordered)


def _judge(provider: Provider, max_age: float, ctx: ProviderContext) -> ProviderVerdict:
    try:
        info = provider.newest_backup(ctx)
    except ProviderError as exc:
        return ProviderVerdict(provider.label, "error", str(exc), None, None, max_age, None, {})
    newest = info.completed_at
    if newest is None and info.pitr is not None and info.pitr.latest is not None and not info.newest_failed:
        # PITR alone (no daily backup listed): the archive's latest point is the backup.
        newest = info.pitr.latest
    if newest is None:
        status = "failed" if info.newest_failed else "missing"
        message = (
            "the newest backup failed and none completed"
            if info.newest_failed
            else "no completed backup found"
        )
        return ProviderVerdict(provider.label, status, message, None, None, max_age, info.pitr, info.details)
    # The PITR window's end counts as a backup as fresh as its latest archived WAL.
    effective = newest
    if info.pitr and info.pitr.latest and info.pitr.latest > effective:
        effective = info.pitr.latest
    age = (ctx.now - effective).total_seconds()
    if age < -FUTURE_SLACK:
        # A backup dated ahead of the server's clock (a job's wrong clock or time zone, a typo in
        # --at) would read as 0s old for as long as it is ahead: years of "ok" with no backup.
        return ProviderVerdict(provider.label, "error",
                               f"newest backup is dated {format_duration(-age)} in the future, ahead of the database server's clock "
                               f"({effective.isoformat()}): a wrong clock or time zone; not counted",
                               newest, age, max_age, info.pitr, info.details)
    if info.newest_failed:
        status, message = "failed", (
            f"the newest backup attempt failed; last completed {format_age(age)}{' ago' if age > -1 else ''}"
        )
    elif age > max_age:
        status, message = "stale", (
            f"newest backup is {format_duration(age)} old, more than max_age {format_duration(max_age)}"
        )
    elif age <= -1:  # ahead by less than FUTURE_SLACK: the two clocks differ a little
        status, message = "ok", f"newest backup dated {format_age(age)} (clock skew, counted as fresh)"
    else:
        status, message = "ok", f"newest backup {format_duration(age)} ago"
    return ProviderVerdict(provider.label, status, message, newest, age, max_age, info.pitr, info.details)
