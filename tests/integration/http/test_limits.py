"""Abuse limits through HTTP: per-key rates (429, Retry-After, RateLimit-*), the in-flight cap."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from http_support import DIALECTS, Client, assert_problem, in_app
from tests.support.fake_llm import FakeLLM

from adapters.ratelimit.memory import MemoryRateLimiter
from entrypoints.container import Container
from entrypoints.settings import Settings

# Every hostile body and every limit, on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("database", DIALECTS, indirect=True)

BODY = {"input_text": "Check the airway first."}
# The limiter's clock stands still halfway through a window, so no test's requests
# straddle the end of a one-minute window (the counts would start again).
MID_WINDOW_S = 30.0


@pytest.fixture
def container(container: Container) -> Iterator[Container]:
    container.rate_limiter.override(MemoryRateLimiter(clock=lambda: MID_WINDOW_S))
    try:
        yield container
    finally:
        container.rate_limiter.reset_override()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        rate_limit_submit_per_min=3,
        rate_limit_read_per_min=5,
        max_inflight_per_owner=None,
    )


async def test_submits_past_the_rate_get_429_with_headers(
    client: Client, alice: dict[str, str], bob: dict[str, str]
) -> None:
    answers = [await client.post("/jobs", json=BODY, headers=alice) for _ in range(4)]

    assert [r.status_code for r in answers] == [202, 202, 202, 429]
    assert [r.headers["ratelimit-remaining"] for r in answers] == ["2", "1", "0", "0"]
    assert all(r.headers["ratelimit-limit"] == "3" for r in answers)
    refused = answers[-1]
    problem = assert_problem(refused, 429)
    assert "3 a minute" in problem["detail"]
    assert int(refused.headers["retry-after"]) == 60 - MID_WINDOW_S
    assert int(refused.headers["ratelimit-reset"]) == 60 - MID_WINDOW_S
    # The limit is per key: bob is not held back by alice.
    assert (await client.post("/jobs", json=BODY, headers=bob)).status_code == 202


async def test_reads_have_their_own_budget(client: Client, alice: dict[str, str]) -> None:
    answers = [await client.get("/jobs", headers=alice) for _ in range(6)]

    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert "retry-after" in answers[-1].headers
    # Submits are counted apart from reads.
    assert (await client.post("/jobs", json=BODY, headers=alice)).status_code == 202


@pytest.mark.parametrize("path", ["/health/live", "/swagger", "/openapi.json"])
async def test_health_and_docs_are_not_limited(client: Client, path: str) -> None:
    answers = [await client.get(path) for _ in range(10)]  # twice the read budget
    assert {r.status_code for r in answers} == {200}
    assert "ratelimit-limit" not in answers[-1].headers


class TestInFlightCap:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(
            settings,
            rate_limit_submit_per_min=None,
            rate_limit_read_per_min=None,
            max_inflight_per_owner=2,
        )

    async def test_an_owner_at_the_cap_gets_429_until_a_job_finishes(
        self, client: Client, fake_llm: FakeLLM, alice: dict[str, str], bob: dict[str, str]
    ) -> None:
        in_app(client, fake_llm.hold, "summarize")
        first = await client.post("/jobs", json=BODY, headers=alice)
        await client.post("/jobs", json=BODY, headers=alice)

        refused = await client.post("/jobs", json=BODY, headers=alice)
        problem = assert_problem(refused, 429)
        assert "unfinished jobs" in problem["detail"]
        assert "retry-after" in refused.headers
        assert (await client.post("/jobs", json=BODY, headers=bob)).status_code == 202

        cancelled = await client.post(f"/jobs/{first.json()['event_id']}/cancel", headers=alice)
        assert cancelled.status_code == 200
        assert (await client.post("/jobs", json=BODY, headers=alice)).status_code == 202


async def test_a_retry_counts_against_the_submit_rate(
    client: Client, alice: dict[str, str], fake_llm: FakeLLM
) -> None:
    in_app(client, fake_llm.hold, "summarize")
    event_id = (await client.post("/jobs", json=BODY, headers=alice)).json()["event_id"]
    for _ in range(2):  # submits 2 and 3 of the 3 a minute
        assert (await client.post(f"/jobs/{event_id}/cancel", headers=alice)).status_code == 200
        assert (await client.post(f"/jobs/{event_id}/retry", headers=alice)).status_code == 202
    assert (await client.post(f"/jobs/{event_id}/cancel", headers=alice)).status_code == 200

    refused = await client.post(f"/jobs/{event_id}/retry", headers=alice)  # the 4th "submit"
    problem = assert_problem(refused, 429)
    assert "submit" in problem["detail"]
    assert refused.headers["ratelimit-remaining"] == "0"
