"""Providers that ask a backup tool: pgBackRest, WAL-G, Barman, or any command.

Each runs an argv (never a shell), bounded by ``timeout`` (default 60 s), reads JSON from
stdout and answers "newest completed backup, did the newest attempt fail, PITR window".
A missing executable, a non-zero exit, a timeout, malformed JSON or an unexpected shape is a
ProviderError naming the provider, the command and the field (fail closed). Documented in
docs/providers.md.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from guard.backups import (
    BackupInfo,
    PitrWindow,
    ProviderContext,
    ProviderError,
    Registered,
    unix_time,
)
from guard.config import parse_duration
from guard.errors import ConfigError
from guard.plugins import PluginConfig, PluginSpec


def _when(value: Any, where: str) -> dt.datetime:
    """A Unix time or an ISO 8601 string (no zone: UTC) as an aware datetime."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return unix_time(value, where)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ProviderError(f"{where} is not a timestamp: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)
    raise ProviderError(f"{where} is missing or not a timestamp")


class CommandProvider(Struct):
    """Base: run argv, parse JSON; subclasses turn the JSON into a BackupInfo."""

    argv: list[str]
    timeout: float = 60.0
    env: dict[str, str] = field(default_factory=dict)
    label: str = "command"

    def run_json(self) -> Any:
        from guard.report.mask import Masker

        shown = " ".join(self.argv[:3])
        if shutil.which(self.argv[0]) is None:
            raise ProviderError(f"{self.label}: {self.argv[0]} not found (is it installed and on PATH?)")
        try:
            proc = subprocess.run(self.argv, capture_output=True, text=True, timeout=self.timeout,
                                  env={**os.environ, **self.env}, stdin=subprocess.DEVNULL, check=False)
        except subprocess.TimeoutExpired:
            raise ProviderError(f"{self.label}: `{shown}` did not finish within {self.timeout:.0f}s") from None
        except OSError as exc:
            raise ProviderError(f"{self.label}: cannot run `{shown}`: {exc.strerror}") from None
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
            # The values given to the command (its env: tokens) are masked before the line is
            # shortened: a secret cut in two is a spelling no masker downstream knows.
            reason = Masker(self.env.values())(last[-1])[:200] if last else "no output"
            raise ProviderError(f"{self.label}: `{shown}` exited {proc.returncode}: {reason}")
        try:
            return json.loads(proc.stdout)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
            raise ProviderError(f"{self.label}: `{shown}` did not print JSON") from None

    def newest_backup(self, ctx: ProviderContext) -> BackupInfo:
        return self.parse(self.run_json())

    def parse(self, data: Any) -> BackupInfo:
        """The generic command contract: {"completed_at", "status"?, "pitr"?: {earliest, latest}, "details"?}."""
        where = f"{self.label} output"
        if not isinstance(data, dict):
            raise ProviderError(f"{where} is not a JSON object")
        status = data.get("status", "completed")
        if status not in ("completed", "failed"):
            raise ProviderError(f"{where}: status must be completed or failed, got {status!r}")
        completed = data.get("completed_at")
        completed_at = _when(completed, f"{where}: completed_at") if completed is not None else None
        pitr = None
        if isinstance(data.get("pitr"), dict):
            window = data["pitr"]
            pitr = PitrWindow(
                _when(window["earliest"], f"{where}: pitr.earliest") if window.get("earliest") else None,
                _when(window["latest"], f"{where}: pitr.latest") if window.get("latest") else None,
            )
        raw_details = data.get("details")
        details: dict[str, Any] = dict(raw_details) if isinstance(raw_details, dict) else {}
        return BackupInfo(completed_at=completed_at, pitr=pitr, newest_failed=status == "failed",
                          details=details)


def _options(plugin: PluginConfig) -> tuple[float, dict[str, str]]:
    try:
        timeout = parse_duration(plugin.options.get("timeout", 60))
    except ValueError as exc:
        raise ConfigError(str(exc), key="timeout", source=plugin.source) from None
    env = plugin.options.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ConfigError("env must map names to strings", key="env", source=plugin.source)
    return timeout, dict(env)


def _command(plugin: PluginConfig, key: str, default: str) -> list[str]:
    value = plugin.options.get(key, default)
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"{key} must be a command (a string or a list of strings)", key=key, source=plugin.source)


class GenericCommand(CommandProvider):
    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> GenericCommand:
        timeout, env = _options(plugin)
        argv = _command(plugin, "run", "")
        if not argv:
            raise ConfigError("run is empty", key="run", source=plugin.source)
        return cls(argv, timeout, env, label=f"command {argv[0]}")


