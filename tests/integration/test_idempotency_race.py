"""Idempotent submits under a race, on PostgreSQL: 20 concurrent POSTs with one key make one job."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from adapters.persistence import upgrade
from entrypoints.asgi import create_app
from entrypoints.container import build_container
from entrypoints.settings import Settings


@pytest.fixture
async def client_and_key(pg_url: str) -> AsyncIterator[tuple[AsyncTestClient[Any], str]]:
    upgrade(pg_url)
    settings = Settings(
        database_url=pg_url, llm_provider="offline", db_pool_size=25, log_format="json"
    )
    container = build_container(settings)
    async with AsyncTestClient(create_app(settings, container)) as client:
        issued = await container.create_api_key().execute("alice")
        yield client, issued.token


async def test_twenty_racing_posts_with_one_key_make_one_job(
    client_and_key: tuple[AsyncTestClient[Any], str],
) -> None:
    client, key = client_and_key
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "race-1"}
    body = {
        "input_text": "Give oxygen when saturation is below 92 percent.",
        "metadata": {"a": "1"},
    }

    responses = await asyncio.gather(
        *(client.post("/jobs", json=body, headers=headers) for _ in range(20))
    )

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 1, 200: 19}, [r.text for r in responses if r.status_code >= 300]
    assert len({r.json()["event_id"] for r in responses}) == 1
    assert len({r.headers["location"] for r in responses}) == 1
    listed = (await client.get("/jobs", headers={"Authorization": f"Bearer {key}"})).json()
    assert len(listed["items"]) == 1


async def test_a_racing_post_with_another_body_is_refused(
    client_and_key: tuple[AsyncTestClient[Any], str],
) -> None:
    client, key = client_and_key
    headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": "race-2"}

    responses = await asyncio.gather(
        *(
            client.post("/jobs", json={"input_text": f"Text number {i % 2}."}, headers=headers)
            for i in range(10)
        )
    )

    created = [r for r in responses if r.status_code == 202]
    assert len(created) == 1
    winner_text = created[0].json()["input_text"]
    for response in responses:
        if response.status_code == 422:
            assert response.headers["content-type"].startswith("application/problem+json")
        else:
            assert response.json()["input_text"] == winner_text
    assert Counter(r.status_code for r in responses)[422] == 5
