"""Fixed-window counters in this process's memory (embedded mode: one API process)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from application.ports import RateDecision


class MemoryRateLimiter:
    def __init__(
        self, clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000
    ) -> None:
        self._clock = clock
        self._max_keys = max_keys
        self._windows: dict[str, tuple[int, int]] = {}  # key -> (window number, hits)

    async def hit(self, key: str, limit: int, window_s: int) -> RateDecision:
        now = self._clock()
        window = math.floor(now / window_s)
        current, hits = self._windows.get(key, (window, 0))
        if current != window:
            hits = 0
        if len(self._windows) >= self._max_keys and key not in self._windows:
            self._windows.clear()  # bounded memory; forgetting counts only loosens limits
        hits += 1
        self._windows[key] = (window, hits)
        reset = (window + 1) * window_s - now
        return RateDecision(hits <= limit, limit, max(limit - hits, 0), reset)

    async def peek(self, key: str, limit: int, window_s: int) -> RateDecision:
        """Whether one more hit would be allowed, without counting one."""
        now = self._clock()
        window = math.floor(now / window_s)
        current, hits = self._windows.get(key, (window, 0))
        hits = hits if current == window else 0
        reset = (window + 1) * window_s - now
        return RateDecision(hits < limit, limit, max(limit - hits, 0), reset)
