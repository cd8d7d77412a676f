"""One plain function per CLI command: assemble what it needs, hand over, render the result.

The CLI maps what these return (an exit code) or raise (a GuardError) to the process exit.
One module per command family: run (run, check), backup (init, backup, restore-plan), tools
(lint, snapshot, drill, decrypt), undo. Import from the family's module (guard.commands.run...):
this package imports none of them, so a command loads only its own family.
"""
