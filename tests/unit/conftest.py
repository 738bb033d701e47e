"""Shared fixtures for the unit tests: fakes we own, wired into use cases.

`uow` is the storage the use cases run on, in turn: `memory` (the fakes, no I/O)
and `postgresql` (the production SQL unit of work on the local PostgreSQL, marked
`postgres`; `make unit` leaves those out, `make test` runs both). The same test
runs on both, so every difference between the fake and SQL fails a test.

This directory has no `__init__.py`, so pytest puts it on `sys.path` and the
test modules import `fakes` directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from builders import Storage
from fakes import FakeClock, FakeUnitOfWorkFactory, RecordingDispatcher, SequentialIds
from postgres_backend import PostgresUnitOfWorkFactory, empty_database, unit_database_url

from application.use_cases.relay_outbox import RelayOutbox

__all__ = ["unit_database_url"]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()


@pytest.fixture(
    params=[pytest.param("memory"), pytest.param("postgresql", marks=pytest.mark.postgres)]
)
async def uow(request: pytest.FixtureRequest) -> AsyncIterator[Storage]:
    if request.param == "memory":
        yield FakeUnitOfWorkFactory()
        return
    engine = await empty_database(request.getfixturevalue("unit_database_url"))
    try:
        yield PostgresUnitOfWorkFactory(engine)
    finally:
        await engine.dispose()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def relay(uow: Storage, dispatcher: RecordingDispatcher, clock: FakeClock) -> RelayOutbox:
    return RelayOutbox(uow, dispatcher, clock)
