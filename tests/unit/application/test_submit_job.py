"""SubmitJob: the job and its outbox row are stored together, then dispatched."""

from __future__ import annotations

import asyncio
from uuid import UUID

import pytest
from builders import LEASE, Interleaved, Storage, a_job, job_count, rival, stored, update
from fakes import FakeClock, RecordingDispatcher, SequentialIds

from application.errors import (
    DuplicateIdempotencyKey,
    IdempotencyMismatch,
    InsecureCallback,
    TooManyJobsInFlight,
)
from application.ports import UnitOfWork
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from domain import Job, JobStatus


@pytest.fixture
def submit(uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds) -> SubmitJob:
    return SubmitJob(uow, relay, clock, ids)


def command(
    key: str | None = None, fingerprint: str | None = "fp-1", owner: str = "alice"
) -> SubmitJobCommand:
    return SubmitJobCommand(
        owner=owner,
        input_text="Wash hands.",
        metadata={"source": "nice"},
        callback_url="https://example.org/hook",
        idempotency_key=key,
        request_fingerprint=fingerprint if key else None,
    )


async def test_stores_a_pending_job_with_a_sent_outbox_row(
    submit: SubmitJob,
    uow: Storage,
    dispatcher: RecordingDispatcher,
    relay: RelayOutbox,
    clock: FakeClock,
) -> None:
    result = await submit.execute(command())

    assert result.created is True
    job = await stored(uow, result.job.event_id)
    assert job.status is JobStatus.PENDING
    assert (job.owner, job.input_text) == ("alice", "Wash hands.")
    assert job.metadata == {"source": "nice"}
    assert job.callback_url == "https://example.org/hook"
    assert job.created_at == clock.now()
    assert (job.attempts, job.step, job.summary) == (0, None, None)
    assert dispatcher.dispatched == [job.event_id]
    assert await uow.outbox_rows() == [
        (job.event_id, False)
    ]  # marked sent a moment later, in a batch
    await relay.flush()
    assert await uow.outbox_rows() == [(job.event_id, True)]


