"""One plain function per CLI command: assemble what it needs, hand over, render the result.

The CLI maps what these return (an exit code) or raise (a GuardError) to the process exit.
One module per command family: run (run, check), backup (init, backup, restore-plan), tools
(lint, snapshot, drill, decrypt).
"""

from guard.commands.backup import (
    backup_log_command,
    backup_status_command,
    init_command,
    prune_command,
    restore_plan_command,
)
from guard.commands.run import check_command, finish, run_command
from guard.commands.tools import decrypt_command, drill_command, lint_command, snapshot_command
from guard.commands.undo import undo_command

__all__ = [
    "backup_log_command", "backup_status_command", "check_command", "decrypt_command", "drill_command",
    "finish", "init_command", "lint_command", "prune_command", "restore_plan_command", "run_command",
    "snapshot_command", "undo_command",
]
