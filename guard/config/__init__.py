"""guard.yml + GUARD_* environment + flags -> one frozen Config.

Later wins: the file, then the environment, then flags. Every error names the key and where
the value came from (``guard.yml:12``, ``env GUARD_BACKUPS_MAX_AGE``, ``flag --max-age``).
Secrets come from the environment through ``${VAR}`` in the file; the Config keeps the
list of secret values so every renderer can mask them.

model (the frozen models), values (durations, sizes, converters), keys (the schema and its
GUARD_* names), source (YAML with lines, ${VAR}, plug-in lists), load (assembling it all).
"""

from guard.config.keys import DEFAULT_CONFIG_FILE, ENV_KEYS, NON_KEY_ENV, SCALAR_KEYS, env_name
from guard.config.load import load_config, require_database_url
from guard.config.model import (
    BackupLogConfig,
    BackupsConfig,
    Config,
    DrillCheck,
    DrillConfig,
    LintSettings,
    LogConfig,
    MigrationsConfig,
    ProtectConfig,
    ShadowConfig,
    SnapshotConfig,
    VerifyCheck,
)
from guard.config.values import format_duration, parse_duration, parse_size
from guard.plugins import PluginConfig, PluginSpec

__all__ = [
    "DEFAULT_CONFIG_FILE", "ENV_KEYS", "NON_KEY_ENV", "SCALAR_KEYS", "BackupLogConfig", "BackupsConfig", "Config",
    "DrillCheck", "DrillConfig", "ShadowConfig", "VerifyCheck", "LintSettings", "LogConfig", "MigrationsConfig", "PluginConfig", "PluginSpec",
    "ProtectConfig", "SnapshotConfig", "env_name", "format_duration", "load_config", "parse_duration",
    "parse_size", "require_database_url",
]
