"""RelayOutbox: unsent rows are dispatched and marked sent; a broker outage keeps them."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from fakes import FakeUnitOfWorkFactory, RecordingDispatcher

from application.use_cases.relay_outbox import RelayOutbox

A, B, C = UUID(int=1), UUID(int=2), UUID(int=3)


@pytest.fixture
def rows(uow: FakeUnitOfWorkFactory) -> list[tuple[UUID, bool]]:
    uow.store.outbox[:] = [(A, False), (B, True), (C, False)]
    return uow.store.outbox


async def test_publishes_unsent_rows_and_marks_them(
    relay: RelayOutbox,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    rows: list[tuple[UUID, bool]],
) -> None:
    sent = await relay.execute()

    assert sent == 2
    assert dispatcher.dispatched == [A, C]
    assert uow.store.outbox == [(A, True), (B, True), (C, True)]
    assert await relay.backlog() == 0


async def test_nothing_to_send(relay: RelayOutbox, dispatcher: RecordingDispatcher) -> None:
    assert await relay.execute() == 0
    assert dispatcher.dispatched == []


async def test_limit(
    relay: RelayOutbox,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    rows: list[tuple[UUID, bool]],
) -> None:
    assert await relay.execute(limit=1) == 1
    assert dispatcher.dispatched == [A]
    assert await relay.backlog() == 1
    assert await relay.execute(limit=1) == 1
    assert dispatcher.dispatched == [A, C]


async def test_a_broken_dispatcher_leaves_the_rows(
    relay: RelayOutbox,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    rows: list[tuple[UUID, bool]],
) -> None:
    dispatcher.broken = True

    with pytest.raises(OSError, match="broker down"):
        await relay.execute()

    assert uow.store.outbox == [(A, False), (B, True), (C, False)]
    assert await relay.backlog() == 2
    dispatcher.broken = False
    assert await relay.execute() == 2  # the next run catches up
    assert await relay.backlog() == 0


async def test_publish_now_never_raises_and_leaves_rows_on_failure(
    relay: RelayOutbox,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    rows: list[tuple[UUID, bool]],
) -> None:
    dispatcher.broken = True
    await relay.publish_now([A])
    assert uow.store.outbox[0] == (A, False)

    dispatcher.broken = False
    await relay.publish_now([A])
    await relay.flush()
    assert uow.store.outbox == [(A, True), (B, True), (C, False)]
    assert dispatcher.dispatched == [A]


async def test_rows_published_together_are_marked_sent_in_one_transaction(
    relay: RelayOutbox, uow: FakeUnitOfWorkFactory, rows: list[tuple[UUID, bool]]
) -> None:
    commits = uow.store.commits
    for event_id in (A, C):
        await relay.publish_now([event_id])
    assert uow.store.commits == commits  # nothing written on the request path

    await asyncio.sleep(0.2)  # the batch is marked a moment later

    assert uow.store.commits == commits + 1
    assert uow.store.outbox == [(A, True), (B, True), (C, True)]
