"""Fixed-window counters in Redis, shared by every API process (INCR + EXPIRE)."""

from __future__ import annotations

import math
import time

import redis.asyncio as aioredis
import structlog
from redis.exceptions import RedisError

from application.ports import RateDecision

log = structlog.get_logger(__name__)


class RedisRateLimiter:
    """Fails open: with Redis unreachable the request is allowed (and a warning logged),
    so a broker outage does not become an API outage."""

    def __init__(self, url: str, prefix: str = "guideline:ratelimit") -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
        self._prefix = prefix

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
        return RateDecision(int(hits) <= limit, limit, max(limit - int(hits), 0), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> RateDecision:
        """Whether one more hit would be allowed, without counting one (fails open too)."""
        now = time.time()
        window = math.floor(now / window_s)
        reset = (window + 1) * window_s - now
        try:
            hits = int(await self._redis.get(f"{self._prefix}:{key}:{window}") or 0)
        except (RedisError, OSError):
            log.warning("rate limiter unavailable; request allowed")
            return RateDecision(True, limit, limit, reset)
        return RateDecision(hits < limit, limit, max(limit - hits, 0), reset)

    async def aclose(self) -> None:
        await self._redis.aclose()
