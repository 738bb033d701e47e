"""Shared fixtures for the fast unit tests: fakes we own, wired into use cases.

This directory has no `__init__.py`, so pytest puts it on `sys.path` and the
test modules import `fakes` directly.
"""

from __future__ import annotations

import pytest
from fakes import FakeClock, FakeUnitOfWorkFactory, RecordingDispatcher, SequentialIds

from application.use_cases.relay_outbox import RelayOutbox


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ids() -> SequentialIds:
    return SequentialIds()


@pytest.fixture
def uow() -> FakeUnitOfWorkFactory:
    return FakeUnitOfWorkFactory()


@pytest.fixture
def dispatcher() -> RecordingDispatcher:
    return RecordingDispatcher()


@pytest.fixture
def relay(
    uow: FakeUnitOfWorkFactory, dispatcher: RecordingDispatcher, clock: FakeClock
) -> RelayOutbox:
    return RelayOutbox(uow, dispatcher, clock)
