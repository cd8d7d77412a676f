"""Configuration that is valid YAML but not sane (issue #16, item 9): YAML bombs and nonsense
values in guard.yml and in YAML-valued GUARD_* variables. Each is exit 2, one line naming the
key (and file:line or the variable), no traceback, and nothing built that is big."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from guard.cli import cli
from guard.config.keys import PLUGIN_OPTIONS, PROVIDER_COMMON, SINK_COMMON
from guard.plugins import BUILTIN_PROVIDERS, BUILTIN_SINKS, PROVIDER_SPECS, SINK_SPECS
from tests.support import clean_env, run_guard

BILLION_LAUGHS = "a: &a [lol]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join([f"*{chr(97 + i)}"] * 9) + "]\n" for i in range(9)
)
REF = "abcdefghijklmnopqrst"


def guard_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str, **env: str) -> tuple[int, str]:
    """The real command line in this process (click's runner), in a clean environment."""
    for name in list(os.environ):
        if name.startswith(("GUARD_", "GITHUB_")) or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, list(args), env=env)
    output = result.output + (result.stderr if result.stderr != result.output else "")
    return result.exit_code, output


def assert_config_error(code: int, output: str, *named: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output and "internal error" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    for name in named:
        assert name in output, output


# (guard.yml text, what the message must name)
FILE_CASES = [
    ("migrations:\n  lock_timeout: .nan\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: 0.0001s\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: 1e12\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: 1.0e+12\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: 30d\n", "migrations.lock_timeout"),
    ("migrations:\n  statement_timeout: .inf\n", "migrations.statement_timeout"),
    ("migrations:\n  statement_timeout: -5\n", "migrations.statement_timeout"),
    ("migrations:\n  statement_timeout: -1s\n", "migrations.statement_timeout"),
    ("migrations:\n  lock_timeout: true\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: [5s]\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_timeout: 99999999999999999999999999\n", "migrations.lock_timeout"),
    ("migrations:\n  lock_retry_delay: 2h\n", "migrations.lock_retry_delay"),
    ("migrations:\n  lock_retries: 11\n", "migrations.lock_retries"),
    ("migrations:\n  lock_retries: 99999999999999999999999999\n", "migrations.lock_retries"),
    ("migrations:\n  lock_retries: -1\n", "migrations.lock_retries"),
    ("migrations:\n  lock_retries: '3.5'\n", "migrations.lock_retries"),
    ("migrations:\n  lock_retries: 3.0\n", "migrations.lock_retries"),
    ("migrations:\n  transaction: true\n", "migrations.transaction"),
    ("migrations:\n  dir: ''\n", "migrations.dir"),
    ("migrations:\n  dir: [a, b]\n", "migrations.dir"),
    ("migrations:\n  include_all: maybe\n", "migrations.include_all"),
    ("migrations: [a, b]\n", "migrations"),
    ("backups:\n  max_age: 0\n", "backups.max_age"),
    ("backups:\n  max_age: 400d\n", "backups.max_age"),
    ("backups:\n  max_age: .nan\n", "backups.max_age"),
    ("backups:\n  max_age: {h: 1}\n", "backups.max_age"),
    ("backups:\n  require: 1\n", "backups.require"),
    ("protect:\n  max_bytes: -1\n", "protect.max_bytes"),
    ("protect:\n  max_bytes: 1e400\n", "protect.max_bytes"),
    ("protect:\n  max_bytes: 99999999999999999999999\n", "protect.max_bytes"),
    ("protect:\n  max_bytes: true\n", "protect.max_bytes"),
    ("protect:\n  max_bytes: .inf\n", "protect.max_bytes"),
    ("protect:\n  schema: ''\n", "protect.schema"),
    ("protect:\n  schema: " + "s" * 64 + "\n", "protect.schema"),
    ("protect:\n  schema: " + "é" * 32 + "\n", "protect.schema"),
    ("protect:\n  enabled: 2\n", "protect.enabled"),
    ("backup_log:\n  table: 12\n", "backup_log.table"),
    ("backup_log:\n  schema: \"a\\0b\"\n", "backup_log.schema"),
    ("snapshot:\n  mode: 1\n", "snapshot.mode"),
    ("snapshot:\n  key: ''\n", "snapshot.key"),
    ("reason: yes\n", "reason"),
    ("reason: " + "r" * 5000 + "\n", "reason"),
    ("report: {a: 1}\n", "report"),
    ("database_url: 5432\n", "database_url"),
    ("lint:\n  disable: {a: 1}\n", "lint.disable"),
    ("lint:\n  severity: [a]\n", "lint.severity"),
    ("drill:\n  checks: x\n", "drill.checks"),
    ("drill:\n  checks: [{sql: '', expect: 1}]\n", "drill.checks"),
    ("drill:\n  checks: [{sql: select 1, expect: [1]}]\n", "drill.checks"),
    # plug-ins: type confusion, ranges, unknown keys nested in providers and sinks
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      token: 12345\n", "log.sinks[0].token"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      token: ''\n", "log.sinks[0].token"),
    ("log:\n  sinks:\n    - type: http\n      url: true\n", "log.sinks[0].url"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      headers: {X-A: [1]}\n",
     "log.sinks[0].headers"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      headers: {X-A: \"a\\r\\nX-Forged: 1\"}\n",
     "log.sinks[0].headers"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      headers: {\"bad name\": x}\n",
     "log.sinks[0].headers"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      timeout: .nan\n", "log.sinks[0].timeout"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      timeout: 0\n", "log.sinks[0].timeout"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      retries: 1000\n", "log.sinks[0].retries"),
    ("log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      nested: {x: 1}\n", "log.sinks[0].nested"),
    ("log:\n  sinks: {type: http}\n", "log.sinks"),
    ("log:\n  sinks:\n    - type: table\n      required: maybe\n", "log.sinks[0].required"),
    (f"log:\n  sinks:\n    - type: supabase-restore-point\n      project_ref: {REF}\n      access_token: t\n"
     "      wait: -1s\n", "log.sinks[0].wait"),
    (f"log:\n  sinks:\n    - type: supabase-restore-point\n      project_ref: {REF}\n      access_token: 42\n",
     "log.sinks[0].access_token"),
    ("backups:\n  providers:\n    - type: table\n      max_age: .inf\n", "backups.providers[0].max_age"),
    ("backups:\n  providers:\n    - type: table\n      required: true\n", "backups.providers[0].required"),
    ("backups:\n  providers: table\n", "backups.providers"),
    ("backups:\n  providers:\n    - type: command\n      run: []\n", "backups.providers[0].run"),
    ("backups:\n  providers:\n    - type: command\n      run: 5\n", "backups.providers[0].run"),
    ("backups:\n  providers:\n    - type: command\n      run: x\n      env: {A: 1}\n", "backups.providers[0].env"),
    ("backups:\n  providers:\n    - type: command\n      run: x\n      env: {A=B: c}\n", "backups.providers[0].env"),
    ("backups:\n  providers:\n    - type: pgbackrest\n      stanza: main\n      repo: 0\n", "backups.providers[0].repo"),
    ("backups:\n  providers:\n    - type: pgbackrest\n      stanza: main\n      extra: {x: 1}\n",
     "backups.providers[0].extra"),
    (f"backups:\n  providers:\n    - type: supabase\n      project_ref: {REF}\n      token: t\n",
     "backups.providers[0].token"),
    (f"backups:\n  providers:\n    - type: supabase\n      project_ref: {REF}\n      access_token: t\n"
     "      api_url: 5\n", "backups.providers[0].api_url"),
    ("backups:\n  providers:\n    - type: 5\n", "backups.providers[0]"),
    ("backups:\n  providers:\n    - type: " + "x" * 10000 + "\n", "backups.providers[0].type"),
    # YAML that is not sane
    (BILLION_LAUGHS, "guard.yml:"),
    ("migrations: " + "[" * 100_000 + "]" * 100_000 + "\n", "guard.yml:1"),
    ("migrations: " + "{a: " * 100_000 + "}" * 100_000 + "\n", "guard.yml:1"),
    ("a:\n" + "".join("  " * i + "b:\n" for i in range(1, 60)), "guard.yml:"),
    ("reason: !!python/object/apply:os.system [echo hi]\n", "guard.yml:1"),
    ("reason: !custom x\n", "guard.yml:1"),
    ("reason: !!binary aGVsbG8=\n", "reason"),
    ("migrations: !!set {a, b}\n", "guard.yml:1"),
    ("migrations:\n  lock_retries: " + "9" * 5000 + "\n", "guard.yml:2"),
    ("[1, 2]\n", "guard.yml:1"),
    ("{1: 2}\n", "guard.yml:1"),
    ("migrations:\n  dir: a\n  dir: b\n", "dir"),
    ("x: &x\n  - *x\n", "guard.yml"),
]


@pytest.mark.parametrize("text,named", FILE_CASES, ids=[f"file{i}" for i in range(len(FILE_CASES))])
def test_insane_guard_yml_is_exit_2_naming_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, named: str
) -> None:
    (tmp_path / "guard.yml").write_text(text, encoding="utf-8")
    code, output = guard_cli(tmp_path, monkeypatch, "check")
    assert_config_error(code, output, named)


def test_a_secret_typed_as_a_number_is_not_echoed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "guard.yml").write_text("snapshot:\n  key: 987654321\n", encoding="utf-8")
    code, output = guard_cli(tmp_path, monkeypatch, "check")
    assert_config_error(code, output, "snapshot.key", "quote it")
    assert "987654321" not in output


# (variable, value, what the message must name)
ENV_CASES = [
    ("GUARD_MIGRATIONS_LOCK_TIMEOUT", "nan", "GUARD_MIGRATIONS_LOCK_TIMEOUT"),
    ("GUARD_MIGRATIONS_LOCK_TIMEOUT", "0.0001s", "GUARD_MIGRATIONS_LOCK_TIMEOUT"),
    ("GUARD_MIGRATIONS_LOCK_TIMEOUT", "1e12", "GUARD_MIGRATIONS_LOCK_TIMEOUT"),
    ("GUARD_MIGRATIONS_STATEMENT_TIMEOUT", "-1s", "GUARD_MIGRATIONS_STATEMENT_TIMEOUT"),
    ("GUARD_BACKUPS_MAX_AGE", "inf", "GUARD_BACKUPS_MAX_AGE"),
    ("GUARD_PROTECT_MAX_BYTES", "-1", "GUARD_PROTECT_MAX_BYTES"),
    ("GUARD_MIGRATIONS_LOCK_RETRIES", "1e3", "GUARD_MIGRATIONS_LOCK_RETRIES"),
    ("GUARD_MIGRATIONS_LOCK_RETRIES", "9" * 4400, "GUARD_MIGRATIONS_LOCK_RETRIES"),
    ("GUARD_PROTECT_SCHEMA", "x" * 64, "GUARD_PROTECT_SCHEMA"),
    ("GUARD_BACKUPS_PROVIDERS", BILLION_LAUGHS, "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "[" * 60_000 + "]" * 60_000, "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "{type: table}", "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "- type: command\n  run: 5\n", "backups.providers[0].run"),
    ("GUARD_BACKUPS_PROVIDERS", "- type: table\n  max_age: .nan\n", "backups.providers[0].max_age"),
    ("GUARD_BACKUPS_PROVIDERS", "- !!python/name:os.system\n", "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "- [unclosed\n", "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "# only a comment", "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_BACKUPS_PROVIDERS", "~", "GUARD_BACKUPS_PROVIDERS"),
    ("GUARD_LOG_SINKS", "- {type: http, url: 'https://x.example/a', token: 123}", "log.sinks[0].token"),
    ("GUARD_LOG_SINKS", BILLION_LAUGHS, "GUARD_LOG_SINKS"),
    ("GUARD_LINT_SEVERITY", BILLION_LAUGHS, "GUARD_LINT_SEVERITY"),
    ("GUARD_LINT_SEVERITY", "{" * 50_000, "GUARD_LINT_SEVERITY"),
    ("GUARD_DRILL_CHECKS", "[" * 50_000 + "]" * 50_000, "GUARD_DRILL_CHECKS"),
    ("GUARD_DRILL_CHECKS", "- {sql: select 1, expect: 1, extra: 2}", "GUARD_DRILL_CHECKS"),
]


@pytest.mark.parametrize("name,value,named", ENV_CASES, ids=[f"env{i}" for i in range(len(ENV_CASES))])
def test_insane_environment_value_is_exit_2_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    code, output = guard_cli(tmp_path, monkeypatch, "check", **{name: value})
    assert_config_error(code, output, named)


@pytest.mark.parametrize("name", ["bomb", "deep"])
def test_yaml_bombs_through_the_real_process_end_in_exit_2(tmp_path: Path, name: str) -> None:
    """A real process: no memory blow-up, no RecursionError, no hang (the timeout is a guard
    against a hang, not a speed target: bench/ holds those)."""
    text = BILLION_LAUGHS if name == "bomb" else "migrations: " + "[" * 100_000 + "]" * 100_000
    (tmp_path / "guard.yml").write_text(text, encoding="utf-8")
    result = run_guard("check", cwd=tmp_path, timeout=30)
    assert_config_error(result.code, result.stderr, "guard.yml")
    # One environment variable holds at most 128 KiB (Linux's MAX_ARG_STRLEN).
    env = clean_env(GUARD_BACKUPS_PROVIDERS=text if name == "bomb" else "[" * 60_000 + "]" * 60_000)
    (tmp_path / "guard.yml").unlink()
    result = run_guard("check", cwd=tmp_path, env=env, timeout=30)
    assert_config_error(result.code, result.stderr, "GUARD_BACKUPS_PROVIDERS")


@pytest.mark.parametrize("kind", ["directory", "fifo", "dev-zero", "dangling", "env-dev-zero"])
def test_a_config_file_that_is_not_a_regular_file_is_exit_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    path = tmp_path / "guard.yml"
    env = {}
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "dev-zero":
        path.symlink_to("/dev/zero")
    elif kind == "dangling":
        path.symlink_to(tmp_path / "missing.yml")
    else:
        env["GUARD_CONFIG"] = "/dev/zero"
    code, output = guard_cli(tmp_path, monkeypatch, "check", **env)
    assert_config_error(code, output, "guard.yml" if kind != "env-dev-zero" else "/dev/zero")


SANE = [
    "migrations:\n  lock_timeout: 0\n  statement_timeout: 1ms\n  lock_retries: '3'\n",
    "migrations:\n  lock_timeout: 24d\n  statement_timeout: 15min\n",
    "protect:\n  max_bytes: 0\n  schema: " + "é" * 31 + "\n",
    "backups:\n  max_age: 7d\n  providers:\n    - type: table\n      max_age: 1h\n",
    "log:\n  sinks:\n    - type: http\n      url: https://x.example/a\n      token: '12345'\n      retries: 0\n",
    "reason: 'yes'\n",
    "backups:\n  providers:\n    - type: pgbackrest\n      stanza: main\n      repo: 2\n",
]


@pytest.mark.parametrize("text", SANE, ids=[f"sane{i}" for i in range(len(SANE))])
def test_sane_edges_are_accepted(tmp_path: Path, text: str) -> None:
    from guard.config import load_config

    (tmp_path / "guard.yml").write_text(text, encoding="utf-8")
    load_config(environ={}, cwd=tmp_path)


def test_small_anchors_and_aliases_still_work(tmp_path: Path) -> None:
    from guard.config import load_config

    (tmp_path / "guard.yml").write_text(
        "backups:\n  max_age: &age 2h\n  providers:\n    - type: table\n      max_age: *age\n", encoding="utf-8")
    config = load_config(environ={}, cwd=tmp_path)
    assert config.backups.max_age == 7200 and config.backups.providers[0].max_age == 7200


def test_every_plugin_option_has_a_declared_type() -> None:
    """A plug-in option nobody declared would be taken as it is: every built-in one is typed."""
    for specs, builtin, common in ((PROVIDER_SPECS, BUILTIN_PROVIDERS, PROVIDER_COMMON),
                                   (SINK_SPECS, BUILTIN_SINKS, SINK_COMMON)):
        for kind in builtin:
            for option in specs[kind].options:
                assert option in PLUGIN_OPTIONS or option in common, (kind, option)
