"""Fixtures of the fault-injection suite: a deployment whose every part this suite owns.

- `private_pg`    (session) a PostgreSQL 15 server of its own (`initdb` in a temporary
                  directory, a free port, fsync off), so a test may stop and start it.
                  A test that stops it must start it again (`PrivatePostgres.start`
                  is a no-op while it runs; every test starts it again in its finally).
- `pg_database`   (function) a fresh database on that server, as a DATABASE_URL.
- `private_redis`, `stub` (tests/integration/conftest.py) a Redis of the test's own
                  (stopping it loses every queued message, as a restart of an
                  unpersisted Redis would) and the OpenAI-compatible stub process.
- `make_stack`    (function) a `Stack` on those three, migrated, with an API key and
                  short recovery settings; tests start its API and workers. Every
                  process is stopped (killed if need be) at the end of the test.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from tests.integration.celery.celery_stack import PrivateRedis, Stack, StubControl
from tests.integration.faults.fault_support import PG_BIN, PrivatePostgres

# Short enough that recovery shows within seconds; the lease is renewed every lease/4.
FAST_RECOVERY = {
    "JOB_LEASE_S": "3",
    "JOB_PENDING_REDISPATCH_S": "3",
    "RECOVERY_INTERVAL_S": "1",
    "SHUTDOWN_GRACE_S": "3",
    "LLM_BACKOFF_BASE_S": "0.02",
    "LLM_RETRY_AFTER_MAX_S": "1",
}


@pytest.fixture(scope="session")
def private_pg() -> Iterator[PrivatePostgres]:
    if not (PG_BIN / "initdb").exists():
        pytest.fail(f"PostgreSQL binaries not found in {PG_BIN} (GI_TEST_PG_BIN)", pytrace=False)
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def pg_database(private_pg: PrivatePostgres) -> str:
    private_pg.start()  # in case an earlier test left it stopped
    return private_pg.create_database()


@pytest.fixture
def make_stack(
    tmp_path: Path, pg_database: str, private_redis: PrivateRedis, stub: StubControl
) -> Iterator[Callable[..., Stack]]:
    """`make_stack(**env)`: a migrated deployment with an API key; env overrides settings."""
    stacks: list[Stack] = []

    def make(**env: str) -> Stack:
        stack = Stack(
            log_dir=tmp_path,
            database_url=pg_database,
            broker_url=private_redis.url,
            llm_base_url=stub.url,
            extra_env={**FAST_RECOVERY, **env},
        )
        stacks.append(stack)
        stack.prepare()
        return stack

    try:
        yield make
    finally:
        for stack in stacks:
            stack.close()
            for proc in stack.procs:  # anything that ignored SIGTERM
                with contextlib.suppress(Exception):
                    proc.kill9()
