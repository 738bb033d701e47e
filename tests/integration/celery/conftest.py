"""Fixtures of the Celery tests: production mode as real processes.

- `broker_url`  a database of the local Redis (127.0.0.1:6379) unique to this test
                run, flushed before each test.
- `stub`, `private_redis` come from tests/integration/conftest.py.
- `make_stack`  builds a `Stack` (PostgreSQL database of this test, the broker, the
                stub, short leases), migrated and with an API key; tests start its
                workers and API. Every process is killed at the end of the test.
- `stack`       `make_stack()` with the API and one worker running.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from tests.integration.celery.celery_stack import Stack, StubControl

LOCAL_REDIS = ("127.0.0.1", 6379)
# Redis databases 7..15 are left to the tests; one per test run (pytest-xdist safe enough).
REDIS_DB = 7 + os.getpid() % 9

pytestmark = pytest.mark.slow

FAST_RECOVERY = {
    "JOB_LEASE_S": "4",
    "JOB_PENDING_REDISPATCH_S": "6",
    "RECOVERY_INTERVAL_S": "1",
    "SHUTDOWN_GRACE_S": "3",
    "LLM_BACKOFF_BASE_S": "0.1",
}


@pytest.fixture
def broker_url() -> str:
    try:
        with socket.create_connection(LOCAL_REDIS, timeout=2):
            pass
    except OSError as error:
        pytest.fail(f"Redis is not reachable at {LOCAL_REDIS}: {error}", pytrace=False)
    client = redis.Redis(*LOCAL_REDIS, db=REDIS_DB)
    client.flushdb()
    client.close()
    return f"redis://{LOCAL_REDIS[0]}:{LOCAL_REDIS[1]}/{REDIS_DB}"


@pytest.fixture
def make_stack(
    tmp_path: Path, pg_url: str, broker_url: str, stub: StubControl
) -> Iterator[Callable[..., Stack]]:
    stacks: list[Stack] = []

    def make(broker: str | None = None, **env: str) -> Stack:
        stack = Stack(
            log_dir=tmp_path,
            database_url=pg_url,
            broker_url=broker or broker_url,
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


@pytest.fixture
def stack(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack()
    stack.start_api()
    stack.start_worker()
    return stack
