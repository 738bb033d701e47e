"""Reusable pytest fixtures. Import the ones you need into a conftest:

from tests.support.fixtures import openai_stub, openai_stub_server, receiver  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.openai_stub import StubServer
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture(scope="session")
def openai_stub_server() -> Iterator[StubServer]:
    """One stub for the session, on its own event loop in a background thread."""
    with StubServer().running_in_thread() as server:
        yield server


@pytest.fixture
def openai_stub(openai_stub_server: StubServer) -> StubServer:
    """The session's stub with counters cleared and start-up settings restored.

    `openai_stub.url` is the base URL for the OpenAI client; `configure(...)` changes
    latency and faults for this test only.
    """
    openai_stub_server.reset()
    return openai_stub_server


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    """A real HTTP receiver of callbacks on 127.0.0.1 (tests/support/webhook_receiver.py)."""
    server = WebhookReceiver().start()
    try:
        yield server
    finally:
        server.stop()
