"""Who runs and where: the run id, the CI context, the actor, and the report a run starts with."""

from __future__ import annotations

import datetime as dt
import getpass
import re
import secrets
import socket
from collections.abc import Mapping

from guard import __version__
from guard.config import Config
from guard.db import describe_url
from guard.errors import ConfigError
from guard.report.model import DatabaseInfo, RunReport, iso


def new_run_id(now: dt.datetime | None = None) -> str:
    """20 characters, sortable, unique enough: 20261125013000-a1b2c (also a valid restore point name)."""
    now = now or dt.datetime.now(dt.timezone.utc)
    return f"{now:%Y%m%d%H%M%S}-{secrets.token_hex(3)[:5]}"


# Every name guard derives from a run id stays within PostgreSQL's 63 bytes (NAMEDATALEN - 1):
# the restore point ``guard-<id>``, protective copies ``<id>_<seq>_<table>`` (the sequence
# number must survive the cut), file names. Letters, digits, dot, dash, underscore only:
# no quote, slash, space or control character can reach a name, a path or a message.
RUN_ID_MAX = 40
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def run_id_from(environ: Mapping[str, str], now: dt.datetime | None = None) -> str:
    """This run's id: ``GUARD_RUN_ID`` (checked), else a new one.

    A CI job that is re-run keeps its ``GUARD_RUN_ID=${{ github.run_id }}``; from the second
    attempt on (``GITHUB_RUN_ATTEMPT``) ``-a<attempt>`` is added, so each attempt is its own
    run. Raises ConfigError (exit 2) for an id that is not 1 to RUN_ID_MAX characters of
    ``A-Z a-z 0-9 . _ -`` (first a letter or digit).
    """
    given = environ.get("GUARD_RUN_ID", "")
    if not given:
        return new_run_id(now)
    attempt = environ.get("GITHUB_RUN_ATTEMPT", "").strip()
    if attempt.isdigit() and attempt.isascii() and int(attempt) > 1:
        given = f"{given}-a{int(attempt)}"
    if not is_run_id(given):
        raise ConfigError(
            f"must be 1 to {RUN_ID_MAX} characters of A-Z a-z 0-9 . _ - (first a letter or digit)"
            + (" once -a<GITHUB_RUN_ATTEMPT> is added" if given != environ["GUARD_RUN_ID"] else ""),
            key="GUARD_RUN_ID", hint="it names restore points and copies; e.g. ${{ github.run_id }}",
        )
    return given


SHOWN_MAX = 24  # characters of a rejected run id echoed back


def shown_run_id(value: str) -> str:
    """``value`` as a message may echo it: a run id of guard's shape as it is, anything else
    quoted (control characters escaped) and cut to :data:`SHOWN_MAX` characters with ``…``."""
    if is_run_id(value):
        return value
    cut = value[:SHOWN_MAX]
    return ascii(cut)[:-1] + ("…'" if len(value) > SHOWN_MAX else "'")


def is_run_id(value: str) -> bool:
    """Whether ``value`` has the shape of the run ids guard issues (new_run_id, or a
    ``GUARD_RUN_ID`` that run_id_from accepts): 1 to RUN_ID_MAX of ``A-Z a-z 0-9 . _ -``."""
    return len(value) <= RUN_ID_MAX and _RUN_ID.fullmatch(value) is not None


def checked_run_id(value: str | None, what: str = "RUN_ID") -> str | None:
    """``value`` (``what``: a RUN_ID argument or an option; None when none was given) when it is
    a run id; else UsageError (exit 2), one line echoing at most SHOWN_MAX of its characters."""
    from guard.errors import UsageError

    if value is None or is_run_id(value):
        return value
    raise UsageError(f"{what} {shown_run_id(value)} is not a run id guard issues: 1 to {RUN_ID_MAX} characters "
                     "of A-Z a-z 0-9 . _ - (first a letter or digit), e.g. 20261125013000-a1b2c")


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
        run_id=run_id_from(environ, now),
        started_at=iso(now),
        ci=ci_context(environ),
        tool={"name": "migration-guard", "version": __version__},
    )
    if config.database_url:
        report.database = DatabaseInfo(target=describe_url(config.database_url))
    return report
