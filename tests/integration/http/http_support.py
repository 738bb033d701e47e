"""Helpers of the HTTP API tests (imported by conftest.py and the test modules)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from uuid import UUID

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient

from application.use_cases.process_job import Outcome, ProcessJob

T = TypeVar("T")
Client = AsyncTestClient[Litestar]
PROBLEM_JSON = "application/problem+json"
TERMINAL = frozenset({"completed", "failed", "cancelled"})


def in_app(client: Client, fn: Callable[..., Awaitable[T] | T], *args: Any) -> T:
    """Run `fn(*args)` (a coroutine function or a plain one) on the app's event loop."""
    return client.blocking_portal.call(fn, *args)  # type: ignore[arg-type]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def wait_for(
    client: Client,
    event_id: str,
    headers: dict[str, str],
    predicate: Callable[[dict[str, Any]], bool],
    timeout: float = 5.0,
) -> dict[str, Any]:
    """Polls GET /jobs/{event_id} until `predicate(job)`; fails with the last job seen."""
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while True:
        response = await client.get(f"/jobs/{event_id}", headers=headers)
        assert response.status_code == 200, response.text
        job = response.json()
        if predicate(job):
            return job
        if time.monotonic() > deadline:
            pytest.fail(f"job {event_id} never matched within {timeout}s; last seen: {job}")
        await asyncio.sleep(0.02)


def is_terminal(job: dict[str, Any]) -> bool:
    return job["status"] in TERMINAL


def assert_problem(response: Any, status: int) -> dict[str, Any]:
    """An RFC 9457 problem with this status."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body = response.json()
    assert isinstance(body, dict), body
    for name in ("type", "title", "status", "detail"):
        assert name in body, (name, body)
    assert body["status"] == status
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    assert isinstance(body["type"], str)
    assert body["type"]
    return body


class CountedRuns:
    """`ProcessJob` as the dispatcher sees it, counting the runs in progress."""

    def __init__(self, inner: ProcessJob) -> None:
        self._inner = inner
        self.running = 0

    async def execute(self, event_id: UUID) -> Outcome:
        self.running += 1
        try:
            return await self._inner.execute(event_id)
        finally:
            self.running -= 1
