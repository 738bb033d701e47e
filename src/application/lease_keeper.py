"""Keeps a running job's lease alive while a step runs (the heartbeat)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

log = logging.getLogger(__name__)

# Returns False when the job is no longer ours (then the keeper stops).
Renew = Callable[[], Awaitable[bool]]


class LeaseKeeper:
    """Rules:
    - while the block runs, `renew` is called every `interval_s` (lease / 4), so a
      live worker's job never looks abandoned;
    - a renewal that fails (a database hiccup) is logged and tried at the next beat;
    - when `renew` says the job is no longer ours, the beats stop;
    - leaving the block stops the beats at once.
    Time passes through the injected `sleep`, so tests run beats without waiting.
    """

    def __init__(
        self, interval_s: float, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    ) -> None:
        self._interval_s = interval_s
        self._sleep = sleep

    @contextlib.asynccontextmanager
    async def kept(self, renew: Renew, log_extra: dict[str, str]) -> AsyncIterator[None]:
        task = asyncio.create_task(self._beat(renew, log_extra))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _beat(self, renew: Renew, log_extra: dict[str, str]) -> None:
        while True:
            await self._sleep(self._interval_s)
            try:
                if not await renew():
                    return
            except Exception:  # try again at the next beat
                log.warning("lease renewal failed", extra=log_extra)
