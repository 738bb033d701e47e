"""Readiness probe for the database, which never waits on a stuck connection."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

READY_TIMEOUT_S = 2.0


class DatabaseProbe:
    """Whether the database answers `SELECT 1` within `timeout_s`. Never raises.

    A frozen server (it accepts connections and never answers) would hold the
    `SELECT 1` until it answers again, and cancelling psycopg mid-query waits
    up to ~10 s more for the server to acknowledge the cancel. So the query
    runs in its own task: a caller waits for it at most `timeout_s`, then
    answers "not ready" and cancels it without waiting for the cancel to end.
    One probe runs at a time: callers meanwhile share it, and while a cancelled
    probe is still winding down every caller is told "not ready" at once, so a
    stuck server costs one connection however often readiness is asked.
    """

    def __init__(self, engine: AsyncEngine, timeout_s: float = READY_TIMEOUT_S) -> None:
        self._engine = engine
        self._timeout_s = timeout_s
        self._running: asyncio.Task[bool] | None = None

    async def __call__(self) -> bool:
        probe = self._running
        if probe is not None and not probe.done() and probe.cancelling():
            return False
        if probe is None or probe.done():
            probe = self._running = asyncio.create_task(self._select_one())
        done, _ = await asyncio.wait({probe}, timeout=self._timeout_s)
        if not done:
            probe.cancel()
            return False
        return not probe.cancelled() and probe.result()

    async def _select_one(self) -> bool:
        try:
            async with self._engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
        except Exception:  # any failure means "not ready"; the probe must not crash
            return False
        return True


async def database_ready(engine: AsyncEngine, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """One `DatabaseProbe` round on `engine` (see there). Never raises."""
    return await DatabaseProbe(engine, timeout_s)()
