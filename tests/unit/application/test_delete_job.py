"""DeleteJob: the owner erases a job for good; nobody else can."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import a_job, seed
from fakes import FakeClock, FakeUnitOfWorkFactory

from application.errors import JobNotFound
from application.events import count_statuses, publishing
from application.null_metrics import NoMetrics
from application.use_cases.delete_job import DeleteJob
from application.use_cases.get_job import GetJob
from domain import JobStatus

JOB_ID = UUID(int=7)


@pytest.fixture
def delete(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> DeleteJob:
    return DeleteJob(uow, clock)


@pytest.mark.parametrize("status", list(JobStatus))
async def test_the_owner_erases_the_job(
    delete: DeleteJob, uow: FakeUnitOfWorkFactory, clock: FakeClock, status: JobStatus
) -> None:
    seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    seed(uow, a_job(event_id=UUID(int=8), now=clock.now()))

    await delete.execute("alice", JOB_ID)

    assert list(uow.store.jobs) == [UUID(int=8)]
    with pytest.raises(JobNotFound):
        await GetJob(uow).execute("alice", JOB_ID)


async def test_another_owner_cannot_erase_it(
    delete: DeleteJob, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    seed(uow, a_job(event_id=JOB_ID, now=clock.now()))

    with pytest.raises(JobNotFound):
        await delete.execute("bob", JOB_ID)
    assert JOB_ID in uow.store.jobs


async def test_a_missing_job_is_not_found(delete: DeleteJob) -> None:
    with pytest.raises(JobNotFound):
        await delete.execute("alice", JOB_ID)


async def test_deleting_twice_is_not_found_the_second_time(
    delete: DeleteJob, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
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
    uow: FakeUnitOfWorkFactory, clock: FakeClock, status: JobStatus, counted: list[JobStatus]
) -> None:
    seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    metrics = RecordingMetrics()

    counted_uow = publishing(uow, [count_statuses(metrics)])
    await DeleteJob(counted_uow, clock).execute("alice", JOB_ID)

    assert JOB_ID not in uow.store.jobs
    assert metrics.reached == counted
