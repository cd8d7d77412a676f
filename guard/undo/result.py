"""`guard undo`'s options and result (what it did or would do, and its exit code)."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field

from guard.errors import EXIT_BLOCKED, EXIT_CHANGED, EXIT_FAILED_ROLLED_BACK, EXIT_OK


class UndoOptions(Struct, frozen=True):
    """`guard undo`'s flags: which run (None: the last one), --yes, --force, --whole-database,
    --confirm <project-ref>, and how a Supabase restore is followed."""

    run_id: str | None = None
    yes: bool = False
    force: bool = False
    whole_database: bool = False
    confirm: str | None = None
    poll: float = 5.0  # seconds between v1-get-project calls while a restore runs
    wait: float = 1800.0  # seconds to follow a restore before reporting it unfinished (exit 4)


class UndoResult(Struct):
    """What undo did (or, without --yes, would do); ``exit_code`` as for `guard run`."""

    run_id: str | None
    undo_id: str
    path: str = "none"  # local | restore-point | pitr | refused
    done: bool = False  # False: a dry run (without --yes)
    exit_code: int = EXIT_OK
    message: str = ""
    actions: list[dict[str, Any]] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    not_invertible: list[str] = field(default_factory=list)
    remaining: list[str] = field(default_factory=list)  # fingerprint differences after the undo
    copies: list[str] = field(default_factory=list)  # the present state, copied before the undo
    versions: list[str] = field(default_factory=list)
    manual_plan: list[str] = field(default_factory=list)
    api_calls: list[str] = field(default_factory=list)

    def refuse(self, message: str, manual: list[str]) -> UndoResult:
        """Refused (exit 3), with the manual plan."""
        self.path = "refused"
        self.exit_code = EXIT_BLOCKED
        self.message = message
        self.manual_plan = manual
        return self

    def lines(self) -> list[str]:
        """The terminal rendering."""
        head = "undone" if self.done else "would"
        out = [f"guard undo {self.run_id or ''}: {self.message}".rstrip()]
        out += [f"  {'did' if self.done else head}: {a['what']}" for a in self.actions]
        out += [f"  kept: {k}" for k in self.kept]
        out += [f"  cannot invert: {n}" for n in self.not_invertible]
        out += [f"  still differs: {r}" for r in self.remaining]
        out += [f"  present state copied to {c}" for c in self.copies]
        out += [f"  {c}" for c in self.api_calls]
        out += [f"  manual: {m}" for m in self.manual_plan]
        return out


EXITS = (EXIT_OK, EXIT_FAILED_ROLLED_BACK, EXIT_BLOCKED, EXIT_CHANGED)
