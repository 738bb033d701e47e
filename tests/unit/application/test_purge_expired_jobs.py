"""PurgeExpiredJobs: erase jobs older than the retention period, whatever their status."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

from builders import a_job, seed
from fakes import FakeClock, FakeUnitOfWorkFactory

from application.use_cases.purge_expired_jobs import PurgeExpiredJobs
from domain import JobStatus


async def test_jobs_older_than_the_retention_are_erased(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    now = clock.now()
    old = [
        a_job(status, event_id=UUID(int=i), now=now - timedelta(days=31))
        for i, status in enumerate(JobStatus, start=1)
    ]
    fresh = a_job(event_id=UUID(int=99), now=now - timedelta(days=29))
    seed(uow, *old, fresh)

    erased = await PurgeExpiredJobs(uow, clock, retention_days=30, batch=2).execute()

    assert erased == len(old)
    assert set(uow.store.jobs) == {fresh.event_id}


async def test_without_a_retention_nothing_is_erased(
    uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    seed(uow, a_job(event_id=UUID(int=1), now=clock.now() - timedelta(days=3650)))

    assert await PurgeExpiredJobs(uow, clock, retention_days=None).execute() == 0
    assert len(uow.store.jobs) == 1
