"""Assembling the Config: the file, then the environment, then flags (later wins)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from guard.config.keys import (
    DEFAULT_CONFIG_FILE,
    ENV_KEYS,
    LIST_KEYS,
    NON_KEY_ENV,
    PLUGIN_OPTIONS,
    SCALAR_KEYS,
)
from guard.config.model import (
    BackupLogConfig,
    BackupsConfig,
    Config,
    DrillConfig,
    LintSettings,
    LogConfig,
    MigrationsConfig,
    ProtectConfig,
    ShadowConfig,
    SnapshotConfig,
)
from guard.config.source import Interpolator, Value, flatten_file, plain, plugin_list
from guard.config.values import is_secret
from guard.config.yaml_text import MAX_BYTES, compose
from guard.errors import ConfigError
from guard.plugins import PROVIDER_SPECS, SINK_SPECS, PluginConfig, PluginSpec

SECRET_OPTIONS = frozenset(name for name, convert in PLUGIN_OPTIONS.items() if is_secret(convert))


def load_config(
    *,
    config_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, tuple[str, Any]] | None = None,
    cwd: Path | None = None,
    providers: Mapping[str, PluginSpec] | None = None,
    sinks: Mapping[str, PluginSpec] | None = None,
) -> Config:
    """Assemble the Config. ``flags`` maps dotted keys to (flag name, value); None values are unset.

    ``config_path`` None means ``$GUARD_CONFIG`` or ``./guard.yml`` when present.
    """
    environ = os.environ if environ is None else environ
    interpolate = Interpolator(environ)
    try:
        return _load(
            config_path=config_path,
            environ=environ,
            flags=flags or {},
            cwd=cwd or Path.cwd(),
            providers=PROVIDER_SPECS if providers is None else providers,
            sinks=SINK_SPECS if sinks is None else sinks,
            interpolate=interpolate,
        )
    except ConfigError as exc:
        # A message may quote a value that came from a secret (a URL in the wrong key...).
        from guard.db import url_password
        from guard.report.mask import Masker

        masker = Masker(interpolate.secrets)
        for value in (*environ.values(), *(str(v) for _f, v in (flags or {}).values())):
            password = url_password(value) if "://" in value else None
            if password:
                masker.add(password)
        exc.message = masker(exc.message)
        exc.args = (exc.message,)
        raise



def _load(
    *,
    config_path: str | Path | None,
    environ: Mapping[str, str],
    flags: Mapping[str, tuple[str, Any]],
    cwd: Path,
    providers: Mapping[str, PluginSpec],
    sinks: Mapping[str, PluginSpec],
    interpolate: Interpolator,
) -> Config:
    config_file, display = _find_file(config_path, environ, cwd)
    values: dict[str, Value] = {}
    if config_file is not None:
        text = _read(config_file, display)
        tree = compose(text, display)
        if tree is not None:  # an empty file sets nothing
            values.update(flatten_file(tree, display, interpolate))
    values.update(_from_environment(environ))
    for key, (flag, value) in flags.items():
        if value is not None:
            values[key] = Value(value, f"flag {flag}")
    converted = _convert(values)
    base_dir = config_file.parent if config_file is not None else cwd

    def path(key: str, default: Path) -> Path:
        if key not in converted:
            return default if default.is_absolute() else cwd / default
        p = Path(converted[key])
        if p.is_absolute():
            return p
        # A path from the file is relative to the file; from env/flags, to the working dir.
        from_file = bool(display) and values[key].source.startswith(display + ":")
        return (base_dir if from_file else cwd) / p

    provider_list = (
        plugin_list(values["backups.providers"], "backups.providers", providers, is_sink=False,
                    interpolate=interpolate)
        if "backups.providers" in values
        else (PluginConfig("table", {}, "default"),)
    )
    sink_list = (
        plugin_list(values["log.sinks"], "log.sinks", sinks, is_sink=True, interpolate=interpolate)
        if "log.sinks" in values
        else (PluginConfig("table", {}, "default"),)
    )
    secrets = _secrets(converted, interpolate, (*provider_list, *sink_list))
    return _build(converted, path, provider_list, sink_list, config_file, base_dir, secrets)


def _read(config_file: Path, display: str) -> str:
    """The config file's text: a regular file, UTF-8, at most MAX_BYTES."""
    try:
        with config_file.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
        if len(data) > MAX_BYTES:
            raise ConfigError(f"longer than {MAX_BYTES // 1024} KiB", source=display)
        return data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file: {exc.__class__.__name__}", source=display) from None


def _find_file(config_path: str | Path | None, environ: Mapping[str, str], cwd: Path) -> tuple[Path | None, str]:
    """The config file (--config, $GUARD_CONFIG, or ./guard.yml when present) and its name in messages."""
    explicit = config_path or environ.get("GUARD_CONFIG")
    if explicit:
        try:
            config_file = (cwd / Path(explicit)).resolve() if not Path(explicit).is_absolute() else Path(explicit)
            found = config_file.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long
            found = False
        if not found:
            raise ConfigError(f"config file {str(explicit)[:200]!r} does not exist or is not a regular file",
                              key="--config")
        return config_file, str(explicit)
    default = cwd / DEFAULT_CONFIG_FILE
    if default.is_file():
        return default, DEFAULT_CONFIG_FILE
    if os.path.lexists(default):  # a directory, a FIFO, a link to /dev/zero or to nothing
        raise ConfigError("not a regular file", source=DEFAULT_CONFIG_FILE)
    return None, ""


