"""CancelJob: a pending or processing job becomes cancelled; a terminal one is a conflict."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import LEASE, Interleaved, Storage, a_job, rival_update, seed, stored
from fakes import FakeClock

from application.errors import JobConflict, JobNotFound
from application.use_cases.cancel_job import CancelJob
from domain import JobStatus

JOB_ID = UUID(int=7)


@pytest.fixture
def cancel(uow: Storage, clock: FakeClock) -> CancelJob:
    return CancelJob(uow, clock)


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING])
async def test_an_unfinished_job_is_cancelled(
    cancel: CancelJob, uow: Storage, clock: FakeClock, status: JobStatus
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now(), summary="kept"))
    clock.advance(5)

    returned = await cancel.execute("alice", JOB_ID)

    job = await stored(uow, JOB_ID)
    assert job.status is returned.status is JobStatus.CANCELLED
    assert job.finished_at == clock.now()
    assert (job.step, job.lease_expires_at, job.error) == (None, None, None)
    assert job.summary == "kept"


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_a_terminal_job_is_a_conflict_and_stays_as_it_was(
    cancel: CancelJob, uow: Storage, clock: FakeClock, status: JobStatus
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    before = (await stored(uow, JOB_ID)).copy()

    with pytest.raises(JobConflict):
        await cancel.execute("alice", JOB_ID)
    assert (await stored(uow, JOB_ID)) == before


async def test_another_owners_job_is_not_found_and_untouched(
    cancel: CancelJob, uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))

    with pytest.raises(JobNotFound):
        await cancel.execute("bob", JOB_ID)
    assert (await stored(uow, JOB_ID)).status is JobStatus.PENDING


async def test_a_missing_job_is_not_found(cancel: CancelJob) -> None:
    with pytest.raises(JobNotFound):
        await cancel.execute("alice", JOB_ID)


async def test_a_concurrent_heartbeat_is_retried_not_reported(
    uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now()))
    # A worker's heartbeat commits right after each of the first two reads of the cancel.
    heartbeat = rival_update(uow, JOB_ID, lambda job: job.renew_lease(clock.now(), LEASE))
    racing = Interleaved(uow, after_read={1: heartbeat, 2: heartbeat})

    await CancelJob(racing, clock).execute("alice", JOB_ID)

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.version == 3  # two heartbeats, then the cancel
    assert racing.reads == 3
