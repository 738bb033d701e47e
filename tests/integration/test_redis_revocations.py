"""The Redis revocation feed on real Redis servers: the local one, and private ones this
test may stop, restart or pause (a subscription must come back by itself)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable

import pytest
import redis.asyncio as aioredis
from tests.integration.celery.celery_stack import PrivateRedis

from adapters.notify.redis_revocations import CHANNEL, RedisRevocationFeed
from application.ports import Revocation
from domain import JobStatus

URL = "redis://127.0.0.1:6379/0"
FAST = {"ping_s": 0.2, "reconnect_min_s": 0.05, "reconnect_max_s": 0.3}


@pytest.fixture
async def feeds() -> AsyncIterator[Callable[..., RedisRevocationFeed]]:
    made: list[RedisRevocationFeed] = []

    def make(url: str = URL, **options: float) -> RedisRevocationFeed:
        feed = RedisRevocationFeed(url, **options)
        made.append(feed)
        return feed

    yield make
    for feed in made:
        await feed.aclose()


async def until(check: Callable[[], bool], timeout_s: float, what: str) -> float:
    """Seconds until `check()` holds (fails the test after `timeout_s`)."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"{what}: not within {timeout_s}s"
        await asyncio.sleep(0.005)
    return time.monotonic() - started


async def test_a_notice_from_another_process_reaches_the_watchers_of_its_job_only(
    feeds: Callable[..., RedisRevocationFeed],
) -> None:
    api, worker = feeds(), feeds()
    mine, other = uuid.uuid4(), uuid.uuid4()
    heard: list[Revocation] = []
    heard_other: list[Revocation] = []
    with worker.watch(mine, heard.append), worker.watch(other, heard_other.append):
        await asyncio.wait_for(worker.subscribed.wait(), 5)
        notice = Revocation(mine, 2, JobStatus.CANCELLED)
        api.publish([notice])

        latency = await until(lambda: bool(heard), 2, "the notice arriving")
        await asyncio.sleep(0.05)
    assert heard == [notice]
    assert heard_other == []
    assert latency < 1.0
    assert worker.watching == 0


async def test_a_malformed_message_on_the_channel_is_ignored(
    feeds: Callable[..., RedisRevocationFeed],
) -> None:
    worker = feeds()
    event_id = uuid.uuid4()
    heard: list[Revocation] = []
    raw = aioredis.Redis.from_url(URL)
    try:
        with worker.watch(event_id, heard.append):
            await asyncio.wait_for(worker.subscribed.wait(), 5)
            for junk in (b"not json", b'["x", 1, "cancelled"]', f'["{event_id}", 1, "?"]'):
                await raw.publish(CHANNEL, junk)
            feeds().publish([Revocation(event_id, 1, JobStatus.PENDING)])
            await until(lambda: bool(heard), 2, "the good notice arriving")
    finally:
        await raw.aclose()
    assert heard == [Revocation(event_id, 1, JobStatus.PENDING)]


async def test_with_redis_unreachable_nothing_waits_and_nothing_fails(
    feeds: Callable[..., RedisRevocationFeed],
) -> None:
    feed = feeds("redis://127.0.0.1:1/0", **FAST)
    started = time.monotonic()
    with feed.watch(uuid.uuid4(), lambda _: None):
        entered = time.monotonic() - started
        feed.publish([Revocation(uuid.uuid4(), 1, JobStatus.CANCELLED)])  # logged, not raised
        await asyncio.sleep(0.5)
        assert not feed.subscribed.is_set()
    assert entered < 0.01


async def test_the_subscription_comes_back_after_redis_restarts(
    feeds: Callable[..., RedisRevocationFeed], private_redis: PrivateRedis
) -> None:
    worker, api = feeds(private_redis.url, **FAST), feeds(private_redis.url)
    event_id = uuid.uuid4()
    heard: list[Revocation] = []
    with worker.watch(event_id, heard.append):
        await asyncio.wait_for(worker.subscribed.wait(), 5)

        private_redis.stop()
        await until(lambda: not worker.subscribed.is_set(), 5, "the loss noticed")
        api.publish([Revocation(event_id, 1, JobStatus.CANCELLED)])  # lost with Redis
        await asyncio.sleep(0.3)
        private_redis.start()
        await asyncio.wait_for(worker.subscribed.wait(), 5)

        api.publish([Revocation(event_id, 2, JobStatus.PENDING)])
        await until(lambda: bool(heard), 2, "a notice after the restart")
    assert heard == [Revocation(event_id, 2, JobStatus.PENDING)]


async def test_a_connection_that_stops_answering_is_replaced(
    feeds: Callable[..., RedisRevocationFeed], private_redis: PrivateRedis
) -> None:
    """No read timeout on the subscription: a ping after `ping_s` of silence, unanswered
    for another `ping_s`, shows the connection dead (here: a paused server)."""
    worker = feeds(private_redis.url, **FAST)
    with worker.watch(uuid.uuid4(), lambda _: None):
        await asyncio.wait_for(worker.subscribed.wait(), 5)
        admin = aioredis.Redis.from_url(private_redis.url)
        try:
            await admin.execute_command("CLIENT", "PAUSE", "1500", "ALL")
            await until(lambda: not worker.subscribed.is_set(), 1.4, "the silence noticed")
            await asyncio.wait_for(worker.subscribed.wait(), 5)  # once the pause ends
        finally:
            await admin.aclose()
