"""GetJob: an owner sees its own jobs; another owner's job looks missing."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import Storage, a_job, seed, stored
from fakes import FakeClock

from application.errors import JobNotFound
from application.use_cases.get_job import GetJob
from domain import JobStatus

JOB_ID = UUID(int=7)


@pytest.fixture
async def get_job(uow: Storage, clock: FakeClock) -> GetJob:
    await seed(uow, a_job(JobStatus.COMPLETED, event_id=JOB_ID, now=clock.now()))
    return GetJob(uow)


async def test_the_owner_gets_the_job(get_job: GetJob) -> None:
    job = await get_job.execute("alice", JOB_ID)
    assert job.event_id == JOB_ID
    assert job.status is JobStatus.COMPLETED
    assert job.input_text
    assert job.result is not None


async def test_another_owners_job_is_not_found(get_job: GetJob) -> None:
    with pytest.raises(JobNotFound):
        await get_job.execute("bob", JOB_ID)


async def test_a_missing_job_is_not_found(get_job: GetJob) -> None:
    with pytest.raises(JobNotFound):
        await get_job.execute("alice", UUID(int=8))


async def test_the_caller_gets_a_detached_copy(get_job: GetJob, uow: Storage) -> None:
    job = await get_job.execute("alice", JOB_ID)
    job.metadata["x"] = "y"
    assert (await stored(uow, JOB_ID)).metadata == {}
