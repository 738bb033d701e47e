"""Failed authentications are limited per client address (RATE_LIMIT_AUTH_FAILURES_PER_MIN):
past the budget the address gets 429 with Retry-After, before any key is looked up."""

from __future__ import annotations

import dataclasses
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from dependency_injector import providers
from http_support import Client, assert_problem, bearer
from tests.support.served import clean_env, make_key, start_serving, stop

from adapters.persistence.api_keys import SqlApiKeyStore
from domain import ApiKey
from entrypoints.container import Container
from entrypoints.settings import Settings

LIMIT = 5


def bogus(n: int) -> dict[str, str]:
    """A well-formed key that matches nothing (each costs a lookup unless refused first)."""
    return bearer(f"gi_{n:016x}_{'s' * 43}")


class CountingKeyStore(SqlApiKeyStore):
    lookups = 0

    async def get(self, key_id: str) -> ApiKey | None:
        self.lookups += 1
        return await super().get(key_id)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, rate_limit_auth_failures_per_min=LIMIT)


@pytest.fixture
def key_store(container: Container) -> Iterator[CountingKeyStore]:
    store = CountingKeyStore(container.engine())
    container.api_key_store.override(providers.Object(store))
    try:
        yield store
    finally:
        container.api_key_store.reset_override()


@pytest.fixture
def app(settings: Settings, container: Container, key_store: CountingKeyStore) -> object:
    from entrypoints.asgi import create_app

    return create_app(settings, container)


async def test_past_the_budget_an_address_gets_429_and_costs_no_lookup(
    client: Client, alice: dict[str, str], key_store: CountingKeyStore
) -> None:
    answers = [await client.get("/jobs", headers=bogus(n)) for n in range(LIMIT)]
    assert [r.status_code for r in answers] == [401] * LIMIT
    lookups = key_store.lookups

    refused = [await client.get("/jobs", headers=bogus(100 + n)) for n in range(20)]
    for response in refused:
        problem = assert_problem(response, 429)
        assert "failed authentications" in problem["detail"]
        assert f"at most {LIMIT} a minute" in problem["detail"]
        assert 1 <= int(response.headers["retry-after"]) <= 60
    assert key_store.lookups == lookups  # refused before any key was looked up
    # The address is refused whatever it brings, a valid key or none, for the minute.
    assert_problem(await client.get("/jobs", headers=alice), 429)
    assert_problem(await client.post("/jobs", json={"input_text": "x"}), 429)
    # Health and docs need no key and are not refused.
    assert (await client.get("/health/live")).status_code == 200


async def test_requests_without_a_key_count_as_failures(client: Client) -> None:
    answers = [await client.get("/jobs") for _ in range(LIMIT + 1)]
    assert [r.status_code for r in answers] == [401] * LIMIT + [429]


async def test_good_keys_are_not_counted(client: Client, alice: dict[str, str]) -> None:
    answers = [await client.get("/jobs", headers=alice) for _ in range(LIMIT * 3)]
    assert {r.status_code for r in answers} == {200}
    assert (await client.get("/jobs", headers=bogus(1))).status_code == 401


class TestOff:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return dataclasses.replace(settings, rate_limit_auth_failures_per_min=None)

    async def test_with_the_limit_off_failures_stay_401(self, client: Client) -> None:
        answers = [await client.get("/jobs", headers=bogus(n)) for n in range(LIMIT * 3)]
        assert {r.status_code for r in answers} == {401}


def test_the_budget_is_per_client_address_behind_a_trusted_proxy(tmp_path: Path) -> None:
    """The real server behind a (pretend) trusted proxy: the address is X-Forwarded-For's,
    so one client's failures do not refuse another's requests."""
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        LLM_PROVIDER="offline",
        LOG_FORMAT="json",
        TRUSTED_PROXIES="127.0.0.1",
        RATE_LIMIT_AUTH_FAILURES_PER_MIN="3",
    )
    env.pop("CELERY_BROKER_URL", None)
    env.pop("AUTH_DISABLED", None)
    process: subprocess.Popen[bytes] | None = None
    try:
        process, base = start_serving(env, tmp_path / "server.log")
        key = make_key(env)
        with httpx.Client(base_url=base, timeout=10) as http:

            def get(client_ip: str, headers: dict[str, str]) -> int:
                forwarded = {"X-Forwarded-For": client_ip, **headers}
                return http.get("/jobs", headers=forwarded).status_code

            assert [get("203.0.113.7", bogus(n)) for n in range(4)] == [401, 401, 401, 429]
            assert get("203.0.113.7", bearer(key)) == 429
            assert get("203.0.113.8", bearer(key)) == 200
            assert get("203.0.113.8", bogus(9)) == 401
    finally:
        if process is not None:
            stop(process)
