"""Readiness of the broker: does Redis answer a PING within about two seconds?"""

from __future__ import annotations

import asyncio
import contextlib

from redis.asyncio import Redis

PING_TIMEOUT_S = 2.0


async def broker_ready(url: str) -> bool:
    """Whether the Redis broker at `url` answers a PING. Never raises."""
    try:
        client = Redis.from_url(
            url, socket_connect_timeout=PING_TIMEOUT_S, socket_timeout=PING_TIMEOUT_S
        )
    except Exception:  # a URL redis-py cannot use: not ready
        return False
    try:
        async with asyncio.timeout(PING_TIMEOUT_S + 0.5):
            return bool(await client.ping())
    except Exception:  # down, refused, timed out, bad password: not ready
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()
