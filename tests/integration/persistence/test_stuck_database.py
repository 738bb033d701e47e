"""A database that does not answer: session time limits, TCP settings, the readiness probe.

The whole freeze (every PostgreSQL process stopped) is drilled in
tests/integration/faults/test_db_freeze.py; these are the parts, one by one.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence import make_engine, sql_unit_of_work_factory, upgrade
from adapters.persistence.errors import storage_errors
from adapters.persistence.health import DatabaseProbe
from application.errors import StorageUnavailable
from domain import Job

pytestmark = pytest.mark.postgres

T0 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


@pytest.fixture
async def limited_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    upgrade(pg_url)
    engine = make_engine(pg_url, pool_size=4, statement_timeout_s=1.5, lock_timeout_s=0.5)
    yield engine
    await engine.dispose()


async def test_sessions_carry_the_time_limits_and_tcp_settings(
    limited_engine: AsyncEngine,
) -> None:
    async with limited_engine.connect() as conn:
        assert await conn.scalar(text("SHOW statement_timeout")) == "1500ms"
        assert await conn.scalar(text("SHOW lock_timeout")) == "500ms"
        raw = await conn.get_raw_connection()
        params = raw.driver_connection.info.get_parameters()  # type: ignore[union-attr]
    assert params["tcp_user_timeout"] == "10000"
    assert params["keepalives"] == "1"
    assert params["keepalives_idle"] == "10"


async def test_options_given_in_the_url_are_kept(pg_url: str) -> None:
    engine = make_engine(f"{pg_url}?options=-c%20search_path%3Dpublic%2Cpg_catalog")
    try:
        async with engine.connect() as conn:
            assert await conn.scalar(text("SHOW search_path")) == "public,pg_catalog"
            assert await conn.scalar(text("SHOW statement_timeout")) == "30s"
    finally:
        await engine.dispose()


async def test_a_write_stuck_on_a_lock_ends_as_storage_unavailable(
    limited_engine: AsyncEngine,
) -> None:
    """Another transaction holds the job's row lock and never lets go: the save gives up
    after `lock_timeout` instead of waiting with it."""
    uow = sql_unit_of_work_factory(limited_engine)
    job = Job.submit(event_id=uuid.uuid4(), owner="a", input_text="x", now=T0)
    async with uow() as tx:
        await tx.jobs.add(job)
        await tx.commit()
    async with limited_engine.connect() as holder:
        await holder.execute(
            text("SELECT 1 FROM jobs WHERE event_id = :id FOR UPDATE"), {"id": job.event_id}
        )
        started = time.monotonic()
        async with uow() as tx:
            mine = await tx.jobs.get(job.event_id)
            assert mine is not None
            mine.cancel(T0)
            with pytest.raises(StorageUnavailable):
                await tx.jobs.save(mine)
        elapsed = time.monotonic() - started
        await holder.rollback()
    assert 0.4 <= elapsed < 1.4, elapsed  # the lock timeout, not the statement timeout


async def test_a_runaway_statement_ends_as_storage_unavailable(
    limited_engine: AsyncEngine,
) -> None:
    async with limited_engine.connect() as conn:
        started = time.monotonic()
        with pytest.raises(StorageUnavailable), storage_errors():
            await conn.execute(text("SELECT pg_sleep(10)"))
    assert 1.4 <= time.monotonic() - started < 4


class SilentServer:
    """Accepts TCP connections and never answers, like a frozen PostgreSQL."""

    def __init__(self) -> None:
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    try:
        yield server
    finally:
        server.close()


async def test_the_probe_answers_not_ready_in_time_and_opens_one_connection(
    silent_server: SilentServer,
) -> None:
    """Twenty readiness calls, ten at a time, against a server that never answers: each
    is told "not ready" within the probe's timeout, and only one connection is tried at a
    time (not one per call)."""
    engine = make_engine(f"postgresql://postgres@127.0.0.1:{silent_server.port}/db")
    probe = DatabaseProbe(engine, timeout_s=0.5)
    try:
        for _ in range(2):
            started = time.monotonic()
            answers = await asyncio.gather(*(probe() for _ in range(10)))
            assert answers == [False] * 10
            assert time.monotonic() - started < 2.0
        assert 1 <= len(silent_server.accepted) <= 2
    finally:
        await engine.dispose()
