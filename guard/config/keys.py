"""The schema: every key of guard.yml with its type, range and unit, in one place.

``SCALAR_KEYS`` maps each dotted key to its converter (values.py: ``duration(low, high)``,
``whole(low, high)``, ``text()``...); ``PLUGIN_OPTIONS`` does the same for the options of
providers and sinks (which type takes which option is each plug-in's ``PluginSpec``;
tests/hostile/test_config_bombs.py checks every option a spec names has a type here).
A new section adds its keys here and its name to ``SECTIONS``.
"""

from __future__ import annotations

from guard.config.values import (
    PG_TIMEOUT_MAX,
    Converter,
    _drill_checks,
    _rule_list,
    _rule_severities,
    _verify_checks,
    choice,
    command,
    duration,
    globs,
    identifier,
    parse_size,
    string_map,
    text,
    to_bool,
    whole,
)

DEFAULT_CONFIG_FILE = "guard.yml"

# Environment variables that start with GUARD_ but are not configuration keys.
# (GUARD_SNAPSHOT_KEY is the environment form of snapshot.key.)
NON_KEY_ENV = {"GUARD_CONFIG", "GUARD_RUN_ID", "GUARD_PG_BIN"}

MS = 0.001
MINUTE = 60.0
HOUR = 3600.0
DAY = 86400.0
# PostgreSQL's timeouts are whole milliseconds up to INT_MAX; 0 turns them off, so anything
# that would round to 0 (0.0001s) is refused rather than silently meaning "no timeout".
PG_TIMEOUT = duration(MS, PG_TIMEOUT_MAX, off=True)
MAX_AGE = duration(1.0, 366 * DAY)

# Scalar keys: dotted path -> converter. Lists of plug-ins are LIST_KEYS.
SCALAR_KEYS: dict[str, Converter] = {
    "database_url": text(empty=True, secret=True),  # empty: not set (lint --database-url "")
    "migrations.dir": text(),
    "migrations.transaction": choice("per-file", "all"),
    "migrations.lock_timeout": PG_TIMEOUT,
    "migrations.statement_timeout": PG_TIMEOUT,
    "migrations.include_all": to_bool,
    "migrations.lock_retries": whole(0, 10),
    "migrations.lock_retry_delay": duration(0, HOUR),
    "migrations.ignore": globs,
    "backups.max_age": MAX_AGE,
    "backups.require": choice("any", "all"),
    "backups.require_pitr": to_bool,
    "lint.disable": _rule_list,
    "lint.severity": _rule_severities,
    "lint.destructive": choice("block-unprotected", "block", "warn"),
    "snapshot.dir": text(),
    "snapshot.encrypt": to_bool,
    "snapshot.mode": choice("off", "schema", "full"),
    "snapshot.when": choice("always", "destructive"),
    "snapshot.key": text(secret=True),
    "drill.checks": _drill_checks,
    "shadow.base": text(),
    "protect.enabled": to_bool,
    "protect.max_bytes": parse_size,
    "protect.schema": identifier,
    "protect.retention": duration(MINUTE, 10 * 366 * DAY),
    "backup_log.schema": identifier,
    "backup_log.table": identifier,
    "report": text(),
    "reason": text(max_len=4096),
    "verify": _verify_checks,  # a list of checks, as drill.checks (GUARD_VERIFY: YAML)
}
LIST_KEYS = ("backups.providers", "log.sinks")
SECTIONS = ("migrations", "backups", "log", "backup_log", "protect", "lint", "snapshot", "drill", "shadow")

# Options of providers and sinks, by name (the same name means the same type everywhere).
PLUGIN_OPTIONS: dict[str, Converter] = {
    "project_ref": text(),
    "access_token": text(secret=True),
    "token": text(secret=True),
    "password": text(secret=True),
    "key": text(secret=True),
    "api_url": text(),
    "url": text(),
    "headers": string_map(header=True),
    "env": string_map(),
    "timeout": duration(MS, HOUR),
    "retries": whole(0, 10),
    "wait": duration(0, DAY),
    "poll": duration(0.05, HOUR),
    "run": command,
    "command": command,
    "stanza": text(),
    "config": text(),
    "repo": whole(1, 256),  # pgBackRest's repository index
    "server": text(),
}
# Options every provider or every sink takes, besides its own.
PROVIDER_COMMON: dict[str, Converter] = {"max_age": MAX_AGE}
SINK_COMMON: dict[str, Converter] = {"required": to_bool}


def env_name(key: str) -> str:
    """The GUARD_ environment form of a dotted key: backups.max_age -> GUARD_BACKUPS_MAX_AGE."""
    return "GUARD_" + key.replace(".", "_").upper()


ENV_KEYS = {env_name(k): k for k in (*SCALAR_KEYS, *LIST_KEYS)}
