"""Which files are pending, compared with the history; refuse a set that is not safe to apply.

The comparison is the Supabase CLI's (github.com/supabase/cli, apps/cli-go/pkg/migration/
apply.go, FindPendingMigrations; apps/cli-go/internal/migration/up/up.go,
GetPendingMigrations): local versions in file-name order walked against the history's
versions in ``ORDER BY version`` order, compared as strings, never as numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

from msgspec import Struct

from guard.errors import Blocked
from guard.migrations.history import AppliedMigration


class Plan(Struct, frozen=True):
    """What a run will apply, against what the history holds."""

    pending: list[str]  # versions, in the order they will be applied
    applied_versions: list[str]
    remote_only: list[str]  # applied versions with no local file


def compare_versions(local: Sequence[str], remote: Sequence[str]) -> tuple[list[str], list[str]]:
    """(out of order, remote only) as FindPendingMigrations finds them.

    ``local``: versions in file-name order; ``remote``: the history's versions sorted as
    strings. A local version met before the remote walk has passed it is "out of order"
    (older than an applied one); a remote version with no local file is "remote only".
    """
    unapplied: list[str] = []
    missing: list[str] = []
    i = j = 0
    while i < len(remote) and j < len(local):
        if remote[i] == local[j]:
            i, j = i + 1, j + 1
        elif remote[i] < local[j]:
            missing.append(remote[i])
            i += 1
        else:
            unapplied.append(local[j])
            j += 1
    if j == len(local):
        missing.extend(remote[i:])
    return unapplied, missing


def compute_plan(
    local_versions: Sequence[str],
    applied: Sequence[AppliedMigration],
    *,
    include_all: bool,
    filename_of: dict[str, str],
) -> Plan:
    """Pending = local files not in the history, in file-name order (``local_versions``).

    A pending file that sorts before an applied version is refused unless ``include_all``
    (as ``supabase db push``): applying it would run migrations out of the order they were
    written, against a schema they were not written for. Applied versions with no local
    file block a run with pending files (the CLI refuses even with none pending; guard only
    warns then: nothing would be applied).
    """
    remote = sorted(a.version for a in applied)
    out_of_order, remote_only = compare_versions(local_versions, remote)
    applied_set = set(remote)
    pending = [v for v in local_versions if v not in applied_set]
    if out_of_order and not include_all:
        names = ", ".join(filename_of[v] for v in out_of_order[:3]) + (" ..." if len(out_of_order) > 3 else "")
        raise Blocked(
            f"{len(out_of_order)} pending file(s) older than the newest applied version {remote[-1]}: {names}",
            hint="rename them to a newer version, or pass --include-all to apply them anyway",
        )
    if pending and remote_only:
        shown = ", ".join(remote_only[:3]) + (" ..." if len(remote_only) > 3 else "")
        raise Blocked(
            f"{len(remote_only)} applied version(s) have no local file: {shown}",
            hint="the database has migrations this checkout does not know; pull them, or mark "
            "them reverted with `supabase migration repair --status reverted <version>`",
        )
    return Plan(pending=pending, applied_versions=remote, remote_only=remote_only)
