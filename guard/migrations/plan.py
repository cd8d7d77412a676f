"""Which files are pending, compared with the history; refuse a set that is not safe to apply."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from guard.errors import Blocked
from guard.migrations.history import AppliedMigration, version_key


@dataclass(frozen=True)
class Plan:
    pending: list[str]  # versions, in the order they will be applied
    applied_versions: list[str]
    remote_only: list[str]  # applied versions with no local file


def compute_plan(
    local_versions: Sequence[str],
    applied: Sequence[AppliedMigration],
    *,
    include_all: bool,
    filename_of: dict[str, str],
) -> Plan:
    """Pending = local files not in the history, in version order.

    A pending file older than the newest applied version is refused unless ``include_all``
    (as ``supabase db push``): applying it would run migrations out of the order they were
    written, against a schema they were not written for.
    """
    applied_set = {a.version for a in applied}
    pending = [v for v in local_versions if v not in applied_set]
    remote_only = [a.version for a in applied if a.version not in set(local_versions)]
    if pending and applied and not include_all:
        newest = max((a.version for a in applied), key=version_key)
        older = [v for v in pending if version_key(v) < version_key(newest)]
        if older:
            names = ", ".join(filename_of[v] for v in older[:3]) + (" ..." if len(older) > 3 else "")
            raise Blocked(
                f"{len(older)} pending file(s) older than the newest applied version {newest}: {names}",
                hint="rename them to a newer version, or pass --include-all to apply them anyway",
            )
    if pending and remote_only:
        shown = ", ".join(remote_only[:3]) + (" ..." if len(remote_only) > 3 else "")
        raise Blocked(
            f"{len(remote_only)} applied version(s) have no local file: {shown}",
            hint="the database has migrations this checkout does not know; pull them, or mark "
            "them reverted with `supabase migration repair --status reverted <version>`",
        )
    return Plan(pending=pending, applied_versions=[a.version for a in applied], remote_only=remote_only)
