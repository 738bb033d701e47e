"""PurgeExpiredJobs: erase jobs older than the retention period, whatever their status."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from builders import Storage, a_job, found, job_count, seed
from fakes import FakeClock

from application.use_cases.purge_expired_jobs import PurgeExpiredJobs
from domain import JobStatus


async def test_jobs_older_than_the_retention_are_erased(uow: Storage, clock: FakeClock) -> None:
    now = clock.now()
    old = [
        a_job(status, event_id=UUID(int=i), now=now - timedelta(days=31))
        for i, status in enumerate(JobStatus, start=1)
    ]
    fresh = a_job(event_id=UUID(int=99), now=now - timedelta(days=29))
    await seed(uow, *old, fresh)

    erased = await PurgeExpiredJobs(uow, clock, retention_days=30, batch=2).execute()

    assert erased == len(old)
    assert await job_count(uow) == 1
    assert await found(uow, fresh.event_id) is not None


async def test_without_a_retention_nothing_is_erased(uow: Storage, clock: FakeClock) -> None:
    await seed(uow, a_job(event_id=UUID(int=1), now=clock.now() - timedelta(days=3650)))

    assert await PurgeExpiredJobs(uow, clock, retention_days=None).execute() == 0
    assert await job_count(uow) == 1


async def test_the_erased_jobs_outbox_rows_go_with_them(uow: Storage, clock: FakeClock) -> None:
    old = a_job(event_id=UUID(int=1), now=clock.now() - timedelta(days=31))
    fresh = a_job(event_id=UUID(int=2), now=clock.now())
    await seed(uow, old, fresh)
    async with uow() as tx:
        for job in (old, fresh):
            await tx.outbox.add(job.event_id, job.created_at)
        await tx.commit()

    assert await PurgeExpiredJobs(uow, clock, retention_days=30).execute() == 1
    assert await uow.outbox_rows() == [(fresh.event_id, False)]
