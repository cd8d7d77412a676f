"""Step 10: protect what destructive statements destroy (a snapshot before, copies during apply)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from guard.config import ProtectConfig, SnapshotConfig
from guard.protect import Protector
from guard.run.state import RunState

if TYPE_CHECKING:
    from typing import Any

    from guard.migrations.apply_state import ApplyOutcome, RecordsKept
    from guard.migrations.files import MigrationFile
    from guard.protect import CopyRecord


def take_snapshot_if_due(state: RunState, snapshot: SnapshotConfig) -> None:
    """A whole-database ``pg_dump`` snapshot when snapshot.mode is on and snapshot.when says
    this release needs one; its file, manifest and restore command go in the report."""
    mode = snapshot.mode
    destructive = any(f.category == "destructive" for f in state.findings)
    if mode == "off" or (snapshot.when == "destructive" and not destructive):
        return
    from guard.snapshot import take_snapshot

    state.progress(f"taking a {mode} snapshot before applying")
    manifest = take_snapshot(
        state.url, mode=mode, out_dir=snapshot.dir,
        encrypt=snapshot.encrypt, key=snapshot.key, progress=state.progress,
    )
    state.report.snapshot = {
        "file": str(manifest.path), "manifest": str(manifest.manifest_path),
        "mode": mode, "bytes": manifest.bytes, "sha256": manifest.sha256, "encrypted": manifest.encrypted,
        # With the directory in the paths: the plan is read where guard ran, not in snapshot.dir.
        "restore_command": " && ".join(manifest.restore_steps(snapshot.dir)),
    }


def protector(state: RunState, protect: ProtectConfig) -> Protector | None:
    """The protective copier the apply step calls before each destructive statement, in that
    statement's transaction; None when protect.enabled is off."""
    if not protect.enabled:
        return None
    return Protector(state.report.run_id, schema=protect.schema, max_bytes=protect.max_bytes,
                     retention=protect.retention, progress=state.progress,
                     guard_role=state.facts.role if state.facts is not None else None)


def keep_copies(state: RunState, copier: Protector | None) -> None:
    """The copies made in files that committed go in the report (a copy made in a file that
    rolled back rolled back with it), and what could not be copied as warnings."""
    from guard.structs import asdict

    if copier is None or state.outcome is None:
        return
    state.report.protective_copies = [asdict(c) for c in committed_copies(state.outcome, copier)]
    state.report.warnings.extend(copier.skipped)


def committed_copies(outcome: ApplyOutcome, copier: Protector | None) -> list[CopyRecord]:
    """The copies ``copier`` made in files of ``outcome`` that committed (a copy made in a file
    that rolled back rolled back with it)."""
    if copier is None:
        return []
    committed_files = {r.file for r in outcome.results if r.status == "applied"}
    return [c for c in copier.copies if c.statement.rsplit(":", 1)[0] in committed_files]


def records_kept(state: RunState, copier: Protector | None) -> RecordsKept:
    """The check before each file's COMMIT that guard's records of the run are still there
    (guard/protect/kept.py): the run's guard.runs row, and the copies made in the files that
    committed before the file and in the file itself. A file that removed any of them rolls
    back (exit 1), naming what it removed."""
    from guard.protect import kept

    def check(file: MigrationFile) -> list[tuple[str, tuple[Any, ...]]]:
        outcome = state.outcome
        done = {r.file for r in outcome.results if r.status == "applied"} if outcome is not None else set()
        done.add(state.display(file))
        copies = [c for c in copier.copies if c.statement.rsplit(":", 1)[0] in done] if copier is not None else []
        return kept.statements(state.report.run_id, copies)

    return check


# This run's copies whose table or guard.copies row is gone (and whether the table is there).
COPIES_GONE = """
SELECT c.copy, pg_catalog.to_regclass(c.copy) IS NOT NULL FROM unnest(%s::text[]) AS c(copy)
 WHERE pg_catalog.to_regclass(c.copy) IS NULL OR NOT EXISTS (SELECT FROM guard.copies g WHERE g.copy = c.copy)
"""


def records_gone(state: RunState, copier: Protector | None) -> None:
    """After the last COMMIT: this run's protective copies (their tables in protect.schema and
    their guard.copies rows) are read again (its guard.runs row: history.rows_gone_after_commit).
    A later file may drop or delete them (``drop schema guard_backup cascade``, ``delete from
    guard.copies``); a copy's data is then lost with the run reported applied. What went is
    named in the report and the run ends failed_partially_applied (exit 4)."""
    import psycopg

    outcome = state.outcome
    if outcome is None or not outcome.committed or state.db.broken or state.db.closed or outcome.unknown:
        return
    # Before expired copies are pruned (protect.retention may be shorter than the run).
    names = [c.copy for c in committed_copies(outcome, copier)]
    gone = outcome.records_gone
    try:
        if names:  # no wait for the server in a run without copies
            gone += [f"the guard.copies row of the protective copy {row[0]} (guard undo no longer knows the "
                     "copy; the restore SQL in this report still works)" if row[1] else
                     f"the protective copy {row[0]} (its restore SQL cannot run: what it held is kept nowhere else)"
                     for row in state.db.execute(COPIES_GONE, (names,)).fetchall()]
    except psycopg.Error as exc:  # guard's schema itself dropped
        from guard.migrations.apply_state import primary

        gone.append(f"guard's records of the run's copies (reading them back: {primary(exc)})")
    if gone:
        state.report.warnings.append(f"gone after COMMIT (a file of this run removed it): {'; '.join(gone)}")
