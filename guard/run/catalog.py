"""Steps 10b and 11b: the catalog before the first statement and after the last, recorded in
guard's journal (``guard.run_catalogs``) for `guard undo`."""

from __future__ import annotations

from guard.run.state import RunState
from guard.undo import catalog


def record_before(state: RunState) -> catalog.Catalog | None:
    """The catalog and fingerprint before apply; a failure is a warning (undo then has no
    local inverse for this run), never a reason to stop the run."""
    import psycopg

    from guard.db import describe_url
    from guard.errors import Blocked
    from guard.migrations.apply_state import primary

    try:
        return catalog.record(state.db, state.report.run_id, "before")
    except psycopg.Error as exc:
        reason = primary(exc)  # libpq's lost-connection text runs to several lines: the first
        if state.db.broken or state.db.closed:  # the session, and guard's lock with it, is gone
            raise Blocked(f"lost the connection to {describe_url(state.url)} before the first statement "
                          f"({reason}): nothing was changed",
                          hint="check the server and the network, then run guard again") from None
        state.report.warnings.append(f"could not record the catalog for guard undo: {reason}")
        return None


def record_after(state: RunState, before: catalog.Catalog | None) -> None:
    """The catalog after apply, with checksums of the tables the run added."""
    import psycopg

    conn = state.reconnected if state.reconnected is not None else state.conn
    if before is None or conn is None or conn.broken or conn.closed:
        return
    try:
        catalog.record(conn, state.report.run_id, "after", before)
    except psycopg.Error as exc:
        from guard.migrations.apply_state import primary

        state.report.warnings.append(f"could not record the catalog after the run: {primary(exc)}")

