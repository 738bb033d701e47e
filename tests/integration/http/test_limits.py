"""Abuse limits through HTTP: per-key rates (429, Retry-After, RateLimit-*), the in-flight cap."""

from __future__ import annotations

import dataclasses

import pytest
from http_support import Client, assert_problem, in_app
from tests.support.fake_llm import FakeLLM

from entrypoints.settings import Settings

BODY = {"input_text": "Check the airway first."}


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
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert 0 <= int(refused.headers["ratelimit-reset"]) <= 60
    # The limit is per key: bob is not held back by alice.
    assert (await client.post("/jobs", json=BODY, headers=bob)).status_code == 202


async def test_reads_have_their_own_budget(client: Client, alice: dict[str, str]) -> None:
    answers = [await client.get("/jobs", headers=alice) for _ in range(6)]

    assert [r.status_code for r in answers] == [200] * 5 + [429]
    assert "retry-after" in answers[-1].headers
    # Submits are counted apart from reads.
    assert (await client.post("/jobs", json=BODY, headers=alice)).status_code == 202


async def test_health_and_docs_are_not_limited(client: Client) -> None:
    answers = [await client.get("/health/live") for _ in range(10)]
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
