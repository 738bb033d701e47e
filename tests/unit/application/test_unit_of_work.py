"""The unit of work's rules that use cases rely on, on every storage backend: the fake
must fail here wherever it would behave unlike the SQL one on PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import UUID

import pytest
from builders import Storage, a_job, found, seed, stored, update
from fakes import FakeClock

from application.errors import ConcurrencyConflict, DuplicateIdempotencyKey
from domain import JobStatus

JOB_ID = UUID(int=7)


async def test_a_conflict_surfaces_at_save_not_at_commit(uow: Storage, clock: FakeClock) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    async with uow() as tx:
        mine = await tx.jobs.get(JOB_ID)
        assert mine is not None
        await update(uow, JOB_ID, lambda job: job.cancel(clock.now()))  # another writer

        mine.note_redispatch(clock.now())
        with pytest.raises(ConcurrencyConflict):
            await tx.jobs.save(mine)
    assert (await stored(uow, JOB_ID)).status is JobStatus.CANCELLED


async def test_a_save_waits_for_a_rivals_open_save_then_conflicts(
    uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    async with uow() as first, uow() as second:
        a, b = await first.jobs.get(JOB_ID), await second.jobs.get(JOB_ID)
        assert a is not None
        assert b is not None
        a.cancel(clock.now())
        await first.jobs.save(a)  # holds the row until it commits
        b.note_redispatch(clock.now())
        blocked = asyncio.create_task(second.jobs.save(b))
        await asyncio.sleep(0.05)
        assert not blocked.done()

        await first.commit()
        with pytest.raises(ConcurrencyConflict):
            await blocked
    assert (await stored(uow, JOB_ID)).status is JobStatus.CANCELLED


async def test_a_transaction_reads_what_others_committed_meanwhile(
    uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    async with uow() as tx:
        assert await tx.jobs.get(JOB_ID) is not None
        await update(uow, JOB_ID, lambda job: job.cancel(clock.now()))
        again = await tx.jobs.get(JOB_ID)  # READ COMMITTED: the latest commit
        assert again is not None
        assert (again.status, again.version) == (JobStatus.CANCELLED, 1)


async def test_without_a_commit_nothing_is_written(uow: Storage, clock: FakeClock) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    async with uow() as tx:
        job = await tx.jobs.get(JOB_ID)
        assert job is not None
        job.cancel(clock.now())
        await tx.jobs.save(job)
        await tx.outbox.add(JOB_ID, clock.now())
        await tx.jobs.add(a_job(event_id=UUID(int=8), now=clock.now()))

    assert (await stored(uow, JOB_ID)).status is JobStatus.PENDING
    assert await found(uow, UUID(int=8)) is None
    assert await uow.outbox_rows() == []


async def test_a_save_bumps_the_version_on_the_callers_copy(uow: Storage, clock: FakeClock) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    async with uow() as tx:
        job = await tx.jobs.get(JOB_ID)
        assert job is not None
        await tx.jobs.save(job)
        await tx.jobs.save(job)  # its own newer version
        await tx.commit()
    assert job.version == 2
    assert (await stored(uow, JOB_ID)).version == 2


async def test_a_duplicate_key_is_refused_at_add(uow: Storage, clock: FakeClock) -> None:
    keyed = a_job(event_id=JOB_ID, now=clock.now())
    keyed.idempotency_key = "k1"
    await seed(uow, keyed)
    twin = a_job(event_id=UUID(int=8), now=clock.now())
    twin.idempotency_key = "k1"
    async with uow() as tx:
        with pytest.raises(DuplicateIdempotencyKey):
            await tx.jobs.add(twin)
        # The transaction is still usable: the loser reads the winner.
        winner = await tx.queries.get_by_idempotency_key("alice", "k1")
        assert winner is not None
        assert winner.event_id == JOB_ID


async def test_the_outbox_honours_created_before_and_counts_the_backlog(
    uow: Storage, clock: FakeClock
) -> None:
    older, newer = UUID(int=1), UUID(int=2)
    await seed(uow, *(a_job(event_id=e, now=clock.now()) for e in (older, newer)))
    async with uow() as tx:
        await tx.outbox.add(older, clock.now())
        await tx.outbox.add(newer, clock.now() + timedelta(seconds=10))
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.take_unsent(10, clock.now() + timedelta(seconds=5)) == [older]
        assert await tx.outbox.take_unsent(10, clock.now()) == []
        assert await tx.outbox.backlog() == 2


async def test_counts_by_status_name_every_status(uow: Storage, clock: FakeClock) -> None:
    await seed(
        uow,
        a_job(event_id=UUID(int=1), now=clock.now()),
        a_job(event_id=UUID(int=2), now=clock.now()),
        a_job(JobStatus.FAILED, event_id=UUID(int=3), now=clock.now(), owner="bob"),
    )
    async with uow() as tx:
        counts = await tx.queries.count_by_status()
        unfinished = await tx.queries.count_unfinished("alice")
    assert dict(counts) == {
        JobStatus.PENDING: 2,
        JobStatus.PROCESSING: 0,
        JobStatus.COMPLETED: 0,
        JobStatus.FAILED: 1,
        JobStatus.CANCELLED: 0,
    }
    assert unfinished == 2
