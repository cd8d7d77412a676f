"""Sink ``http``: the team's own admin endpoint that logs manual backups.

``POST <url>`` with ``Authorization: Bearer <token>``, ``Idempotency-Key: <run id>`` and the
body ``{"reason": "...", "kind": "manual", "created_by": "...", "guard": {run_id, pending_versions,
restore_point, commit, actor, ref, ...}}`` (the seed app's ``POST /api/admin/backup`` reads
``reason``; the rest rides along under ``guard``). The entry id is taken from the answer's
``id`` or ``data.id`` when there is one. Plain http:// is refused except to loopback.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from msgspec import Struct

from guard.backups import BackupEntry, Registered, SinkContext, SinkError
from guard.backups.http_client import HttpError, HttpPolicy, check_url, request
from guard.config import parse_duration
from guard.errors import ConfigError
from guard.plugins import PluginConfig, PluginSpec


class HttpSink(Struct):
    url: str
    token: str | None
    policy: HttpPolicy
    headers: dict[str, str]
    label: str = ""

    @classmethod
    def from_config(cls, plugin: PluginConfig, config: Any) -> HttpSink:
        options = plugin.options
        url = options.get("url")
        if not isinstance(url, str) or not url:
            raise ConfigError("url is empty", key="url", source=plugin.source)
        try:
            check_url(url)  # never echo the URL: it may carry a key in its query
        except ValueError as exc:
            raise ConfigError(f"url {exc}", key="url", source=plugin.source) from None
        parts = urlsplit(url)
        token = options.get("token")
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise ConfigError("headers must map names to strings", key="headers", source=plugin.source)
        try:
            policy = HttpPolicy(timeout=parse_duration(options.get("timeout", 10)),
                                retries=int(options.get("retries", 3)))
        except (TypeError, ValueError) as exc:
            raise ConfigError(str(exc), key="timeout/retries", source=plugin.source) from None
        return cls(url, token if isinstance(token, str) and token else None, policy, dict(headers),
                   label=f"http {parts.hostname}{parts.path}")

    def record(self, entry: BackupEntry, ctx: SinkContext) -> str:
        body = {"reason": entry.reason, "kind": entry.kind, "created_by": entry.created_by,
                "guard": dict(entry.metadata)}
        try:
            answer = request("POST", self.url, service="admin endpoint", token=self.token, json_body=body,
                             headers={**self.headers, "Idempotency-Key": entry.run_id}, policy=self.policy)
        except HttpError as exc:
            raise SinkError(str(exc)) from None
        if isinstance(answer, dict):
            for candidate in (answer.get("id"), (answer.get("data") or {}).get("id")
                              if isinstance(answer.get("data"), dict) else None):
                if isinstance(candidate, (str, int)) and not isinstance(candidate, bool):
                    return str(candidate)
        return "recorded"


SINKS = {"http": Registered(PluginSpec(options=frozenset({"url", "token", "timeout", "retries", "headers"}),
                                       required=frozenset({"url"})), HttpSink.from_config)}
