"""RetryJob: a failed or cancelled job goes back to pending, keeps its steps, is dispatched."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from builders import Interleaved, Storage, a_job, rival_update, seed, stored
from fakes import FakeClock, RecordingDispatcher

from application.errors import JobConflict, JobNotFound
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.retry_job import RetryJob
from domain import Job, JobStatus, Usage

JOB_ID = UUID(int=7)


@pytest.fixture
def retry(uow: Storage, relay: RelayOutbox, clock: FakeClock) -> RetryJob:
    return RetryJob(uow, relay, clock)


@pytest.mark.parametrize("status", [JobStatus.FAILED, JobStatus.CANCELLED])
async def test_back_to_pending_with_steps_kept_and_dispatched(
    retry: RetryJob,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    relay: RelayOutbox,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now(), summary="kept"))
    clock.advance(30)

    returned = await retry.execute("alice", JOB_ID)

    job = await stored(uow, JOB_ID)
    assert job.status is returned.status is JobStatus.PENDING
    assert job.summary == "kept"
    assert job.usage == Usage(10, 5, 15)
    assert (job.error, job.finished_at, job.deliveries) == (None, None, 0)
    assert job.attempts == 1
    assert job.updated_at == clock.now()
    assert dispatcher.dispatched == [JOB_ID]
    assert await uow.outbox_rows() == [(JOB_ID, False)]  # marked sent a moment later, in a batch
    await relay.flush()
    assert await uow.outbox_rows() == [(JOB_ID, True)]


async def test_a_broken_dispatcher_leaves_the_row_for_the_relay(
    retry: RetryJob,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    dispatcher.broken = True

    await retry.execute("alice", JOB_ID)

    assert (await stored(uow, JOB_ID)).status is JobStatus.PENDING
    assert await uow.outbox_rows() == [(JOB_ID, False)]


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.PROCESSING, JobStatus.COMPLETED])
async def test_any_other_status_is_a_conflict(
    retry: RetryJob,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    before = await stored(uow, JOB_ID)

    with pytest.raises(JobConflict):
        await retry.execute("alice", JOB_ID)
    assert (await stored(uow, JOB_ID)) == before
    assert await uow.outbox_rows() == []
    assert dispatcher.dispatched == []


async def test_another_owners_job_is_not_found(
    retry: RetryJob, uow: Storage, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))

    with pytest.raises(JobNotFound):
        await retry.execute("bob", JOB_ID)
    assert (await stored(uow, JOB_ID)).status is JobStatus.FAILED
    assert await uow.outbox_rows() == []


async def test_a_racing_change_is_read_again_not_reported(
    uow: Storage, relay: RelayOutbox, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    # Another writer commits right after this transaction's read.
    touch = rival_update(uow, JOB_ID, lambda job: None)
    racing = Interleaved(uow, after_read={1: touch})

    job = await RetryJob(racing, relay, clock).execute("alice", JOB_ID)

    assert job.status is JobStatus.PENDING
    assert racing.reads == 2
    stored_job = await stored(uow, JOB_ID)
    assert (stored_job.status, stored_job.version) == (JobStatus.PENDING, 2)
    assert [event_id for event_id, _ in await uow.outbox_rows()] == [JOB_ID]  # one row


async def test_of_two_racing_retries_one_wins_and_the_other_is_a_conflict(
    uow: Storage, relay: RelayOutbox, dispatcher: RecordingDispatcher, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    both_read = asyncio.Barrier(2)  # each retry reads the failed job before either writes
    racing = Interleaved(uow, after_read={1: both_read.wait, 2: both_read.wait})
    retry = RetryJob(racing, relay, clock)

    outcomes = await asyncio.gather(
        retry.execute("alice", JOB_ID), retry.execute("alice", JOB_ID), return_exceptions=True
    )

    conflicts = [o for o in outcomes if isinstance(o, JobConflict)]
    wins = [o for o in outcomes if isinstance(o, Job)]
    assert (len(wins), len(conflicts)) == (1, 1), outcomes
    assert "pending" in str(conflicts[0])  # the loser read again and found it pending
    assert racing.reads == 3
    job = await stored(uow, JOB_ID)
    assert (job.status, job.version) == (JobStatus.PENDING, 1)
    assert [event_id for event_id, _ in await uow.outbox_rows()] == [
        JOB_ID
    ]  # the loser's rolled back
    assert dispatcher.dispatched == [JOB_ID]


# -- limits on retries (each one starts paid LLM work again) ----------------------------


async def test_a_job_takes_at_most_max_retries(
    uow: Storage, relay: RelayOutbox, clock: FakeClock
) -> None:
    from application.use_cases.cancel_job import CancelJob

    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()))
    limited = RetryJob(uow, relay, clock, max_retries=2)
    for _ in range(2):
        await limited.execute("alice", JOB_ID)
        await CancelJob(uow, clock).execute("alice", JOB_ID)

    with pytest.raises(JobConflict, match="retried 2 times"):
        await limited.execute("alice", JOB_ID)
    job = await stored(uow, JOB_ID)
    assert (job.status, job.retries) == (JobStatus.CANCELLED, 2)


async def test_a_retry_counts_against_the_in_flight_cap(
    uow: Storage, relay: RelayOutbox, clock: FakeClock
) -> None:
    from application.errors import TooManyJobsInFlight

    busy = a_job(JobStatus.PROCESSING, event_id=UUID(int=8), now=clock.now())
    await seed(uow, a_job(JobStatus.FAILED, event_id=JOB_ID, now=clock.now()), busy)
    capped = RetryJob(uow, relay, clock, max_inflight_per_owner=1)

    with pytest.raises(TooManyJobsInFlight):
        await capped.execute("alice", JOB_ID)
    job = await stored(uow, JOB_ID)
    assert (job.status, job.retries) == (JobStatus.FAILED, 0)  # nothing changed
    assert await uow.outbox_rows() == []
