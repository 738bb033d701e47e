"""RecoverStuckJobs: jobs whose worker died or whose message was lost get a worker again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from builders import LEASE, Interleaved, Storage, a_job, rival_update, seed, stored, update
from fakes import FakeClock, RecordingDispatcher

from application.use_cases.recover_stuck_jobs import RecoverStuckJobs, RecoverySettings
from application.use_cases.relay_outbox import RelayOutbox
from domain import Job, JobStatus

EXPIRED, IDLE, FRESH_PENDING, LIVE, DONE = (UUID(int=n) for n in range(1, 6))


@pytest.fixture
def recover(uow: Storage, relay: RelayOutbox, clock: FakeClock) -> RecoverStuckJobs:
    return RecoverStuckJobs(uow, relay, clock, RecoverySettings(pending_redispatch_s=120))


@pytest.fixture
async def jobs(uow: Storage, clock: FakeClock) -> None:
    """At t0: a processing job (lease 60 s) and an idle pending job; at t0+100 s a
    fresh pending job and a processing job with a live lease; a finished one."""
    t0 = clock.now()
    await seed(
        uow,
        a_job(JobStatus.PROCESSING, event_id=EXPIRED, now=t0, summary="kept"),
        a_job(event_id=IDLE, now=t0),
        a_job(JobStatus.FAILED, event_id=DONE, now=t0),
    )
    clock.advance(100)
    await seed(
        uow,
        a_job(event_id=FRESH_PENDING, now=clock.now()),
        a_job(JobStatus.PROCESSING, event_id=LIVE, now=clock.now()),
    )
    clock.advance(25)  # t0+125: EXPIRED's lease ran out 65 s ago; IDLE idle for 125 s


@pytest.mark.usefixtures("jobs")
async def test_expired_and_idle_jobs_are_dispatched_again_and_fresh_ones_left(
    recover: RecoverStuckJobs,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    untouched = {e: await stored(uow, e) for e in (FRESH_PENDING, LIVE, DONE)}

    recovered = await recover.execute()

    assert recovered == 2
    expired = await stored(uow, EXPIRED)
    assert expired.status is JobStatus.PENDING
    assert (expired.step, expired.lease_expires_at) == (None, None)
    assert expired.summary == "kept"
    idle = await stored(uow, IDLE)
    assert idle.status is JobStatus.PENDING
    assert idle.updated_at == clock.now()
    assert sorted(dispatcher.dispatched) == [EXPIRED, IDLE]
    assert sorted(await uow.outbox_rows()) == [(EXPIRED, True), (IDLE, True)]
    for event_id, before in untouched.items():
        assert await stored(uow, event_id) == before


@pytest.mark.usefixtures("jobs")
async def test_a_second_run_right_after_finds_nothing(
    recover: RecoverStuckJobs, dispatcher: RecordingDispatcher
) -> None:
    await recover.execute()
    assert await recover.execute() == 0
    assert len(dispatcher.dispatched) == 2


@pytest.mark.usefixtures("jobs")
async def test_a_broken_dispatcher_leaves_the_rows_for_later(
    recover: RecoverStuckJobs, uow: Storage, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.broken = True

    with pytest.raises(OSError, match="broker down"):
        await recover.execute()

    assert (await stored(uow, EXPIRED)).status is JobStatus.PENDING  # the requeue is committed
    assert sorted(await uow.outbox_rows()) == [(EXPIRED, False), (IDLE, False)]


async def test_nothing_stuck_nothing_done(
    recover: RecoverStuckJobs,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    await seed(uow, a_job(event_id=IDLE, now=clock.now()))
    clock.advance(119)
    assert await recover.execute() == 0
    assert dispatcher.dispatched == []
    assert await uow.outbox_rows() == []


@pytest.mark.usefixtures("jobs")
async def test_resume_all_requeues_every_unfinished_job(
    uow: Storage, relay: RelayOutbox, clock: FakeClock
) -> None:
    recover = RecoverStuckJobs(uow, relay, clock, RecoverySettings(batch=2))
    clock.advance(1)

    resumed = await recover.resume_all()

    unfinished = [EXPIRED, IDLE, FRESH_PENDING, LIVE]
    assert resumed == 4
    for event_id in unfinished:
        job = await stored(uow, event_id)
        assert job.status is JobStatus.PENDING, event_id
        assert (job.step, job.lease_expires_at) == (None, None)
        assert job.updated_at == clock.now()
    assert (await stored(uow, DONE)).status is JobStatus.FAILED
    # One outbox row each, whatever the batching; the relay publishes them.
    assert sorted(e for e, _ in await uow.outbox_rows()) == sorted(unfinished)


async def test_resume_all_with_nothing_to_do(
    uow: Storage, relay: RelayOutbox, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.COMPLETED, event_id=DONE, now=clock.now()))
    clock.advance(1)
    recover = RecoverStuckJobs(uow, relay, clock)
    assert await recover.resume_all() == 0
    assert await uow.outbox_rows() == []


@pytest.mark.usefixtures("jobs")
async def test_a_job_claimed_between_the_check_and_the_requeue_is_left_alone(
    uow: Storage, relay: RelayOutbox, dispatcher: RecordingDispatcher, clock: FakeClock
) -> None:
    # The stale jobs are handled oldest first: EXPIRED's is the first read. A worker
    # takes its expired lease over right after that read, before the requeue is saved.
    takeover = rival_update(uow, EXPIRED, lambda job: job.claim(clock.now(), LEASE, 5))
    racing = Interleaved(uow, after_read={1: takeover})

    recovered = await RecoverStuckJobs(racing, relay, clock).execute()

    assert recovered == 1
    expired = await stored(uow, EXPIRED)
    assert (expired.status, expired.attempts) == (JobStatus.PROCESSING, 2)  # the worker's
    assert expired.lease_expires_at == clock.now() + LEASE
    assert dispatcher.dispatched == [IDLE]
    assert await uow.outbox_rows() == [(IDLE, True)]


def test_the_wait_doubles_up_to_the_cap() -> None:
    settings = RecoverySettings(pending_redispatch_s=120, pending_redispatch_max_s=1000)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    waits = [(now - cutoff).total_seconds() for cutoff in settings.idle_before(now)]
    assert waits == [120, 240, 480, 960, 1000]
    assert RecoverySettings(60, 60).idle_before(now) == [now - timedelta(seconds=60)]


async def test_a_pending_job_nobody_claims_is_sent_again_less_and_less_often(
    uow: Storage,
    relay: RelayOutbox,
    dispatcher: RecordingDispatcher,
    clock: FakeClock,
) -> None:
    """Rounds every 10 s for an hour, a backlog nobody works on: the job is sent again
    after 120 s, then 240 s, 480 s, 960 s, then every 1,000 s (the cap), not every 120 s."""
    recover = RecoverStuckJobs(
        uow, relay, clock, RecoverySettings(pending_redispatch_s=120, pending_redispatch_max_s=1000)
    )
    start = clock.now()
    await seed(uow, a_job(event_id=IDLE, now=start))
    sent_at: list[float] = []
    for _ in range(360):
        clock.advance(10)
        if await recover.execute():
            sent_at.append((clock.now() - start).total_seconds())
    assert sent_at == [130, 380, 870, 1840, 2850]  # each due time, at the next round
    job = await stored(uow, IDLE)
    assert job.redispatches == 5
    assert dispatcher.dispatched == [IDLE] * 5


async def test_backing_off_starts_over_when_the_job_is_pending_again(
    uow: Storage, recover: RecoverStuckJobs, clock: FakeClock
) -> None:
    await seed(uow, a_job(event_id=IDLE, now=clock.now()))
    clock.advance(121)
    assert await recover.execute() == 1
    assert (await stored(uow, IDLE)).redispatches == 1

    def taken_and_handed_back(job: Job) -> None:
        job.start(clock.now(), timedelta(seconds=60))
        job.requeue(clock.now())

    job = await update(uow, IDLE, taken_and_handed_back)
    assert (job.redispatches, job.dispatched_at) == (0, clock.now())
    clock.advance(121)
    assert await recover.execute() == 1  # 120 s again, not 240 s
