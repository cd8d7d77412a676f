"""Configuration: file + environment + flags, and every way it can be wrong (exit 2, one line
naming the key and where it came from)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from guard.config import format_duration, load_config, parse_duration
from guard.errors import ConfigError
from tests.support import clean_env, run_guard


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15min", 900), ("26h", 93600), ("7d", 604800), ("500ms", 0.5), ("1.5h", 5400), (30, 30)],
)
def test_durations(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["26 hours", "h", "-5s", "5y", "", True, [1]])
def test_bad_durations_are_rejected(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_format_duration() -> None:
    assert format_duration(45) == "45s"
    assert format_duration(12 * 60) == "12min"
    assert format_duration(26 * 3600 + 300) == "26h 05min"
    assert format_duration(3 * 86400 + 4 * 3600) == "3d 4h"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "guard.yml"
    path.write_text(text)
    return path


def test_file_values_and_defaults(tmp_path: Path) -> None:
    _write(
        tmp_path,
        "database_url: postgresql://u@h/db\n"
        "migrations:\n  dir: db/migrations\n  transaction: all\n  lock_timeout: 2s\n"
        "backups:\n  max_age: 2d\n  require: all\n",
    )
    config = load_config(environ={}, cwd=tmp_path)
    assert config.database_url == "postgresql://u@h/db"
    assert config.migrations.dir == tmp_path / "db/migrations"
    assert config.migrations.transaction == "all"
    assert config.migrations.lock_timeout == 2
    assert config.migrations.statement_timeout == 900
    assert config.backups.max_age == 2 * 86400
    assert config.backups.require == "all"
    assert [p.type for p in config.backups.providers] == ["table"]
    assert [s.type for s in config.log.sinks] == ["table"]


def test_environment_wins_over_file_and_flags_win_over_environment(tmp_path: Path) -> None:
    _write(tmp_path, "backups:\n  max_age: 1h\nmigrations:\n  lock_timeout: 1s\n")
    env = {"GUARD_BACKUPS_MAX_AGE": "2h", "GUARD_MIGRATIONS_LOCK_TIMEOUT": "3s", "DATABASE_URL": "postgresql://a@b/c"}
    config = load_config(environ=env, cwd=tmp_path, flags={"backups.max_age": ("--max-age", "3h")})
    assert config.backups.max_age == 3 * 3600
    assert config.migrations.lock_timeout == 3
    assert config.database_url == "postgresql://a@b/c"
    env["GUARD_DATABASE_URL"] = "postgresql://x@y/z"
    assert load_config(environ=env, cwd=tmp_path).database_url == "postgresql://x@y/z"


def test_interpolation_from_environment_and_secrets_are_collected(tmp_path: Path) -> None:
    _write(tmp_path, "database_url: postgresql://app:${DB_PASS}@db.example.com/app\nreason: ${WHY:-routine}\n")
    config = load_config(environ={"DB_PASS": "s3cret-value"}, cwd=tmp_path)
    assert config.database_url == "postgresql://app:s3cret-value@db.example.com/app"
    assert config.reason == "routine"
    assert "s3cret-value" in config.secrets


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("migrations:\n  dirr: x\n", "guard.yml:2: migrations.dirr: unknown key"),
        ("databse_url: x\n", "guard.yml:1: databse_url: unknown key"),
        ("backups:\n  max_age: 26 hours\n", "guard.yml:2: backups.max_age: expected a duration"),
        ("migrations:\n  transaction: some\n", "guard.yml:2: migrations.transaction: expected one of per-file, all"),
        ("migrations: [1, 2]\n", "guard.yml:1: migrations: expected a mapping"),
        ("database_url: ${NOPE_NOT_SET}\n", "guard.yml:1: database_url: environment variable NOPE_NOT_SET is not set"),
        ("backups:\n  providers:\n    - type: tape\n", "guard.yml:3: backups.providers[0].type: unknown type 'tape'"),
        ("backups:\n  providers:\n    - type: table\n      colour: red\n", "backups.providers[0].colour: unknown key"),
        ("log:\n  sinks:\n    - type: table\n      required: maybe\n", "log.sinks[0].required: expected true or false"),
        ("a: [unclosed\n", "guard.yml:2: not valid YAML"),
        ("reason: a\nreason: b\n", "guard.yml:2: reason: duplicate key"),
    ],
)
def test_config_errors_name_key_and_line(tmp_path: Path, text: str, expected: str) -> None:
    _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(environ={}, cwd=tmp_path)
    assert expected in str(info.value)


def test_bad_environment_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"GUARD_BACKUPS_MAX_AGE": "soon"}, cwd=tmp_path)
    assert "env GUARD_BACKUPS_MAX_AGE" in str(info.value)


def test_unknown_guard_environment_variable_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(environ={"GUARD_BACKUPS_MAXAGE": "2h"}, cwd=tmp_path)
    assert "GUARD_BACKUPS_MAXAGE" in str(info.value)


def test_providers_from_environment_as_yaml(tmp_path: Path) -> None:
    config = load_config(environ={"GUARD_BACKUPS_PROVIDERS": "[{type: table, max_age: 2h}]"}, cwd=tmp_path)
    assert config.backups.providers[0].type == "table"
    assert config.backups.providers[0].max_age == 7200


# ------------------------------------------------------------------------- through the CLI


def test_missing_database_url_exits_2_with_one_line(tmp_path: Path) -> None:
    result = run_guard("run", cwd=tmp_path, env=clean_env())
    assert result.code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "database_url is not set" in lines[0]


def test_config_error_through_cli_exits_2_naming_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "database_url: postgresql://u@127.0.0.1:1/db\nbackups:\n  max_age: forever\n")
    result = run_guard("run", cwd=tmp_path, env=clean_env())
    assert result.code == 2
    assert "guard.yml:3: backups.max_age" in result.stderr
    assert "Traceback" not in result.stderr


def test_explicit_config_path_that_does_not_exist(tmp_path: Path) -> None:
    result = run_guard("run", "--config", "nope.yml", cwd=tmp_path, env=clean_env())
    assert result.code == 2 and "nope.yml" in result.stderr


def test_unknown_flag_is_a_usage_error(tmp_path: Path) -> None:
    result = run_guard("run", "--no-such-flag", cwd=tmp_path, env=clean_env())
    assert result.code == 2 and "--no-such-flag" in result.stderr


def test_bad_flag_duration_exits_2(tmp_path: Path) -> None:
    result = run_guard("run", "--max-age", "1 fortnight", "--database-url", "postgresql://u@h/d", cwd=tmp_path, env=clean_env())
    assert result.code == 2 and "flag --max-age" in result.stderr


def test_version_and_help_document_every_command(tmp_path: Path) -> None:
    from guard import __version__

    version = run_guard("--version", cwd=tmp_path)
    assert version.code == 0 and __version__ in version.stdout
    helptext = run_guard("--help", cwd=tmp_path)
    assert helptext.code == 0
    for command in ("run", "init", "backup", "demo"):
        assert f"  {command} " in helptext.stdout
    backup = run_guard("backup", "--help", cwd=tmp_path)
    assert "log " in backup.stdout and "status " in backup.stdout


def test_builtin_type_map_matches_what_the_modules_register() -> None:
    """guard.backups names the module of every built-in type, to import only those a
    configuration uses: the map must agree with what each module registers."""
    import importlib

    from guard import backups

    registered: dict[str, dict[str, str]] = {"PROVIDERS": {}, "SINKS": {}}
    for module_name in {*backups.BUILTIN_PROVIDERS.values(), *backups.BUILTIN_SINKS.values()}:
        module = importlib.import_module(module_name)
        for kind in registered:
            registered[kind].update(dict.fromkeys(getattr(module, kind, {}), module_name))
    assert registered["PROVIDERS"] == backups.BUILTIN_PROVIDERS
    assert registered["SINKS"] == backups.BUILTIN_SINKS


def test_a_table_only_configuration_imports_no_other_provider(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from guard.config import load_config; "
            "from guard.backups import make_providers, make_sinks; "
            f"c = load_config(environ={{'GUARD_DATABASE_URL': 'postgresql://x@h/db'}}, cwd=Path({str(tmp_path)!r})); "
            "make_providers(c); make_sinks(c); "
            "print(sorted(m for m in sys.modules if m.startswith('guard.backups.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "['guard.backups.table']", out.stdout + out.stderr
