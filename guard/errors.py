"""One exception family. Each class carries the exit code its outcome implies (DESIGN.md).

The CLI maps these to exit codes in one place; messages are one line, name the culprit
(key, file:line, provider, URL without its password) and say what to do next.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED_ROLLED_BACK = 1
EXIT_USAGE = 2
EXIT_BLOCKED = 3
EXIT_CHANGED = 4


class GuardError(Exception):
    """An expected failure: printed as one line, no stack trace."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} ({self.hint})"
        return self.message


class UsageError(GuardError):
    """Bad flags or arguments: exit 2, nothing touched."""

    exit_code = EXIT_USAGE


class ConfigError(UsageError):
    """Bad configuration: exit 2; the message names the key and, for the file, file:line."""

    def __init__(
        self,
        message: str,
        *,
        key: str | None = None,
        source: str | None = None,
        hint: str | None = None,
    ) -> None:
        where = ""
        if source and key:
            where = f"{source}: {key}: "
        elif key:
            where = f"{key}: "
        elif source:
            where = f"{source}: "
        super().__init__(where + message, hint=hint)
        self.key = key
        self.source = source


class Blocked(GuardError):
    """Refused before any change (stale backup, lock held, bad migration set...): exit 3."""

    exit_code = EXIT_BLOCKED


class MigrationFileError(Blocked):
    """A migration file cannot be used (unreadable, not UTF-8, syntax error...): exit 3."""

    def __init__(
        self, message: str, *, file: str, line: int | None = None, hint: str | None = None
    ) -> None:
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}", hint=hint)
        self.file = file
        self.line = line


class ConnectError(Blocked):
    """The database cannot be reached: nothing was touched, exit 3."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM, raised in the main thread: psycopg cancels the running statement on
    the server, transactions roll back, `finally` blocks and exit handlers run (an embedded
    cluster is stopped and removed). The CLI exits 128 + the signal's number, except where
    the guarded run settles the outcome itself (exit 1 or 4)."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(signal_name)
        self.signal_name = signal_name
