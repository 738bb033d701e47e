"""CountJobs: jobs by status across every process, from one cached query."""

from __future__ import annotations

from uuid import UUID

from builders import Storage, a_job, seed
from fakes import FakeClock

from application.use_cases.count_jobs import CountJobs
from domain import JobStatus


async def test_counts_every_status_and_caches_for_a_while(uow: Storage, clock: FakeClock) -> None:
    await seed(
        uow,
        a_job(JobStatus.COMPLETED, event_id=UUID(int=1), now=clock.now()),
        a_job(JobStatus.COMPLETED, event_id=UUID(int=2), now=clock.now(), owner="bob"),
        a_job(event_id=UUID(int=3), now=clock.now()),
    )
    now = [100.0]
    count = CountJobs(uow, cache_s=5, monotonic=lambda: now[0])

    first = await count.execute()
    assert first == {
        JobStatus.PENDING: 1,
        JobStatus.PROCESSING: 0,
        JobStatus.COMPLETED: 2,
        JobStatus.FAILED: 0,
        JobStatus.CANCELLED: 0,
    }
    await seed(uow, a_job(JobStatus.FAILED, event_id=UUID(int=4), now=clock.now()))
    now[0] += 4
    assert await count.execute() == first  # still cached
    now[0] += 2
    assert (await count.execute())[JobStatus.FAILED] == 1
