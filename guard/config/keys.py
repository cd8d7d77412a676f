"""The schema: every scalar key with its converter, the plug-in lists, the GUARD_* names."""

from __future__ import annotations

from guard.config.values import (
    Converter,
    _choice,
    _count,
    _drill_checks,
    _identifier,
    _rule_list,
    _rule_severities,
    _string,
    _verify_checks,
    parse_duration,
    parse_size,
    to_bool,
)

DEFAULT_CONFIG_FILE = "guard.yml"

# Environment variables that start with GUARD_ but are not configuration keys.
# (GUARD_SNAPSHOT_KEY is the environment form of snapshot.key.)
NON_KEY_ENV = {"GUARD_CONFIG", "GUARD_RUN_ID", "GUARD_PG_BIN"}

# Scalar keys: dotted path -> converter. Lists of plug-ins are handled separately.
SCALAR_KEYS: dict[str, Converter] = {
    "database_url": _string,
    "migrations.dir": _string,
    "migrations.transaction": _choice("per-file", "all"),
    "migrations.lock_timeout": parse_duration,
    "migrations.statement_timeout": parse_duration,
    "migrations.include_all": to_bool,
    "migrations.lock_retries": _count,
    "migrations.lock_retry_delay": parse_duration,
    "backups.max_age": parse_duration,
    "backups.require": _choice("any", "all"),
    "backups.require_pitr": to_bool,
    "lint.disable": _rule_list,
    "lint.severity": _rule_severities,
    "lint.destructive": _choice("block-unprotected", "block", "warn"),
    "snapshot.dir": _string,
    "snapshot.encrypt": to_bool,
    "snapshot.mode": _choice("off", "schema", "full"),
    "snapshot.when": _choice("always", "destructive"),
    "snapshot.key": _string,
    "drill.checks": _drill_checks,
    "protect.enabled": to_bool,
    "protect.max_bytes": parse_size,
    "protect.schema": _identifier,
    "backup_log.schema": _identifier,
    "backup_log.table": _identifier,
    "verify": _verify_checks,  # a list of checks, as drill.checks (GUARD_VERIFY: YAML)
    "report": _string,
    "reason": _string,
}
LIST_KEYS = ("backups.providers", "log.sinks")
SECTIONS = ("migrations", "backups", "log", "backup_log", "protect", "lint", "snapshot", "drill")


def env_name(key: str) -> str:
    """The GUARD_ environment form of a dotted key: backups.max_age -> GUARD_BACKUPS_MAX_AGE."""
    return "GUARD_" + key.replace(".", "_").upper()


ENV_KEYS = {env_name(k): k for k in (*SCALAR_KEYS, *LIST_KEYS)}
