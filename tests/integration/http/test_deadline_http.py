"""REQUEST_TIMEOUT_S through the real app: a request stuck past it answers 503."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dependency_injector import providers
from http_support import Client, assert_problem

from application.use_cases.get_job import GetJob
from entrypoints.container import Container
from entrypoints.settings import Settings


class StuckGetJob(GetJob):
    """A `GetJob` whose storage never answers."""

    async def execute(self, *args: Any, **kwargs: Any) -> Any:
        await asyncio.Event().wait()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, request_timeout_s=0.5)


@pytest.fixture
def container(container: Container) -> Iterator[Container]:
    """The shared container with `get_job` stuck (before the app takes its use cases)."""
    container.get_job.override(providers.Object(StuckGetJob(container.uow_factory())))
    try:
        yield container
    finally:
        container.get_job.reset_override()


async def test_a_stuck_read_answers_503_at_the_deadline(
    client: Client, alice: dict[str, str]
) -> None:
    started = time.monotonic()
    response = await client.get(
        "/jobs/00000000-0000-4000-8000-000000000000",
        headers={**alice, "X-Request-ID": "deadline-1"},
    )
    elapsed = time.monotonic() - started

    problem = assert_problem(response, 503)
    assert "in time" in problem["detail"]
    assert response.headers["retry-after"] == "5"
    assert response.headers["x-request-id"] == "deadline-1"
    assert 0.5 <= elapsed < 3.0, elapsed
    # Everything else still answers at once.
    assert (await client.get("/jobs", headers=alice)).status_code == 200
    assert (await client.get("/health/live")).status_code == 200
