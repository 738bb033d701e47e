"""DeleteJob: the owner erases a job for good; nobody else can."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import Storage, a_job, found, job_count, seed
from fakes import FakeClock

from application.errors import JobNotFound
from application.events import count_statuses, publishing
from application.null_metrics import NoMetrics
from application.use_cases.delete_job import DeleteJob
from application.use_cases.get_job import GetJob
from domain import JobStatus

JOB_ID = UUID(int=7)


@pytest.fixture
def delete(uow: Storage, clock: FakeClock) -> DeleteJob:
    return DeleteJob(uow, clock)


@pytest.mark.parametrize("status", list(JobStatus))
async def test_the_owner_erases_the_job(
    delete: DeleteJob, uow: Storage, clock: FakeClock, status: JobStatus
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    await seed(uow, a_job(event_id=UUID(int=8), now=clock.now()))

    await delete.execute("alice", JOB_ID)

    assert await found(uow, JOB_ID) is None
    assert await job_count(uow) == 1
    with pytest.raises(JobNotFound):
        await GetJob(uow).execute("alice", JOB_ID)


async def test_the_jobs_outbox_rows_are_erased_with_it(
    delete: DeleteJob, uow: Storage, clock: FakeClock
) -> None:
    other = UUID(int=8)
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()), a_job(event_id=other, now=clock.now()))
    async with uow() as tx:
        for event_id in (JOB_ID, other, JOB_ID):
            await tx.outbox.add(event_id, clock.now())
        await tx.outbox.mark_sent([JOB_ID], clock.now())
        await tx.commit()

    await delete.execute("alice", JOB_ID)

    assert await uow.outbox_rows() == [(other, False)]
    async with uow() as tx:
        assert await tx.outbox.backlog() == 1


async def test_another_owner_cannot_erase_it(
    delete: DeleteJob, uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))

    with pytest.raises(JobNotFound):
        await delete.execute("bob", JOB_ID)
    assert await found(uow, JOB_ID) is not None


async def test_a_missing_job_is_not_found(delete: DeleteJob) -> None:
    with pytest.raises(JobNotFound):
        await delete.execute("alice", JOB_ID)


async def test_deleting_twice_is_not_found_the_second_time(
    delete: DeleteJob, uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    await delete.execute("alice", JOB_ID)
    with pytest.raises(JobNotFound):
        await delete.execute("alice", JOB_ID)


class RecordingMetrics(NoMetrics):
    def __init__(self) -> None:
        self.reached: list[JobStatus] = []

    def job_reached(self, status: JobStatus) -> None:
        self.reached.append(status)


@pytest.mark.parametrize(
    ("status", "counted"),
    [(JobStatus.PROCESSING, [JobStatus.CANCELLED]), (JobStatus.COMPLETED, [])],
)
async def test_an_unfinished_job_is_cancelled_before_it_is_erased(
    uow: Storage, clock: FakeClock, status: JobStatus, counted: list[JobStatus]
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    metrics = RecordingMetrics()

    counted_uow = publishing(uow, [count_statuses(metrics)])
    await DeleteJob(counted_uow, clock).execute("alice", JOB_ID)

    assert await found(uow, JOB_ID) is None
    assert metrics.reached == counted
