"""Item 7 of issue #16: a bearer token goes only where the parsed host says, never over plain
HTTP to anything but this machine, whatever the URL's text starts with."""

from __future__ import annotations

import pytest

from guard.backups.http_client import HttpError, HttpPolicy, check_url, request
from guard.backups.http_sink import HttpSink
from guard.backups.supabase import RestorePointSink, SupabaseProvider
from guard.config import Config, PluginConfig
from guard.errors import ConfigError

TOKEN = "sbp_" + "0123456789abcdef" * 2 + "01234567"
REF = "abcdefghijklmnopqrst"
HOSTILE = [
    "http://localhost@attacker.example",
    "http://127.attacker.example",
    "http://127.0.0.1.attacker.example/",
    "http://localhost.attacker.example",
    "http://127.0.0.1\\@attacker.example/",
    "http://[::1]@attacker.example/",
    "http://user:pw@127.0.0.1/",
    "https://user:pw@api.supabase.com",
    "http://0x7f000001/",
    "http://2130706433/",
    "http://127.1/",
    "http://[::ffff:7f00:1]x/",
    "ftp://127.0.0.1/",
    "file:///etc/passwd",
    "javascript:alert(1)",
    "//127.0.0.1/",
    "http://",
    "https://api.supabase.com\n::error::x",
    "https://api.supabase.com /x",
    "http://10.0.0.1/",
    "http://169.254.169.254/latest/meta-data",
    "",
]
FINE = ["https://api.supabase.com", "http://127.0.0.1:54321", "http://localhost:8080/x",
        "http://[::1]:9000/", "https://example.com/api/admin/backup?x=1"]


@pytest.mark.parametrize("url", HOSTILE)
def test_hostile_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_url(url)
    assert "pw" not in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("url", FINE)
def test_plain_urls_pass(url: str) -> None:
    check_url(url)


@pytest.mark.parametrize("url", HOSTILE[:12])
@pytest.mark.parametrize("factory", [SupabaseProvider.from_config, RestorePointSink.from_config])
def test_supabase_api_url_is_checked_by_its_parsed_host(url: str, factory: object) -> None:
    plugin = PluginConfig("supabase", {"project_ref": REF, "access_token": TOKEN, "api_url": url}, "guard.yml:3")
    with pytest.raises(ConfigError) as caught:
        factory(plugin, Config())  # type: ignore[operator]
    assert "api_url" in str(caught.value) and TOKEN not in str(caught.value)


@pytest.mark.parametrize("url", HOSTILE[:12])
def test_http_sink_url_is_checked_by_its_parsed_host(url: str) -> None:
    with pytest.raises(ConfigError):
        HttpSink.from_config(PluginConfig("http", {"url": url, "token": TOKEN}, "guard.yml:3"), Config())


@pytest.mark.parametrize("url", HOSTILE[:6])
def test_the_request_itself_refuses_before_sending(url: str) -> None:
    with pytest.raises(HttpError) as caught:
        request("GET", url, service="test", token=TOKEN, policy=HttpPolicy(timeout=0.2, retries=0))
    assert TOKEN not in str(caught.value)
