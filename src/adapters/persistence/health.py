"""Readiness probe for the database."""

from __future__ import annotations

import asyncio

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

READY_TIMEOUT_S = 3.0


async def database_ready(engine: AsyncEngine, timeout_s: float = READY_TIMEOUT_S) -> bool:
    """Whether the database answers `SELECT 1` within `timeout_s` seconds. Never raises."""
    try:
        async with asyncio.timeout(timeout_s), engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception:  # any failure means "not ready"; the probe must not crash
        return False
    return True
