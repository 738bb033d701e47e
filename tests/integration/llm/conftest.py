"""Fixtures of the LLM gateway tests: the OpenAI-compatible stub and real clients."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openai import AsyncOpenAI
from tests.support.fixtures import openai_stub, openai_stub_server  # noqa: F401
from tests.support.openai_stub import StubServer

from adapters.llm.openai_gateway import make_openai_client


@pytest.fixture
async def openai_client(openai_stub: StubServer) -> AsyncIterator[AsyncOpenAI]:  # noqa: F811
    """The real SDK client on the aiohttp transport, pointed at the stub."""
    client = make_openai_client("test-key", openai_stub.url, timeout_s=5.0, max_connections=300)
    yield client
    await client.close()
