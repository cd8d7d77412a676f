"""Real HTTP servers on 127.0.0.1 standing in for the Supabase Management API and a team's
admin endpoint. Answers follow shared/reference/supabase-management-api.openapi.json (a test
validates them against it); faults are queued per route and used once each."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass
class Fault:
    route: str  # substring of the path, e.g. "/database/backups"
    kind: str  # status | malformed | shape | drop | slow | lost (handled, answer never sent)
    status: int = 500
    retry_after: str | None = None
    seconds: float = 0.0


@dataclass
class FakeService:
    token: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def fault(self, route: str, kind: str, **kwargs: Any) -> None:
        self.faults.append(Fault(route, kind, **kwargs))

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.route in path:
                self.faults.remove(fault)
                return fault
        return None

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        raise NotImplementedError

    def start(self) -> FakeService:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                return

            def _handle(self, method: str) -> None:
                parts = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = raw.decode(errors="replace")
                service.requests.append({"method": method, "path": parts.path, "query": parts.query,
                                         "headers": dict(self.headers), "body": body})
                fault = service._take_fault(parts.path)
                if fault and fault.kind == "slow":
                    time.sleep(fault.seconds)
                if fault and fault.kind == "drop":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                if self.headers.get("Authorization") != f"Bearer {service.token}":
                    return self._send(401, {"message": "Unauthorized"})
                if fault and fault.kind == "status":
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return self._send(fault.status, {"message": "injected"}, headers)
                if fault and fault.kind == "malformed":
                    return self._send_raw(200, b'{"region": "eu", "backups": [')
                if fault and fault.kind == "shape":
                    return self._send(200, {"region": "eu", "backups": "none"})
                status, payload = service.answer(method, parts.path, parse_qs(parts.query), body)
                if fault and fault.kind == "lost":
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self._send(status, payload)

            def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self._send_raw(status, b"" if payload is None else json.dumps(payload).encode(), headers)

            def _send_raw(self, status: int, data: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class FakeSupabase(FakeService):
    ref: str = "abcdefghijklmnopqrst"
    region: str = "eu-west-1"
    backups: list[dict[str, Any]] = field(default_factory=list)
    pitr_enabled: bool = False
    physical: dict[str, int] = field(default_factory=dict)
    restore_points: dict[str, dict[str, Any]] = field(default_factory=dict)
    polls_until_available: int = 1
    restore_point_outcome: str = "AVAILABLE"
    # v1-get-project answers these statuses one per call after an undo or PITR was accepted,
    # then ACTIVE_HEALTHY; restores records each accepted v1-undo / v1-restore-pitr-backup body.
    statuses_after_restore: list[str] = field(default_factory=lambda: ["RESTORING", "COMING_UP"])
    restores: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _pending_statuses: list[str] = field(default_factory=list)

    def backup_at(self, age: dt.timedelta, status: str = "COMPLETED", backup_id: int | None = None) -> None:
        when = dt.datetime.now(dt.timezone.utc) - age
        self.backups.append({
            "id": backup_id if backup_id is not None else 1000 + len(self.backups),
            "is_physical_backup": True,
            "status": status,
            "inserted_at": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        })

    def backups_body(self) -> dict[str, Any]:
        return {"region": self.region, "walg_enabled": True, "pitr_enabled": self.pitr_enabled,
                "backups": list(self.backups), "physical_backup_data": dict(self.physical)}

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        base = f"/v1/projects/{self.ref}"
        if not path.startswith(base):
            return 404, {"message": "project not found"}
        rest = path[len(base):]
        if method == "GET" and rest == "":
            status = self._pending_statuses.pop(0) if self._pending_statuses else "ACTIVE_HEALTHY"
            return 200, {"id": self.ref, "ref": self.ref, "organization_id": "org", "organization_slug": "org",
                         "name": "app", "region": self.region, "created_at": "2024-01-01T00:00:00Z",
                         "status": status, "database": {"host": f"db.{self.ref}.supabase.co", "version": "15.8",
                                                        "postgres_engine": "15", "release_channel": "ga"}}
        if method == "POST" and rest in ("/database/backups/undo", "/database/backups/restore-pitr"):
            return self._restore(rest.rsplit("/", 1)[1], body)
        if method == "GET" and rest == "/database/backups":
            return 200, self.backups_body()
        if rest == "/database/backups/restore-point":
            if method == "POST":
                name = (body or {}).get("name", "") if isinstance(body, dict) else ""
                if not name or len(name) > 20:
                    return 400, {"message": "name must be 1 to 20 characters"}
                if name in self.restore_points:
                    return 409, {"message": "restore point already exists"}
                self.restore_points[name] = {"polls": 0}
                return 201, {"name": name, "status": "PENDING", "completed_on": None}
            name = query.get("name", [""])[0]
            point = self.restore_points.get(name)
            if point is None:
                return 404, {"message": "no such restore point"}
            point["polls"] += 1
            if point["polls"] >= self.polls_until_available:
                status = self.restore_point_outcome
                done = dt.datetime.now(dt.timezone.utc).isoformat() if status == "AVAILABLE" else None
                return 200, {"name": name, "status": status, "completed_on": done}
            return 200, {"name": name, "status": "PENDING", "completed_on": None}
        return 404, {"message": "unknown route"}

    def _restore(self, kind: str, body: Any) -> tuple[int, Any]:
        """V1UndoBody {name <= 20 chars, an existing restore point}; V1RestorePitrBody
        {recovery_time_target_unix: integer >= 0}. Accepted: 201 with an empty body."""
        if not isinstance(body, dict):
            return 400, {"message": "body must be a JSON object"}
        if kind == "undo":
            name = body.get("name")
            if not isinstance(name, str) or not 0 < len(name) <= 20 or set(body) != {"name"}:
                return 400, {"message": "name must be 1 to 20 characters"}
            if name not in self.restore_points:
                return 404, {"message": "no such restore point"}
        else:
            target = body.get("recovery_time_target_unix")
            if not isinstance(target, int) or isinstance(target, bool) or target < 0 or set(body) != {"recovery_time_target_unix"}:
                return 400, {"message": "recovery_time_target_unix must be a non-negative integer"}
            if not self.pitr_enabled:
                return 400, {"message": "PITR is not enabled for this project"}
        self.restores.append((kind, dict(body)))
        self._pending_statuses = list(self.statuses_after_restore)
        return 201, None


@dataclass
class FakeAdmin(FakeService):
    entries: list[dict[str, Any]] = field(default_factory=list)
    reply: dict[str, Any] | None = None

    def answer(self, method: str, path: str, query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        if method == "POST" and path == "/api/admin/backup":
            self.entries.append(body)
            return 201, self.reply if self.reply is not None else {"id": f"bk_{len(self.entries)}"}
        return 404, {"message": "unknown route"}