def _from_environment(environ: Mapping[str, str]) -> dict[str, Value]:
    """DATABASE_URL and every GUARD_* variable as dotted keys; an unknown GUARD_ name is an error."""
    values: dict[str, Value] = {}
    # DATABASE_URL is the common name in CI; GUARD_DATABASE_URL wins over it.
    if environ.get("DATABASE_URL"):
        values["database_url"] = Value(environ["DATABASE_URL"], "env DATABASE_URL")
    for name, value in environ.items():
        if not name.startswith("GUARD_") or name in NON_KEY_ENV:
            continue
        key = ENV_KEYS.get(name)
        if value == "" and key is not None:
            continue  # an empty variable (an unset CI input) does not override anything
        if key is None:
            raise ConfigError(
                "unknown GUARD_ environment variable", key=name,
                hint="known: " + ", ".join(sorted(ENV_KEYS)),
            )
        values[key] = Value(value, f"env {name}")
    return values


def _convert(values: Mapping[str, Value]) -> dict[str, Any]:
    """Each scalar key through its converter; a bad value names the key and its source."""
    converted: dict[str, Any] = {}
    for key, raw in values.items():
        if key in LIST_KEYS:
            continue
        try:
            converted[key] = SCALAR_KEYS[key](plain(raw.value))
        except ValueError as exc:
            raise ConfigError(str(exc), key=key, source=raw.source) from None
    return converted


def _secrets(
    converted: Mapping[str, Any], interpolate: Interpolator, plugins: tuple[PluginConfig, ...]
) -> tuple[str, ...]:
    """Values to mask everywhere, longest first: ${VAR} values, the snapshot key, the URL's
    password, plug-in tokens and passwords."""
    secrets = list(interpolate.secrets)
    if converted.get("snapshot.key"):
        secrets.append(converted["snapshot.key"])
    url = converted.get("database_url")
    if url:
        from guard.db import url_password

        password = url_password(url)
        if password:
            secrets.append(password)
    for plugin in plugins:
        for option, value in plugin.options.items():
            if option in SECRET_OPTIONS and isinstance(value, str) and value:
                secrets.append(value)
    return tuple(sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True))


def _build(
    converted: Mapping[str, Any],
    path: Any,
    provider_list: tuple[PluginConfig, ...],
    sink_list: tuple[PluginConfig, ...],
    config_file: Path | None,
    base_dir: Path,
    secrets: tuple[str, ...],
) -> Config:
    defaults_m = MigrationsConfig()
    defaults_b = BackupsConfig()
    return Config(
        database_url=converted.get("database_url") or None,
        migrations=MigrationsConfig(
            dir=path("migrations.dir", defaults_m.dir),
            transaction=converted.get("migrations.transaction", defaults_m.transaction),
            lock_timeout=converted.get("migrations.lock_timeout", defaults_m.lock_timeout),
            statement_timeout=converted.get("migrations.statement_timeout", defaults_m.statement_timeout),
            include_all=converted.get("migrations.include_all", defaults_m.include_all),
            lock_retries=converted.get("migrations.lock_retries", defaults_m.lock_retries),
            lock_retry_delay=converted.get("migrations.lock_retry_delay", defaults_m.lock_retry_delay),
            ignore=converted.get("migrations.ignore", defaults_m.ignore),
        ),
        backups=BackupsConfig(
            max_age=converted.get("backups.max_age", defaults_b.max_age),
            require=converted.get("backups.require", defaults_b.require),
            require_pitr=converted.get("backups.require_pitr", False),
            providers=provider_list,
        ),
        log=LogConfig(sinks=sink_list),
        snapshot=SnapshotConfig(
            dir=path("snapshot.dir", Path("snapshots")),
            encrypt=converted.get("snapshot.encrypt", True),
            mode=converted.get("snapshot.mode", "off"),
            when=converted.get("snapshot.when", "destructive"),
            key=converted.get("snapshot.key") or None,
        ),
        drill=DrillConfig(checks=converted.get("drill.checks", ())),
        shadow=ShadowConfig(base=converted.get("shadow.base", "auto")),
        verify=converted.get("verify", ()),
        lint=LintSettings(
            disable=converted.get("lint.disable", frozenset()),
            severity=converted.get("lint.severity", {}),
            destructive=converted.get("lint.destructive", "block-unprotected"),
        ),
        protect=ProtectConfig(
            enabled=converted.get("protect.enabled", True),
            max_bytes=converted.get("protect.max_bytes", 1 << 30),
            schema=converted.get("protect.schema", "guard_backup"),
            retention=converted.get("protect.retention", 30 * 86400.0),
        ),
        backup_log=BackupLogConfig(
            schema=converted.get("backup_log.schema", "public"),
            table=converted.get("backup_log.table", "backup_logs"),
        ),
        report=path("report", Path("guard-report.json")),
        reason=converted.get("reason"),
        config_file=config_file,
        base_dir=base_dir,
        secrets=secrets,
    )


def require_database_url(config: Config) -> str:
    """The database URL, or exit 2 naming every place it can come from."""
    if not config.database_url:
        where = f"{config.config_file.name}: " if config.config_file else ""
        raise ConfigError(
            f"{where}database_url is not set",
            key=None,
            hint="set database_url in guard.yml, GUARD_DATABASE_URL or DATABASE_URL, or pass --database-url",
        )
    return config.database_url
