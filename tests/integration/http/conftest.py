"""Fixtures for the HTTP API tests: the real app on a SQLite file, with a fake LLM.

The app, its lifespan (migrations, the in-process dispatcher) and every request
run on the test client's own event loop, in a background thread (Litestar's
`AsyncTestClient` uses an anyio blocking portal). Anything that touches the
app's engine or the fake LLM's gates therefore runs on that loop too:
`in_app(client, fn, *args)` does it.

- `settings`   a SQLite file in tmp_path, short grace.
- `fake_llm`   the `FakeLLM` that the container's `llm` provider is overridden with.
- `container`  `build_container(settings)` with that override, and `process_job`
               overridden with a `CountedRuns` wrapper of the real one (`runs`), so a
               test can wait until no job runs (both reset afterwards).
- `app`        `create_app(settings, container)`.
- `client`     `AsyncTestClient(app)`, lifespan running.
- `alice_key`, `bob_key`   API keys (tokens) of two owners; `alice`, `bob`: their headers.
Helpers (`wait_for`, `assert_problem`, `in_app`, ...) live in http_support.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from dependency_injector import providers
from http_support import Client, CountedRuns, bearer, in_app
from litestar import Litestar
from litestar.testing import AsyncTestClient
from tests.support.fake_llm import FakeLLM

from entrypoints.asgi import create_app
from entrypoints.container import Container, build_container
from entrypoints.settings import Settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        database_url=f"sqlite:///{tmp_path}/t.sqlite3",
        llm_provider="offline",
        log_format="json",
        log_level="WARNING",
        worker_concurrency=8,
        shutdown_grace_s=1.0,
        llm_backoff_base_s=0.01,
    )


@pytest.fixture
def fake_llm() -> FakeLLM:
    return FakeLLM()


@pytest.fixture
def container(settings: Settings, fake_llm: FakeLLM) -> Iterator[Container]:
    container = build_container(settings)
    container.llm.override(fake_llm)
    container.process_job.override(providers.Object(CountedRuns(container.process_job())))
    try:
        yield container
    finally:
        container.process_job.reset_override()
        container.llm.reset_override()


@pytest.fixture
def runs(container: Container) -> CountedRuns:
    counted = container.process_job()
    assert isinstance(counted, CountedRuns)
    return counted


@pytest.fixture
def app(settings: Settings, container: Container) -> Litestar:
    return create_app(settings, container)


@pytest.fixture
async def client(app: Litestar, fake_llm: FakeLLM) -> AsyncIterator[Client]:
    async with AsyncTestClient(app=app) as client:
        try:
            yield client
        finally:
            # Never leave a job held at a gate: the lifespan's shutdown would wait for it.
            for step in ("summarize", "checklist"):
                in_app(client, fake_llm.release, step)


@pytest.fixture
def make_key(client: Client, container: Container) -> Callable[[str], str]:
    """Makes an API key for an owner (after the lifespan migrated the database)."""

    def make(owner: str) -> str:
        issued = in_app(client, container.create_api_key().execute, owner)
        return issued.token

    return make


@pytest.fixture
def alice_key(make_key: Callable[[str], str]) -> str:
    return make_key("alice")


@pytest.fixture
def bob_key(make_key: Callable[[str], str]) -> str:
    return make_key("bob")


@pytest.fixture
def alice(alice_key: str) -> dict[str, str]:
    return bearer(alice_key)


@pytest.fixture
def bob(bob_key: str) -> dict[str, str]:
    return bearer(bob_key)
