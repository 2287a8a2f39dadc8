"""Fixtures for the audit tests: a fresh store URL of each kind (SQLite file, and a real PostgreSQL
server started once per session as an unprivileged user), and a record factory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from audit_helpers import PostgresServer, RecordFactory, find_pg_bindir, record_factory


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a real PostgreSQL server for this test session. Without server binaries
    (scripts/start_postgres.sh installs them) the tests skip on a developer's machine, and fail in CI
    (CI=true): the PostgreSQL store must be tested there."""
    bindir = find_pg_bindir()
    if bindir is None:
        message = "no PostgreSQL server binaries (run scripts/start_postgres.sh to install them)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true: {message}", pytrace=False)
        pytest.skip(message)
    # not under pytest's tmp dir: that is private to root, and the server runs as another user
    root = Path(tempfile.mkdtemp(prefix="credo-pg-"))
    server = PostgresServer(bindir, root)
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _fresh_schema(base_url: str) -> str:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    return f"{base_url}?options=-csearch_path%3D{schema}"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty store of each kind: every store test runs against both."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'audit.db'}"
    return _fresh_schema(request.getfixturevalue("postgres_url"))


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'audit.db'}"


@pytest.fixture
def make_record() -> RecordFactory:
    return record_factory()
