"""Fixed-window counters in Redis, shared by every API process (INCR + EXPIRE)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from application.ports import RateDecision

log = structlog.get_logger(__name__)


# Bounds the peek cache: past it, the cache starts again empty (a new window would anyway).
PEEK_CACHE_MAX = 10_000


class RedisRateLimiter:
    """Fails open: with Redis unreachable the request is allowed (and a warning logged),
    so a broker outage does not become an API outage.

    With `peek_cache_s`, what `peek` read of a counter is kept that long in this
    process (every request of the API peeks at its address's failed-authentication
    counter: one Redis round trip each, otherwise). A hit made here updates it at
    once; hits made by other processes show within `peek_cache_s`.
    """

    def __init__(
        self,
        url: str,
        prefix: str = "guideline:ratelimit",
        peek_cache_s: float = 0.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._prefix = prefix
        self._peek_cache_s = peek_cache_s
        self._monotonic = monotonic
        self._seen: dict[str, tuple[float, int]] = {}  # counter -> (kept until, hits)

    def _remember(self, name: str, hits: int) -> None:
        if self._peek_cache_s <= 0:
            return
        if len(self._seen) >= PEEK_CACHE_MAX:
            self._seen.clear()
        # Counts only grow within a window: a read that finished after a later hit
        # (racing requests) must not put an older, lower count back.
        kept = self._seen.get(name)
        self._seen[name] = (
            self._monotonic() + self._peek_cache_s,
            max(hits, kept[1]) if kept is not None else hits,
        )

    async def hit(self, key: str, limit: int, window_s: int) -> RateDecision:
        now = time.time()
        window = math.floor(now / window_s)
        reset = (window + 1) * window_s - now
        name = f"{self._prefix}:{key}:{window}"
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.incr(name)
                pipe.expire(name, window_s + 1)
                hits, _ = await pipe.execute()
        except (RedisError, OSError):
            log.warning("rate limiter unavailable; request allowed")
            return RateDecision(True, limit, limit, reset)
        if name in self._seen:  # a counter peeked at here: keep it current
            self._remember(name, int(hits))
        return RateDecision(int(hits) <= limit, limit, max(limit - int(hits), 0), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> RateDecision:
        """Whether one more hit would be allowed, without counting one (fails open too)."""
        now = time.time()
        window = math.floor(now / window_s)
        reset = (window + 1) * window_s - now
        name = f"{self._prefix}:{key}:{window}"
        kept = self._seen.get(name)
        if kept is not None and kept[0] > self._monotonic():
            hits = kept[1]
        else:
            try:
                hits = int(await self._redis.get(name) or 0)
            except (RedisError, OSError):
                log.warning("rate limiter unavailable; request allowed")
                return RateDecision(True, limit, limit, reset)
            self._remember(name, hits)
        return RateDecision(hits < limit, limit, max(limit - hits, 0), reset)

    async def aclose(self) -> None:
        await self._redis.aclose()
