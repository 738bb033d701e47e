"""Periodic chores (outbox catch-up, stuck-job recovery, retention purge) on an event loop."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)

CHORE_TIMEOUT_S = 60.0


async def every(interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `work` every `interval_s` until cancelled; a failed round is logged, not fatal."""
    # Jitter spreads the chores of several processes apart.
    await asyncio.sleep(random.uniform(0, interval_s))
    while True:
        try:
            # A round that hangs (a lost reply, a stuck lock) must not stop later rounds.
            async with asyncio.timeout(max(CHORE_TIMEOUT_S, interval_s)):
                await work()
        except Exception as exc:  # a chore never takes the process down; next round retries
            log.warning("periodic task failed", task=name, error=type(exc).__name__)
        await asyncio.sleep(interval_s)
