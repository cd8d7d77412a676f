"""The Supabase provider, the restore-point sink and the admin-endpoint sink, against real HTTP
servers on loopback whose answers are checked against the Management API spec."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from guard.backups import (
    BackupEntry,
    ProviderContext,
    SinkContext,
    SinkError,
    check_backups,
)
from guard.backups.http_client import HttpPolicy
from guard.backups.http_sink import HttpSink
from guard.backups.supabase import RestorePointSink, SupabaseProvider
from guard.config import Config, PluginConfig
from guard.errors import ConfigError
from tests.fakes import FakeAdmin, FakeSupabase
from tests.support import Project

# shared/ sits beside the checkout (as in CI); the spec is the contract the fake must follow.
SPEC_PATH = Path(__file__).resolve().parents[2] / "shared/reference/supabase-management-api.openapi.json"
SPEC = json.loads(SPEC_PATH.read_text()) if SPEC_PATH.exists() else None
TOKEN = "sbp_0123456789abcdef0123456789abcdef01234567"
ADMIN_KEY = "admin-key-9f8e7d6c5b4a"
FAST = HttpPolicy(timeout=1.0, retries=2, backoff=0.05, max_retry_after=1.0, total=10.0)


@pytest.fixture
def api() -> Iterator[FakeSupabase]:
    fake = FakeSupabase(token=TOKEN).start()
    yield fake
    fake.stop()


@pytest.fixture
def admin() -> Iterator[FakeAdmin]:
    fake = FakeAdmin(token=ADMIN_KEY).start()
    yield fake
    fake.stop()


def _provider(api: FakeSupabase) -> SupabaseProvider:
    return SupabaseProvider(api.ref, TOKEN, api.url, FAST, label=f"supabase {api.ref}")


def _verdict(api: FakeSupabase, max_age: float = 26 * 3600) -> Any:
    ctx = ProviderContext(conn=None, config=Config(), now=dt.datetime.now(dt.timezone.utc))  # type: ignore[arg-type]
    plugin = PluginConfig("supabase", {}, "test", max_age=max_age)
    return check_backups([_provider(api)], [plugin], ctx).providers[0]


# ------------------------------------------------------------------ the fake follows the spec


def _resolve(schema: dict[str, Any]) -> dict[str, Any]:
    assert SPEC is not None
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return dict(SPEC["components"]["schemas"][name])
    return schema


def _validate(value: Any, schema: dict[str, Any], where: str = "$") -> None:
    """The subset of JSON Schema the spec uses for these answers."""
    schema = _resolve(schema)
    if value is None:
        assert schema.get("nullable"), f"{where}: null not allowed"
        return
    kind = schema.get("type")
    types = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool}
    if kind:
        assert isinstance(value, types[kind]) and not (kind == "integer" and isinstance(value, bool)), \
            f"{where}: expected {kind}, got {value!r}"
    if "enum" in schema:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if kind == "object":
        for name in schema.get("required", []):
            assert name in value, f"{where}: missing {name}"
        for name, sub in schema.get("properties", {}).items():
            if name in value:
                _validate(value[name], sub, f"{where}.{name}")
    if kind == "array":
        for i, item in enumerate(value):
            _validate(item, schema["items"], f"{where}[{i}]")


def _response_schema(path: str, method: str, status: str) -> dict[str, Any]:
    assert SPEC is not None, "shared/reference/ must sit beside the checkout"
    return SPEC["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


def test_fake_answers_follow_the_management_api_spec(api: FakeSupabase) -> None:
    import httpx

    api.backup_at(dt.timedelta(hours=2))
    api.backup_at(dt.timedelta(hours=30), status="FAILED")
    api.pitr_enabled = True
    api.physical = {"earliest_physical_backup_date_unix": 1700000000, "latest_physical_backup_date_unix": 1700003600}
    headers = {"Authorization": f"Bearer {TOKEN}"}
    base = f"{api.url}/v1/projects/{api.ref}"
    backups = httpx.get(f"{base}/database/backups", headers=headers).json()
    _validate(backups, _response_schema("/v1/projects/{ref}/database/backups", "get", "200"))
    created = httpx.post(f"{base}/database/backups/restore-point", headers=headers, json={"name": "r1"})
    assert created.status_code == 201
    rp_path = "/v1/projects/{ref}/database/backups/restore-point"
    _validate(created.json(), _response_schema(rp_path, "post", "201"))
    polled = httpx.get(f"{base}/database/backups/restore-point", params={"name": "r1"}, headers=headers).json()
    _validate(polled, _response_schema(rp_path, "get", "200"))
    body_schema = _resolve(SPEC["paths"][rp_path]["post"]["requestBody"]["content"]["application/json"]["schema"])  # type: ignore[index]
    assert body_schema["properties"]["name"]["maxLength"] == 20
    with pytest.raises(AssertionError):
        _validate({"region": "x"}, _response_schema("/v1/projects/{ref}/database/backups", "get", "200"))


# ------------------------------------------------------------------ provider verdicts


def test_fresh_backup_is_ok(api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(hours=30), backup_id=1)
    api.backup_at(dt.timedelta(hours=3), backup_id=2)
    verdict = _verdict(api)
    assert verdict.status == "ok" and verdict.details["backup_id"] == 2
    assert 3 * 3600 - 60 < verdict.age_seconds < 3 * 3600 + 60
    assert api.requests[0]["headers"]["Authorization"] == f"Bearer {TOKEN}"


def test_three_day_old_backup_is_stale(api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(days=3))
    verdict = _verdict(api)
    assert verdict.status == "stale" and "3d" in verdict.message


def test_newest_failed_blocks_even_with_an_older_completed(api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(hours=20))
    api.backup_at(dt.timedelta(hours=1), status="FAILED")
    assert _verdict(api).status == "failed"


def test_empty_list_is_missing(api: FakeSupabase) -> None:
    assert _verdict(api).status == "missing"


def test_pitr_window_counts_as_freshness(api: FakeSupabase) -> None:
    now = int(time.time())
    api.pitr_enabled = True
    api.physical = {"earliest_physical_backup_date_unix": now - 7 * 86400, "latest_physical_backup_date_unix": now - 120}
    verdict = _verdict(api)
    assert verdict.status == "ok" and verdict.pitr is not None and verdict.pitr.latest is not None


def test_5xx_is_retried(api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(hours=1))
    api.fault("/database/backups", "status", status=502)
    api.fault("/database/backups", "status", status=500)
    assert _verdict(api).status == "ok"
    assert len(api.requests) == 3


def test_429_honours_retry_after(api: FakeSupabase) -> None:
    api.backup_at(dt.timedelta(hours=1))
    api.fault("/database/backups", "status", status=429, retry_after="1")
    started = time.monotonic()
    assert _verdict(api).status == "ok"
    assert time.monotonic() - started >= 0.9


def test_401_is_not_retried_and_names_the_project(api: FakeSupabase) -> None:
    api.token = "another-token"
    verdict = _verdict(api)
    assert verdict.status == "error" and "lacks access to project abcdefghijklmnopqrst" in verdict.message
    assert len(api.requests) == 1


@pytest.mark.parametrize(("kind", "expected"), [("malformed", "not valid JSON"), ("shape", "lacks walg_enabled"),
                                                 ("drop", "connection failed")])
def test_bad_answers_fail_closed(api: FakeSupabase, kind: str, expected: str) -> None:
    for _ in range(3):
        api.fault("/database/backups", kind)
    verdict = _verdict(api)
    assert verdict.status == "error" and expected in verdict.message
    assert TOKEN not in verdict.message


def test_slow_answer_times_out_within_the_budget(api: FakeSupabase) -> None:
    for _ in range(3):
        api.fault("/database/backups", "slow", seconds=2.0)
    started = time.monotonic()
    verdict = _verdict(api)
    assert verdict.status == "error" and "timed out" in verdict.message
    assert time.monotonic() - started < 8


def test_config_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="project_ref"):
        SupabaseProvider.from_config(PluginConfig("supabase", {"project_ref": "BAD", "access_token": "x"}, "guard.yml:3"), Config())
    with pytest.raises(ConfigError, match="api_url"):
        SupabaseProvider.from_config(PluginConfig("supabase", {"project_ref": "a" * 20, "access_token": "x",
                                                               "api_url": "http://example.com"}, "guard.yml:3"), Config())


# ------------------------------------------------------------------ restore-point sink


def _entry(run_id: str = "20261125013000-a1b2c") -> BackupEntry:
    return BackupEntry(run_id, "manual", "Before migration", "guard (ci)", {"run_id": run_id})


def _sink(api: FakeSupabase, wait: float = 5.0) -> RestorePointSink:
    return RestorePointSink(api.ref, TOKEN, api.url, FAST, wait=wait, poll=0.05, label="rp")


def test_restore_point_is_created_and_waited_for(api: FakeSupabase) -> None:
    api.polls_until_available = 3
    lines: list[str] = []
    name = _sink(api).record(_entry(), SinkContext(conn=None, config=Config(), progress=lines.append))  # type: ignore[arg-type]
    assert name == "20261125013000-a1b2c" and len(name) <= 20
    assert api.restore_points[name]["polls"] == 3
    assert any("waiting for Supabase restore point" in line for line in lines)


def test_restore_point_that_exists_before_the_run_is_not_taken_as_its_own(api: FakeSupabase) -> None:
    # A 409 on the first request: another run's restore point (issue #16: it used to be taken
    # for this run's, pointing the plan at an older state).
    ctx = SinkContext(conn=None, config=Config())  # type: ignore[arg-type]
    _sink(api).record(_entry(), ctx)
    with pytest.raises(SinkError, match="already exists"):
        _sink(api).record(_entry(), ctx)
    assert len(api.restore_points) == 1


def test_failed_restore_point_is_an_error(api: FakeSupabase) -> None:
    api.restore_point_outcome = "FAILED"
    with pytest.raises(SinkError, match="FAILED"):
        _sink(api).record(_entry(), SinkContext(conn=None, config=Config()))  # type: ignore[arg-type]


def test_restore_point_that_never_comes_times_out(api: FakeSupabase) -> None:
    api.polls_until_available = 10_000
    with pytest.raises(SinkError, match="not AVAILABLE"):
        _sink(api, wait=0.5).record(_entry(), SinkContext(conn=None, config=Config()))  # type: ignore[arg-type]


# ------------------------------------------------------------------ admin endpoint sink


def test_admin_endpoint_gets_reason_metadata_and_idempotency_key(admin: FakeAdmin) -> None:
    sink = HttpSink.from_config(PluginConfig("http", {"url": f"{admin.url}/api/admin/backup", "token": ADMIN_KEY}, "t"), Config())
    admin.fault("/api/admin/backup", "status", status=503)
    entry_id = sink.record(_entry(), SinkContext(conn=None, config=Config()))  # type: ignore[arg-type]
    assert entry_id == "bk_1"
    request = admin.requests[-1]
    assert request["headers"]["Idempotency-Key"] == "20261125013000-a1b2c"
    assert request["body"]["reason"] == "Before migration" and request["body"]["guard"]["run_id"] == "20261125013000-a1b2c"
    admin.reply = {"data": {"id": 77}}
    assert sink.record(_entry("20261125013000-bbbbb"), SinkContext(conn=None, config=Config())) == "77"  # type: ignore[arg-type]


def test_plain_http_to_a_remote_host_is_refused() -> None:
    with pytest.raises(ConfigError, match="https"):
        HttpSink.from_config(PluginConfig("http", {"url": "http://admin.example.com/api/admin/backup"}, "t"), Config())


# ------------------------------------------------------------------ end to end through guard run


def _guard_yml(project: Project, api_url: str, admin_url: str | None = None, *, retries: int = 3) -> None:
    sinks = "  sinks:\n    - type: supabase-restore-point\n      project_ref: abcdefghijklmnopqrst\n" \
            "      access_token: ${SUPABASE_ACCESS_TOKEN}\n" f"      api_url: {api_url}\n      poll: 100ms\n" \
            "    - type: table\n"
    if admin_url:
        sinks += f"    - type: http\n      url: {admin_url}/api/admin/backup\n      token: ${{ADMIN_API_KEY}}\n"
    (project.root / "guard.yml").write_text(
        "backups:\n  providers:\n    - type: supabase\n      project_ref: abcdefghijklmnopqrst\n"
        f"      access_token: ${{SUPABASE_ACCESS_TOKEN}}\n      api_url: {api_url}\n      timeout: 2s\n"
        f"      retries: {retries}\n"
        "log:\n" + sinks
    )


def test_run_with_supabase_fresh_backup_applies(project: Project, api: FakeSupabase, admin: FakeAdmin) -> None:
    project.init_backup_log()
    api.backup_at(dt.timedelta(hours=5), backup_id=4242)
    api.pitr_enabled = True  # the PITR add-on: its step is offered only when the API reports it
    _guard_yml(project, api.url, admin.url)
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    project.add("20240102000000_b.sql", "select 1/0;\n")
    result = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN, ADMIN_API_KEY=ADMIN_KEY)
    assert result.code == 4, result.output
    report = result.report
    assert report is not None
    point = report["run_id"]
    assert point in api.restore_points
    assert admin.entries[0]["guard"]["supabase_restore_point"] == point
    assert project.manual_entries()[0]["metadata"]["supabase_restore_point"] == point
    commands = "\n".join(c for s in report["restore_plan"]["steps"] for c in s["commands"])
    assert f'"name": "{point}"' in commands and '"id": 4242' in commands
    assert f'"recovery_time_target_unix": {report["restore_target"]["unix"]}' in commands
    everything = result.stdout + result.stderr + json.dumps(report)
    assert TOKEN not in everything and ADMIN_KEY not in everything
    plan = project.guard("restore-plan", SUPABASE_ACCESS_TOKEN=TOKEN, ADMIN_API_KEY=ADMIN_KEY)
    assert "restore-pitr" in plan.stdout and str(report["restore_target"]["unix"]) in plan.stdout
    assert TOKEN not in plan.stdout


def test_run_with_supabase_stale_backup_is_blocked(project: Project, api: FakeSupabase) -> None:
    project.init_backup_log()
    api.backup_at(dt.timedelta(days=3))
    _guard_yml(project, api.url)
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    result = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN)
    assert result.code == 3, result.output
    assert project.history() == [] and api.restore_points == {}
    assert TOKEN not in result.output


def test_run_with_supabase_api_down_is_blocked_in_bounded_time(project: Project) -> None:
    project.init_backup_log()
    down = FakeSupabase(token=TOKEN).start()
    url = down.url
    down.stop()
    _guard_yml(project, url, retries=2)
    project.add("20240101000000_a.sql", "create table public.a (id int);\n")
    started = time.monotonic()
    result = project.guard("run", SUPABASE_ACCESS_TOKEN=TOKEN)
    assert result.code == 3, result.output
    assert time.monotonic() - started < 20
    assert "connection failed" in result.output and project.history() == []