class PgBackRest(CommandProvider):
    """`pgbackrest info --output=json`: newest backup's stop time and the WAL archive."""

    stanza: str = "main"

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> PgBackRest:
        timeout, env = _options(plugin)
        stanza = plugin.options.get("stanza")
        if not isinstance(stanza, str) or not stanza:
            raise ConfigError("stanza is required", key="stanza", source=plugin.source)
        argv = _command(plugin, "command", "pgbackrest")
        if plugin.options.get("config"):
            argv.append(f"--config={plugin.options['config']}")
        if plugin.options.get("repo"):
            argv.append(f"--repo={plugin.options['repo']}")
        argv += [f"--stanza={stanza}", "--output=json", "info"]
        return cls(argv, timeout, env, label=f"pgbackrest {stanza}", stanza=stanza)

    def parse(self, data: Any) -> BackupInfo:
        where = f"{self.label}: info"
        if not isinstance(data, list):
            raise ProviderError(f"{where} is not a JSON list of stanzas")
        stanza = next((s for s in data if isinstance(s, dict) and s.get("name") == self.stanza), None)
        if stanza is None:
            raise ProviderError(f"{where}: stanza {self.stanza} not in the output")
        status = stanza.get("status") or {}
        backups = stanza.get("backup") or []
        if not isinstance(backups, list):
            raise ProviderError(f"{where}: backup is not a list")
        code = status.get("code") if isinstance(status, dict) else None
        if code not in (0, 2) and not backups:  # 2: no valid backups (an answer, not an error)
            raise ProviderError(f"{where}: {status.get('message', 'stanza error') if isinstance(status, dict) else status}")
        finished = []
        for index, backup in enumerate(backups):
            stamp = backup.get("timestamp") if isinstance(backup, dict) else None
            if not isinstance(stamp, dict):
                raise ProviderError(f"{where}: backup[{index}].timestamp is missing")
            stop = _when(stamp.get("stop"), f"{where}: backup[{index}].timestamp.stop")
            start = _when(stamp.get("start"), f"{where}: backup[{index}].timestamp.start")
            finished.append((stop, start, bool(backup.get("error")), backup.get("label"), backup.get("type")))
        finished.sort()
        good = [b for b in finished if not b[2]]
        newest = good[-1] if good else None
        # PITR coverage: WAL is archived from the oldest backup's start; without mapping WAL
        # segments to times, the newest backup's stop is the latest point guard can vouch for.
        archive = stanza.get("archive") or []
        pitr = None
        if good and isinstance(archive, list) and any(isinstance(a, dict) and a.get("max") for a in archive):
            pitr = PitrWindow(good[0][1], good[-1][0])
        details: dict[str, Any] = {}
        if newest is not None:
            details = {"label": newest[3], "type": newest[4]}
        return BackupInfo(completed_at=newest[0] if newest else None, pitr=pitr,
                          newest_failed=bool(finished) and finished[-1][2], details=details)


class WalG(CommandProvider):
    """`wal-g backup-list --json --detail`: a list of backups; newest finish_time (or time)."""

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> WalG:
        timeout, env = _options(plugin)
        argv = _command(plugin, "command", "wal-g") + ["backup-list", "--json", "--detail"]
        return cls(argv, timeout, env, label="wal-g")

    def parse(self, data: Any) -> BackupInfo:
        where = f"{self.label}: backup-list"
        if data is None:
            return BackupInfo(completed_at=None)
        if not isinstance(data, list):
            raise ProviderError(f"{where} is not a JSON list")
        times = []
        for index, item in enumerate(data):
            if not isinstance(item, dict):
                raise ProviderError(f"{where}[{index}] is not an object")
            value = item.get("finish_time", item.get("time"))
            times.append((_when(value, f"{where}[{index}].finish_time"), item.get("backup_name")))
        if not times:
            return BackupInfo(completed_at=None)
        newest = max(times)
        return BackupInfo(completed_at=newest[0], details={"backup_name": newest[1]})


class Barman(CommandProvider):
    """`barman -f json list-backups SERVER`: {SERVER: [{backup_id, status, end_time}...]}."""

    server: str = ""

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> Barman:
        timeout, env = _options(plugin)
        server = plugin.options.get("server")
        if not isinstance(server, str) or not server:
            raise ConfigError("server is required", key="server", source=plugin.source)
        argv = _command(plugin, "command", "barman") + ["-f", "json", "list-backups", server]
        return cls(argv, timeout, env, label=f"barman {server}", server=server)

    def parse(self, data: Any) -> BackupInfo:
        where = f"{self.label}: list-backups"
        entries = data.get(self.server) if isinstance(data, Mapping) else None
        if not isinstance(entries, list):
            raise ProviderError(f"{where}: no list of backups for server {self.server}")
        rows = []
        for index, item in enumerate(entries):
            if not isinstance(item, dict):
                raise ProviderError(f"{where}[{index}] is not an object")
            status = str(item.get("status", "")).upper()
            if status in ("DONE", "FAILED"):
                end = item.get("end_time_timestamp") or item.get("end_time")
                rows.append((_when(end, f"{where}[{index}].end_time") if end else None, status, item.get("backup_id")))
        done = sorted((r for r in rows if r[1] == "DONE" and r[0] is not None), key=lambda r: r[0])  # type: ignore[arg-type,return-value]
        failed_last = bool(rows) and rows[0][1] == "FAILED"  # barman lists newest first
        newest = done[-1] if done else None
        return BackupInfo(completed_at=newest[0] if newest else None, newest_failed=failed_last,
                          details={"backup_id": newest[2]} if newest else {})


_COMMON = frozenset({"timeout", "env"})
PROVIDERS = {
    "pgbackrest": Registered(PluginSpec(_COMMON | {"stanza", "command", "config", "repo"}, frozenset({"stanza"})),
                             PgBackRest.from_config),
    "wal-g": Registered(PluginSpec(_COMMON | {"command"}), WalG.from_config),
    "walg": Registered(PluginSpec(_COMMON | {"command"}), WalG.from_config),
    "barman": Registered(PluginSpec(_COMMON | {"server", "command"}, frozenset({"server"})), Barman.from_config),
    "command": Registered(PluginSpec(_COMMON | {"run"}, frozenset({"run"})), GenericCommand.from_config),
}