async def test_a_broken_dispatcher_leaves_the_row_for_the_relay(
    submit: SubmitJob, uow: Storage, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.broken = True

    result = await submit.execute(command())

    assert result.created is True
    assert (await stored(uow, result.job.event_id)).status is JobStatus.PENDING
    assert await uow.outbox_rows() == [(result.job.event_id, False)]
    assert dispatcher.dispatched == []


async def test_same_key_and_body_returns_the_same_job(
    submit: SubmitJob, uow: Storage, dispatcher: RecordingDispatcher
) -> None:
    first = await submit.execute(command(key="k1"))
    second = await submit.execute(command(key="k1"))

    assert first.created is True
    assert second.created is False
    assert second.job.event_id == first.job.event_id
    assert await job_count(uow) == 1
    assert [e for e, _ in await uow.outbox_rows()] == [first.job.event_id]
    assert dispatcher.dispatched == [first.job.event_id]


async def test_same_key_returns_the_job_as_it_is_now(
    submit: SubmitJob, uow: Storage, clock: FakeClock
) -> None:
    first = await submit.execute(command(key="k1"))
    await update(uow, first.job.event_id, lambda job: job.start(clock.now(), LEASE))

    again = await submit.execute(command(key="k1"))

    assert again.job.status is JobStatus.PROCESSING


async def test_same_key_with_another_body_is_a_mismatch(submit: SubmitJob, uow: Storage) -> None:
    await submit.execute(command(key="k1", fingerprint="fp-1"))

    with pytest.raises(IdempotencyMismatch):
        await submit.execute(command(key="k1", fingerprint="fp-2"))
    assert await job_count(uow) == 1
    assert len(await uow.outbox_rows()) == 1


async def test_keys_are_per_owner(submit: SubmitJob, uow: Storage) -> None:
    mine = await submit.execute(command(key="k1"))
    theirs = await submit.execute(command(key="k1", owner="bob"))

    assert theirs.created is True
    assert theirs.job.event_id != mine.job.event_id
    assert await job_count(uow) == 2


async def test_no_key_always_makes_a_new_job(submit: SubmitJob, uow: Storage) -> None:
    await submit.execute(command())
    await submit.execute(command())
    assert await job_count(uow) == 2


def rival_job(clock: FakeClock, fingerprint: str = "fp-1") -> Job:
    job = a_job(event_id=UUID(int=999), now=clock.now())
    job.idempotency_key = "k1"
    job.request_fingerprint = fingerprint
    return job


def racing(uow: Storage, rival_job: Job, vanish_at_open: int | None = None) -> Interleaved:
    """Another request commits `rival_job` (same key) between our key check (our first
    transaction) and our insert (the second); with `vanish_at_open`, it is deleted before
    that transaction of ours begins."""

    async def add(tx: UnitOfWork) -> None:
        await tx.jobs.add(rival_job.copy())

    async def delete(tx: UnitOfWork) -> None:
        await tx.jobs.delete(rival_job)

    moments = {2: rival(uow, add)}
    if vanish_at_open is not None:
        moments[vanish_at_open] = rival(uow, delete)
    return Interleaved(uow, before_open=moments)


async def test_the_loser_of_a_race_gets_the_winner(
    uow: Storage, clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    racy = racing(uow, rival_job(clock))
    submit = SubmitJob(racy, RelayOutbox(racy, dispatcher, clock), clock, ids)

    result = await submit.execute(command(key="k1"))

    assert result.created is False
    assert result.job.event_id == UUID(int=999)
    assert await job_count(uow) == 1
    assert await uow.outbox_rows() == []
    assert dispatcher.dispatched == []


async def test_the_loser_of_a_race_with_another_body_gets_a_mismatch(
    uow: Storage, clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    racy = racing(uow, rival_job(clock, fingerprint="fp-other"))
    submit = SubmitJob(racy, RelayOutbox(racy, dispatcher, clock), clock, ids)

    with pytest.raises(IdempotencyMismatch):
        await submit.execute(command(key="k1"))
    assert await job_count(uow) == 1
    assert (await stored(uow, UUID(int=999))).request_fingerprint == "fp-other"


async def test_a_winner_deleted_in_between_is_reported(
    uow: Storage, clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    racy = racing(uow, rival_job(clock), vanish_at_open=3)
    submit = SubmitJob(racy, RelayOutbox(racy, dispatcher, clock), clock, ids)

    with pytest.raises(DuplicateIdempotencyKey):
        await submit.execute(command(key="k1"))
    assert await job_count(uow) == 0
    assert await uow.outbox_rows() == []


async def test_two_racing_submits_with_one_key_make_one_job(
    uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    submit = SubmitJob(uow, relay, clock, ids)

    results = await asyncio.gather(*(submit.execute(command(key="k1")) for _ in range(2)))

    assert sorted(r.created for r in results) == [False, True]
    assert results[0].job.event_id == results[1].job.event_id
    assert await job_count(uow) == 1
    assert len(await uow.outbox_rows()) == 1


# -- the in-flight cap ------------------------------------------------------------


async def test_an_owner_at_the_in_flight_cap_is_refused(
    uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    capped = SubmitJob(uow, relay, clock, ids, max_inflight_per_owner=2)
    for _ in range(2):
        await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))

    with pytest.raises(TooManyJobsInFlight):
        await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    # Another owner is not held back by alice's jobs.
    await capped.execute(SubmitJobCommand(owner="bob", input_text="Text."))
    assert await job_count(uow) == 3


async def test_finished_jobs_do_not_count_against_the_cap(
    uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    capped = SubmitJob(uow, relay, clock, ids, max_inflight_per_owner=1)
    first = await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    await update(uow, first.job.event_id, lambda job: job.cancel(clock.now()))

    await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    assert await job_count(uow) == 2


# -- callbacks ----------------------------------------------------------------------


async def test_an_http_callback_is_refused_unless_the_operator_allows_it(
    uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    plain = SubmitJobCommand(owner="alice", input_text="Text.", callback_url="http://hooks.test/x")

    with pytest.raises(InsecureCallback):
        await SubmitJob(uow, relay, clock, ids).execute(plain)
    assert await job_count(uow) == 0

    allowed = await SubmitJob(uow, relay, clock, ids, callbacks_allow_http=True).execute(plain)
    assert allowed.job.callback_url == "http://hooks.test/x"
    secure = SubmitJobCommand(
        owner="alice", input_text="Text.", callback_url="https://hooks.test/x"
    )
    assert (await SubmitJob(uow, relay, clock, ids).execute(secure)).created
