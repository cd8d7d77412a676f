"""Step 10: protect what destructive statements destroy (a snapshot before, copies during apply)."""

from __future__ import annotations

from guard.config import ProtectConfig, SnapshotConfig
from guard.protect import Protector
from guard.run.state import RunState


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
    committed_files = {r.file for r in state.outcome.results if r.status == "applied"}
    state.report.protective_copies = [
        asdict(c) for c in copier.copies if c.statement.rsplit(":", 1)[0] in committed_files
    ]
    state.report.warnings.extend(copier.skipped)
