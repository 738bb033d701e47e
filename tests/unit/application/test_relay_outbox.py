"""RelayOutbox: unsent rows are dispatched and marked sent; a broker outage keeps them."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import Storage, a_job, eventually, seed
from fakes import FakeClock, RecordingDispatcher

from application.use_cases.relay_outbox import CATCH_UP_MIN_AGE_S, RelayOutbox

A, B, C = UUID(int=1), UUID(int=2), UUID(int=3)


@pytest.fixture
async def rows(uow: Storage, clock: FakeClock) -> None:
    """Outbox rows of jobs A, B, C, written in that order; B's is sent already."""
    await seed(uow, *(a_job(event_id=e, now=clock.now()) for e in (A, B, C)))
    async with uow() as tx:
        for event_id in (A, B, C):
            await tx.outbox.add(event_id, clock.now())
        await tx.outbox.mark_sent([B], clock.now())
        await tx.commit()


@pytest.mark.usefixtures("rows")
async def test_publishes_unsent_rows_and_marks_them(
    relay: RelayOutbox,
    uow: Storage,
    dispatcher: RecordingDispatcher,
) -> None:
    sent = await relay.execute()

    assert sent == 2
    assert dispatcher.dispatched == [A, C]
    assert await uow.outbox_rows() == [(A, True), (B, True), (C, True)]
    assert await relay.backlog() == 0


async def test_nothing_to_send(relay: RelayOutbox, dispatcher: RecordingDispatcher) -> None:
    assert await relay.execute() == 0
    assert dispatcher.dispatched == []


@pytest.mark.usefixtures("rows")
async def test_limit(
    relay: RelayOutbox,
    uow: Storage,
    dispatcher: RecordingDispatcher,
) -> None:
    assert await relay.execute(limit=1) == 1
    assert dispatcher.dispatched == [A]
    assert await relay.backlog() == 1
    assert await relay.execute(limit=1) == 1
    assert dispatcher.dispatched == [A, C]


@pytest.mark.usefixtures("rows")
async def test_a_broken_dispatcher_leaves_the_rows(
    relay: RelayOutbox,
    uow: Storage,
    dispatcher: RecordingDispatcher,
) -> None:
    dispatcher.broken = True

    with pytest.raises(OSError, match="broker down"):
        await relay.execute()

    assert await uow.outbox_rows() == [(A, False), (B, True), (C, False)]
    assert await relay.backlog() == 2
    dispatcher.broken = False
    assert await relay.execute() == 2  # the next run catches up
    assert await relay.backlog() == 0


@pytest.mark.usefixtures("rows")
async def test_publish_now_never_raises_and_leaves_rows_on_failure(
    relay: RelayOutbox,
    uow: Storage,
    dispatcher: RecordingDispatcher,
) -> None:
    dispatcher.broken = True
    await relay.publish_now([A])
    assert (await uow.outbox_rows())[0] == (A, False)

    dispatcher.broken = False
    await relay.publish_now([A])
    await relay.flush()
    assert await uow.outbox_rows() == [(A, True), (B, True), (C, False)]
    assert dispatcher.dispatched == [A]


@pytest.mark.usefixtures("rows")
async def test_rows_published_together_are_marked_sent_in_one_transaction(
    relay: RelayOutbox, uow: Storage
) -> None:
    commits = uow.commits
    for event_id in (A, C):
        await relay.publish_now([event_id])
    assert uow.commits == commits  # nothing written on the request path

    async def all_sent() -> bool:  # the batch is marked a moment later
        return await uow.outbox_rows() == [(A, True), (B, True), (C, True)]

    await eventually(all_sent)
    assert uow.commits == commits + 1


@pytest.mark.usefixtures("rows")
async def test_the_catch_up_leaves_rows_the_fast_path_is_publishing(
    relay: RelayOutbox, uow: Storage, dispatcher: RecordingDispatcher, clock: FakeClock
) -> None:
    clock.advance(CATCH_UP_MIN_AGE_S - 1)  # A and C were written 4 s ago: still fresh

    assert await relay.catch_up() == 0
    assert dispatcher.dispatched == []

    clock.advance(2)  # now they are strays
    assert await relay.catch_up() == 2
    assert dispatcher.dispatched == [A, C]


@pytest.mark.usefixtures("rows")
async def test_marking_sent_marks_only_the_rows_taken(uow: Storage, clock: FakeClock) -> None:
    async with uow() as relay_tx:
        taken = await relay_tx.outbox.take_unsent(10)
        async with uow() as retry_tx:  # a retry writes a second row for A meanwhile
            await retry_tx.outbox.add(A, clock.now())
            await retry_tx.commit()
        await relay_tx.outbox.mark_sent(taken, clock.now())
        await relay_tx.commit()

    assert taken == [A, C]
    assert await uow.outbox_rows() == [(A, True), (B, True), (C, True), (A, False)]
