"""Pooled PostgreSQL connections are checked before use, without a round trip.

The engine has no `pool_pre_ping` (a SELECT per unit of work): a connection the
server closed while it sat in the pool is found at checkout and replaced, so the
unit of work that takes it does not fail.
"""

from __future__ import annotations

import asyncio

import psycopg
import pytest
import sqlalchemy

from adapters.persistence import make_engine

pytestmark = pytest.mark.postgres


async def _backend_pid(engine: sqlalchemy.ext.asyncio.AsyncEngine) -> int:
    async with engine.connect() as connection:
        return int(
            (await connection.execute(sqlalchemy.text("SELECT pg_backend_pid()"))).scalar_one()
        )


async def test_a_connection_the_server_closed_is_replaced_at_checkout(pg_url: str) -> None:
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # the pool hands back the same one
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (first,))
        await asyncio.sleep(0.2)  # the server's goodbye reaches the idle socket
        # Taken from the pool: found closed, replaced, and the statement runs.
        assert await _backend_pid(engine) != first
    finally:
        await engine.dispose()


async def test_a_checkout_sends_no_ping(pg_url: str) -> None:
    """No `pool_pre_ping` (its SELECT is sent below the statement events, so the
    pool's setting is what shows it); the socket check above is what runs instead."""
    engine = make_engine(pg_url, pool_size=1, max_overflow=0)
    try:
        assert engine.sync_engine.pool._pre_ping is False
        first = await _backend_pid(engine)
        assert await _backend_pid(engine) == first  # a healthy connection is kept
    finally:
        await engine.dispose()
