"""The Redis rate limiter on the local Redis: counts shared by every API process."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from adapters.ratelimit.redis import RedisRateLimiter

URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def prefix() -> AsyncIterator[str]:
    name = f"gi-test:{uuid.uuid4().hex}"
    yield name
    client = aioredis.Redis.from_url(URL)
    keys = [key async for key in client.scan_iter(f"{name}:*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


async def test_two_processes_share_the_counts_and_peek_counts_nothing(prefix: str) -> None:
    first, second = RedisRateLimiter(URL, prefix), RedisRateLimiter(URL, prefix)
    try:
        assert (await first.hit("k", 2, 60)).allowed
        for _ in range(3):
            peeked = await second.peek("k", 2, 60)
            assert (peeked.allowed, peeked.remaining) == (True, 1)
        assert (await second.hit("k", 2, 60)).allowed
        refused = await first.peek("k", 2, 60)
        assert (refused.allowed, refused.remaining) == (False, 0)
        assert 0 < refused.reset_s <= 60
        assert not (await first.hit("k", 2, 60)).allowed
        assert (await first.peek("other", 2, 60)).allowed
    finally:
        await first.aclose()
        await second.aclose()


async def test_an_unreachable_redis_fails_open() -> None:
    limiter = RedisRateLimiter("redis://127.0.0.1:1/0")
    try:
        assert (await limiter.peek("k", 1, 60)).allowed
        assert (await limiter.hit("k", 1, 60)).allowed
    finally:
        await limiter.aclose()


async def test_peeks_are_kept_for_the_cache_time_and_local_hits_update_them(prefix: str) -> None:
    now = [0.0]
    cached = RedisRateLimiter(URL, prefix, peek_cache_s=1.0, monotonic=lambda: now[0])
    other = RedisRateLimiter(URL, prefix)  # another API process
    try:
        assert (await cached.peek("k", 2, 60)).remaining == 2
        await other.hit("k", 2, 60)
        await other.hit("k", 2, 60)
        assert (await cached.peek("k", 2, 60)).allowed  # kept: the other's hits not seen yet
        now[0] = 1.5
        blocked = await cached.peek("k", 2, 60)  # read again: now past the budget
        assert (blocked.allowed, blocked.remaining) == (False, 0)
        assert (await cached.peek("j", 1, 60)).allowed
        await cached.hit("j", 1, 60)  # a hit here counts at once, within the cache time
        assert not (await cached.peek("j", 1, 60)).allowed
    finally:
        await cached.aclose()
        await other.aclose()


async def test_hits_keep_no_cache_of_their_own(prefix: str) -> None:
    """Only counters this process peeks at are kept: a rate-limit hit does not fill the
    cache, and a later peek at that counter reads Redis."""
    cached = RedisRateLimiter(URL, prefix, peek_cache_s=60.0)
    other = RedisRateLimiter(URL, prefix)
    try:
        await cached.hit("x", 2, 60)
        await other.hit("x", 2, 60)
        assert not (await cached.peek("x", 2, 60)).allowed  # both hits seen
    finally:
        await cached.aclose()
        await other.aclose()
