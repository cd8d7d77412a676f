"""Supabase: the Management API as a backup provider, and restore points as the manual backup.

Provider ``supabase`` reads ``GET /v1/projects/{ref}/database/backups`` (v1-list-all-backups):
the newest COMPLETED backup, whether the newest attempt FAILED, and the PITR window
(``physical_backup_data``) when PITR is enabled. Sink ``supabase-restore-point`` creates a
restore point named after the run (``POST .../backups/restore-point``, v1-create-restore-point)
and waits until it is AVAILABLE (``GET .../restore-point?name=``). Shapes follow
shared/reference/supabase-management-api.openapi.json; anything else is an error naming the field.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Mapping
from typing import Any

from msgspec import Struct, field

from guard.backups import (
    BackupEntry,
    BackupInfo,
    PitrWindow,
    ProviderContext,
    ProviderError,
    Registered,
    SinkContext,
    SinkError,
    unix_time,
)
from guard.backups.http_client import HttpError, HttpPolicy, check_url, request
from guard.config import PluginConfig, PluginSpec, parse_duration
from guard.errors import ConfigError

DEFAULT_API = "https://api.supabase.com"
BACKUP_STATUSES = ("COMPLETED", "FAILED", "PENDING", "REMOVED", "ARCHIVED", "CANCELLED")
RESTORE_POINT_STATUSES = ("AVAILABLE", "PENDING", "REMOVED", "FAILED")
_REF = re.compile(r"^[a-z]{20}$")
COMMON = frozenset({"project_ref", "access_token", "api_url", "timeout", "retries"})


def same_project(plugin: PluginConfig, database_url: str | None) -> None:
    """ConfigError when ``database_url`` names a Supabase project (db.<ref>.supabase.co, or the
    pooler's user postgres.<ref>) other than the plug-in's ``project_ref``: its backups would be
    judged for this database, and a whole-database undo would restore that other project."""
    from guard.restore import supabase_project_ref

    ref, named = plugin.options.get("project_ref"), supabase_project_ref(database_url)
    if named is not None and ref != named:
        raise ConfigError(f"project_ref {ref} is not the project of database_url ({named}): its backups are not this "
                          "database's, and an undo would restore that other project", key="project_ref",
                          source=plugin.source, hint=f"project_ref: {named}, or the database_url of project {ref}")


def _common(plugin: PluginConfig, config: Any) -> tuple[str, str, str, HttpPolicy]:
    options = plugin.options
    ref = options.get("project_ref")
    if not isinstance(ref, str) or not _REF.match(ref):
        raise ConfigError("project_ref must be the project's 20-letter ref", key="project_ref", source=plugin.source)
    same_project(plugin, getattr(config, "database_url", None))
    token = options.get("access_token")
    if not isinstance(token, str) or not token:
        raise ConfigError("access_token is empty", key="access_token", source=plugin.source,
                          hint="access_token: ${SUPABASE_ACCESS_TOKEN}")
    api = options.get("api_url", DEFAULT_API)
    try:
        check_url(api)  # the parsed host, not a text prefix: http://localhost@attacker.example
    except ValueError as exc:
        raise ConfigError(f"api_url {exc}", key="api_url", source=plugin.source) from None
    try:
        timeout = parse_duration(options.get("timeout", 10))
        retries = int(options.get("retries", 3))
    except (TypeError, ValueError) as exc:
        raise ConfigError(str(exc), key="timeout/retries", source=plugin.source) from None
    return ref, token, api.rstrip("/"), HttpPolicy(timeout=timeout, retries=retries)


def parse_time(value: str) -> dt.datetime:
    """The API's ISO strings, sometimes without a zone (then UTC)."""
    parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in data:
        raise ProviderError(f"{where}: the answer lacks {name}")
    value = data[name]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProviderError(f"{where}: {name} has an unexpected type ({type(value).__name__})")
    return value


def read_backups(data: Any, where: str) -> BackupInfo:
    """V1BackupsResponse -> BackupInfo, validating the shape the spec requires."""
    if not isinstance(data, dict):
        raise ProviderError(f"{where}: the answer is not a JSON object")
    region = _field(data, "region", str, where)
    walg = _field(data, "walg_enabled", bool, where)
    pitr_enabled = _field(data, "pitr_enabled", bool, where)
    backups = _field(data, "backups", list, where)
    physical = _field(data, "physical_backup_data", dict, where)
    parsed = []
    for index, item in enumerate(backups):
        at = f"{where}: backups[{index}]"
        if not isinstance(item, dict):
            raise ProviderError(f"{at} is not an object")
        backup_id = _field(item, "id", int, at)
        _field(item, "is_physical_backup", bool, at)
        status = _field(item, "status", str, at)
        if status not in BACKUP_STATUSES:
            raise ProviderError(f"{at}.status has an unknown value {status!r}")
        inserted = _field(item, "inserted_at", str, at)
        try:
            when = parse_time(inserted)
        except ValueError:
            raise ProviderError(f"{at}.inserted_at is not a timestamp: {inserted!r}") from None
        parsed.append((when, status, backup_id))
    parsed.sort()
    finished = [p for p in parsed if p[1] in ("COMPLETED", "FAILED")]
    completed = [p for p in parsed if p[1] == "COMPLETED"]
    newest = completed[-1] if completed else None
    pitr = None
    if pitr_enabled:
        earliest = physical.get("earliest_physical_backup_date_unix")
        latest = physical.get("latest_physical_backup_date_unix")
        for name, value in (("earliest", earliest), ("latest", latest)):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                raise ProviderError(f"{where}: physical_backup_data.{name}_physical_backup_date_unix is not an integer")
        pitr = PitrWindow(
            unix_time(earliest, f"{where}: physical_backup_data.earliest_physical_backup_date_unix") if earliest else None,
            unix_time(latest, f"{where}: physical_backup_data.latest_physical_backup_date_unix") if latest else None,
        )
    details: dict[str, Any] = {"region": region, "walg_enabled": walg, "pitr_enabled": pitr_enabled}
    if newest is not None:
        details["backup_id"] = newest[2]
    return BackupInfo(
        completed_at=newest[0] if newest else None,
        pitr=pitr,
        newest_failed=bool(finished) and finished[-1][1] == "FAILED",
        details=details,
    )


class SupabaseProvider(Struct):
    ref: str
    token: str
    api: str
    policy: HttpPolicy
    label: str = ""

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> SupabaseProvider:
        ref, token, api, policy = _common(plugin, config)
        return cls(ref, token, api, policy, label=f"supabase {ref}")

    def newest_backup(self, ctx: ProviderContext) -> BackupInfo:
        url = f"{self.api}/v1/projects/{self.ref}/database/backups"
        try:
            data = request("GET", url, service="Supabase API", token=self.token, policy=self.policy)
        except HttpError as exc:
            if exc.status in (401, 403):
                raise ProviderError(
                    f"the access token lacks access to project {self.ref} (HTTP {exc.status}; "
                    "needs database:read)"
                ) from None
            raise ProviderError(str(exc)) from None
        return read_backups(data, f"Supabase API backups of {self.ref}")


def restore_point_name(run_id: str) -> str:
    """The run's restore point name, at most 20 characters (V1RestorePointPostBody's maxLength):
    the run id itself when it fits (guard's own ids are 20), else its first 11 characters, a
    dash and 8 hex digits of its SHA-256, so ids sharing their first 20 characters do not share
    a name."""
    if len(run_id) <= 20:
        return run_id
    import hashlib

    return f"{run_id[:11]}-{hashlib.sha256(run_id.encode()).hexdigest()[:8]}"


class RestorePointSink(Struct):
    """The Supabase-native manual backup: a restore point named after the run, AVAILABLE."""

    ref: str
    token: str
    api: str
    policy: HttpPolicy
    wait: float = 600.0
    poll: float = 5.0
    label: str = ""
    marks_restore_point: bool = field(default=True)

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> RestorePointSink:
        ref, token, api, policy = _common(plugin, config)
        try:
            wait = parse_duration(plugin.options.get("wait", "10min"))
            poll = parse_duration(plugin.options.get("poll", "5s"))
        except ValueError as exc:
            raise ConfigError(str(exc), key="wait/poll", source=plugin.source) from None
        return cls(ref, token, api, policy, wait, max(poll, 0.05), label=f"supabase-restore-point {ref}")

    def record(self, entry: BackupEntry, ctx: SinkContext) -> str:
        name = restore_point_name(entry.run_id)
        url = f"{self.api}/v1/projects/{self.ref}/database/backups/restore-point"
        try:
            created = request("POST", url, service="Supabase API", token=self.token,
                              json_body={"name": name}, policy=self.policy)
        except HttpError as exc:
            if exc.status in (401, 403):
                raise SinkError(f"the access token may not create restore points in {self.ref} "
                                f"(HTTP {exc.status}; needs database:write)") from None
            if exc.status != 409:
                raise SinkError(str(exc)) from None
            if exc.attempts < 2:
                # Not this run's: it existed before our first request. Taking it would point
                # the restore plan at an older state of the database.
                raise SinkError(f"a restore point named {name} already exists in {self.ref} and was not "
                                "created by this run (is GUARD_RUN_ID reused?)") from None
            created = None  # our earlier attempt created it; its answer was lost
        status = self._status(created, name) if created is not None else "PENDING"
        deadline = time.monotonic() + self.wait
        while status != "AVAILABLE":
            if status in ("FAILED", "REMOVED"):
                raise SinkError(f"restore point {name} of {self.ref} is {status}")
            if time.monotonic() >= deadline:
                raise SinkError(f"restore point {name} of {self.ref} not AVAILABLE after {self.wait:.0f}s")
            ctx.progress(f"waiting for Supabase restore point {name} ({status})")
            time.sleep(self.poll)
            try:
                answer = request("GET", url, service="Supabase API", token=self.token,
                                 params={"name": name}, policy=self.policy)
            except HttpError as exc:
                raise SinkError(str(exc)) from None
            status = self._status(answer, name)
        return name

    def _status(self, data: Any, name: str) -> str:
        where = f"Supabase API restore point {name}"
        if not isinstance(data, dict):
            raise SinkError(f"{where}: the answer is not a JSON object")
        status = data.get("status")
        if status not in RESTORE_POINT_STATUSES:
            raise SinkError(f"{where}: status has an unexpected value {status!r}")
        return str(status)


PROVIDERS = {"supabase": Registered(PluginSpec(options=COMMON, required=frozenset({"project_ref", "access_token"})),
                                    SupabaseProvider.from_config)}
SINKS = {
    "supabase-restore-point": Registered(
        PluginSpec(options=COMMON | {"wait", "poll"}, required=frozenset({"project_ref", "access_token"})),
        RestorePointSink.from_config,
    )
}
