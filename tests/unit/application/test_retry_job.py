"""RetryJob: a failed or cancelled job goes back to pending, keeps its steps, is dispatched."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import a_job, seed, stored
from fakes import FakeClock, FakeUnitOfWork, FakeUnitOfWorkFactory, RecordingDispatcher

from application.errors import JobConflict, JobNotFound
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.retry_job import RetryJob
from domain import JobStatus, Usage

JOB_ID = UUID(int=7)


@pytest.fixture
def retry(uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock) -> RetryJob:
    return RetryJob(uow, relay, clock)


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
async def test_back_to_pending_with_steps_kept_and_dispatched(
    retry: RetryJob,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    relay: RelayOutbox,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    seed(uow, a_job(status, event_id=JOB_ID, now=clock.now(), summary="kept"))
    clock.advance(30)

    returned = await retry.execute("alice", JOB_ID)

    job = stored(uow, JOB_ID)
    assert job.status is returned.status is JobStatus.PENDING
    assert job.summary == "kept"
    assert job.usage == Usage(10, 5, 15)
    assert (job.error, job.finished_at, job.deliveries) == (None, None, 0)
    assert job.attempts == 1
    assert job.updated_at == clock.now()
    assert dispatcher.dispatched == [JOB_ID]
    assert uow.store.outbox == [(JOB_ID, False)]  # marked sent a moment later, in a batch
    await relay.flush()
    assert uow.store.outbox == [(JOB_ID, True)]


async def test_a_broken_dispatcher_leaves_the_row_for_the_relay(
    retry: RetryJob,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    dispatcher.broken = True

    await retry.execute("alice", JOB_ID)

    assert stored(uow, JOB_ID).status is JobStatus.PENDING
    assert uow.store.outbox == [(JOB_ID, False)]


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
async def test_any_other_status_is_a_conflict(
    retry: RetryJob,
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    before = stored(uow, JOB_ID).copy()

    with pytest.raises(JobConflict):
        await retry.execute("alice", JOB_ID)
    assert stored(uow, JOB_ID) == before
    assert uow.store.outbox == []
    assert dispatcher.dispatched == []


async def test_another_owners_job_is_not_found(
    retry: RetryJob, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))

    with pytest.raises(JobNotFound):
        await retry.execute("bob", JOB_ID)
    assert stored(uow, JOB_ID).status is JobStatus.FAILED
    assert uow.store.outbox == []


async def test_a_racing_change_is_read_again_not_reported(
    uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock
) -> None:
    seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    real_factory = uow.__call__
    raced = []

    def racing_uow() -> FakeUnitOfWork:
        tx = real_factory()
        if not raced:  # another writer commits right after this transaction's read
            raced.append(True)
            uow.store.jobs[JOB_ID].version += 1
        return tx

    job = await RetryJob(racing_uow, relay, clock).execute("alice", JOB_ID)

    assert job.status is JobStatus.PENDING
    assert stored(uow, JOB_ID).status is JobStatus.PENDING
