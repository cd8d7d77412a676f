"""One real PostgreSQL cluster per test session; a fresh database per test.

Under pytest-xdist (.ci/test runs two workers) each worker is a session with its own cluster;
what workers share on disk (.tools/, the checkout) is installed under tests.support.once_at_a_time.

Binaries: PG_BIN, pg_config, /usr/lib/postgresql/*/bin, else pgserver (guard.embedded). None
found fails the session with the reason: these tests never skip for want of a server.

Every test database is cloned from ``guard_template`` (cheap: CREATE DATABASE ... TEMPLATE),
so whatever `_prepare_template` installs once is there in each test for free.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from guard.embedded import Cluster, EmbeddedError
from tests.support import Project

# Every test connects with this password over TCP; tests grep outputs for it to prove it never
# leaks. Distinctive on purpose: it must not occur in any output by accident.
TEST_PASSWORD = "pw-Zq81-secret-tst"
TEMPLATE = "guard_template"


def _prepare_template(conn: psycopg.Connection[Any]) -> None:
    """Install what every test database starts with (``conn`` is on the template, autocommit).

    Nothing yet: tests install what they need. Extend here rather than in each test when
    many tests need the same objects.
    """


def _create_template(cluster: Cluster) -> None:
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(TEMPLATE)))
    with psycopg.connect(cluster.url(TEMPLATE), autocommit=True) as conn:
        _prepare_template(conn)
    # Closed before anyone clones it: CREATE DATABASE ... TEMPLATE refuses while the template
    # has other sessions.
    with psycopg.connect(cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true").format(sql.Identifier(TEMPLATE))
        )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's cluster: superuser ``postgres`` / TEST_PASSWORD over 127.0.0.1."""
    try:
        cluster = Cluster(password=TEST_PASSWORD)
        cluster.start()
    except EmbeddedError as exc:
        pytest.fail(f"cannot start the test PostgreSQL: {exc}", pytrace=False)
    try:
        _create_template(cluster)
        yield cluster
    finally:
        cluster.stop()


def _database_name(test_name: str) -> str:
    # Readable in pg_stat_activity when a test hangs, unique, and short enough (<= 63 bytes
    # even with a suffix a test may add to derive a second database from it).
    slug = re.sub(r"[^a-z0-9]+", "_", test_name.lower()).strip("_")[:32]
    return f"t_{slug}_{uuid.uuid4().hex[:8]}"


@pytest.fixture
def db_url(pg_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database cloned from the template; its URL (TCP, with the password)."""
    name = _database_name(request.node.name)
    ident = sql.Identifier(name)
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(ident, sql.Identifier(TEMPLATE))
        )
    try:
        yield pg_cluster.url(name)
    finally:
        # FORCE: a test that left a connection open (or failed mid-way) must not leak the DB.
        with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(ident))


@pytest.fixture
def db_conn(db_url: str) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to the test's database, closed after the test."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        yield conn


@pytest.fixture
def project(tmp_path: Path, db_url: str) -> Project:
    """A Supabase-style project directory pointed at the test's database."""
    return Project(tmp_path, db_url)


@pytest.fixture
def ready(project: Project) -> Project:
    """A project whose database has the backup log and an automated backup an hour old."""
    project.init_backup_log()
    project.log_automated_backup(age=dt.timedelta(hours=1))
    return project
