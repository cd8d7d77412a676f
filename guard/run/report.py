"""Who runs and where: the run id, the CI context, the actor, and the report a run starts with."""

from __future__ import annotations

import datetime as dt
import getpass
import secrets
import socket
from collections.abc import Mapping

from guard import __version__
from guard.config import Config
from guard.db import describe_url
from guard.report.model import DatabaseInfo, RunReport, iso


def new_run_id(now: dt.datetime | None = None) -> str:
    """20 characters, sortable, unique enough: 20261125013000-a1b2c (also a valid restore point name)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)[:5]}"


def ci_context(environ: Mapping[str, str]) -> dict[str, str]:
    """Commit, actor, ref and run URL from GitHub Actions or GitLab CI, when present."""
    ci: dict[str, str] = {}
    pairs = {
        "commit": ("GITHUB_SHA", "CI_COMMIT_SHA"),
        "actor": ("GITHUB_ACTOR", "GITLAB_USER_LOGIN"),
        "ref": ("GITHUB_REF", "CI_COMMIT_REF_NAME"),
        "repository": ("GITHUB_REPOSITORY", "CI_PROJECT_PATH"),
    }
    for key, names in pairs.items():
        for name in names:
            if environ.get(name):
                ci[key] = environ[name]
                break
    if environ.get("GITHUB_RUN_ID") and environ.get("GITHUB_REPOSITORY"):
        server = environ.get("GITHUB_SERVER_URL", "https://github.com")
        ci["run_url"] = f"{server}/{environ['GITHUB_REPOSITORY']}/actions/runs/{environ['GITHUB_RUN_ID']}"
    elif environ.get("CI_JOB_URL"):
        ci["run_url"] = environ["CI_JOB_URL"]
    return ci


def actor(ci: Mapping[str, str]) -> str:
    """``guard (<CI actor>)``, or ``guard (<user>@<host>)`` outside CI."""
    if ci.get("actor"):
        return f"guard ({ci['actor']})"
    try:
        user = getpass.getuser()
    except Exception:  # noqa: BLE001 - no user name is not worth failing a run for
        user = "unknown"
    return f"guard ({user}@{socket.gethostname()})"


def new_report(command: str, config: Config, environ: Mapping[str, str]) -> RunReport:
    """An empty RunReport for ``command``: run id (``GUARD_RUN_ID`` wins), start time, CI, target."""
    now = dt.datetime.now(dt.timezone.utc)
    report = RunReport(
        command=command,
        run_id=environ.get("GUARD_RUN_ID") or new_run_id(now),
        started_at=iso(now),
        ci=ci_context(environ),
        tool={"name": "migration-guard", "version": __version__},
    )
    if config.database_url:
        report.database = DatabaseInfo(target=describe_url(config.database_url))
    return report
