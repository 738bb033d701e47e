"""Shared fixtures of the integration tests: real databases.

PostgreSQL must run on 127.0.0.1:5432 (user `postgres`, trust auth; CI
starts it). When it is unreachable the PostgreSQL tests FAIL, never skip.

- `pg_admin_url`   (session) URL of the `postgres` maintenance database,
                   checked reachable once.
- `pg_url`         (function) a fresh, empty database `gi_test_<hex>`,
                   dropped WITH (FORCE) afterwards.
- `sqlite_url`     (function) a SQLite file in the test's tmp_path.
- `openai_stub`    (function) the local OpenAI-compatible stub (tests/support), reset.
- `receiver`       (function) a real HTTP receiver of callbacks (tests/support).
- `private_redis`  (function) a Redis of this test's own (no persistence), started;
                   tests may stop and start it.
- `stub`           (function) the OpenAI-compatible stub as a child process (no
                   latency; tests set theirs with `stub.configure(latency_ms=...)`).

URLs are given in the plain forms that DATABASE_URL accepts
(`postgresql://...`, `sqlite:////abs/path`), not the async-driver forms.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from tests.integration.celery.celery_stack import PrivateRedis, StubControl
from tests.support.fixtures import openai_stub, openai_stub_server, receiver  # noqa: F401

PG_SERVER = os.environ.get("GI_TEST_PG_SERVER", "postgres@127.0.0.1:5432")


@pytest.fixture(scope="session")
def pg_admin_url() -> str:
    """The maintenance database's URL, after checking that PostgreSQL answers."""
    url = f"postgresql://{PG_SERVER}/postgres"
    try:
        with psycopg.connect(url, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER}: {error}", pytrace=False)
    return url


@pytest.fixture
def pg_url(pg_admin_url: str) -> Iterator[str]:
    """A new empty database for one test; dropped (connections forced out) after it."""
    name = f"gi_test_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql://{PG_SERVER}/{name}"
    finally:
        with psycopg.connect(pg_admin_url, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite database file (not created yet) in the test's tmp_path."""
    return f"sqlite:///{tmp_path / 'guideline-ingest.sqlite3'}"


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def stub(tmp_path: Path) -> Iterator[StubControl]:
    control = StubControl(tmp_path)
    try:
        yield control
    finally:
        control.close()
