"""The run state: the facts one step of the guarded run hands on to the next.

Steps read and fill a ``RunState``; none of them sees more of the configuration than the
part it is given. ``read_only`` is `guard check`: the same steps, noting what would block
instead of stopping, and never writing to the target.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

if TYPE_CHECKING:
    import psycopg

    from guard.backups import BackupVerdict
    from guard.db import ServerFacts
    from guard.lint import Finding
    from guard.migrations.apply import ApplyOutcome
    from guard.migrations.files import MigrationFile
    from guard.report.model import RunReport

Progress = Callable[[str], None]
Mask = Callable[[str], str]


class RunOptions(Struct, frozen=True):
    """What the operator asked for on the command line, beyond the configuration."""

    reason: str | None = None
    allow_stale_backup: bool = False
    include_all: bool = False
    acknowledge: str | None = None  # run id of an unfinished earlier run to let go of
    command: tuple[str, ...] = ()  # a migration tool to wrap instead of the built-in runner


class RunState(Struct):
    """Facts gathered so far. Each step reads what earlier steps left and adds its own."""

    url: str
    report: RunReport
    options: RunOptions
    environ: Mapping[str, str]
    progress: Progress
    mask: Mask
    read_only: bool = False  # guard check: note refusals in ``blocked``, write nothing
    display: Callable[[MigrationFile], str] = field(default=lambda f: str(f.path))
    conn: psycopg.Connection[Any] | None = None  # the session that holds the advisory lock
    facts: ServerFacts | None = None
    files: list[MigrationFile] = field(default_factory=list)
    pending: list[MigrationFile] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    uncopyable: dict[tuple[str, int], str] = field(default_factory=dict)
    verdict: BackupVerdict | None = None
    blocked: list[str] = field(default_factory=list)  # read-only: what would stop the run
    journal_started: bool = False
    journal_created: bool = False  # this run created guard's journal (schema guard)
    outcome: ApplyOutcome | None = None
    reconnected: psycopg.Connection[Any] | None = None  # a replacement after the original was lost

    @property
    def db(self) -> psycopg.Connection[Any]:
        """The open session (a step that needs it runs after connect)."""
        assert self.conn is not None, "connect first"
        return self.conn

    @property
    def server_major(self) -> int | None:
        return self.facts.major if self.facts else None

    @property
    def by_version(self) -> dict[str, MigrationFile]:
        return {f.version: f for f in self.files}
