"""SubmitJob: the job and its outbox row are stored together, then dispatched."""

from __future__ import annotations

from uuid import UUID

import pytest
from builders import LEASE, a_job, seed, stored
from fakes import (
    FakeClock,
    FakeUnitOfWork,
    FakeUnitOfWorkFactory,
    RecordingDispatcher,
    SequentialIds,
)

from application.errors import (
    DuplicateIdempotencyKey,
    IdempotencyMismatch,
    InsecureCallback,
    TooManyJobsInFlight,
)
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from domain import Job, JobStatus


@pytest.fixture
def submit(
    uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> SubmitJob:
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
    uow: FakeUnitOfWorkFactory,
    dispatcher: RecordingDispatcher,
    relay: RelayOutbox,
    clock: FakeClock,
) -> None:
    result = await submit.execute(command())

    assert result.created is True
    job = stored(uow, result.job.event_id)
    assert job.status is JobStatus.PENDING
    assert (job.owner, job.input_text) == ("alice", "Wash hands.")
    assert job.metadata == {"source": "nice"}
    assert job.callback_url == "https://example.org/hook"
    assert job.created_at == clock.now()
    assert (job.attempts, job.step, job.summary) == (0, None, None)
    assert dispatcher.dispatched == [job.event_id]
    assert uow.store.outbox == [(job.event_id, False)]  # marked sent a moment later, in a batch
    await relay.flush()
    assert uow.store.outbox == [(job.event_id, True)]


async def test_a_broken_dispatcher_leaves_the_row_for_the_relay(
    submit: SubmitJob, uow: FakeUnitOfWorkFactory, dispatcher: RecordingDispatcher
) -> None:
    dispatcher.broken = True

    result = await submit.execute(command())

    assert result.created is True
    assert stored(uow, result.job.event_id).status is JobStatus.PENDING
    assert uow.store.outbox == [(result.job.event_id, False)]
    assert dispatcher.dispatched == []


async def test_same_key_and_body_returns_the_same_job(
    submit: SubmitJob, uow: FakeUnitOfWorkFactory, dispatcher: RecordingDispatcher
) -> None:
    first = await submit.execute(command(key="k1"))
    second = await submit.execute(command(key="k1"))

    assert first.created is True
    assert second.created is False
    assert second.job.event_id == first.job.event_id
    assert list(uow.store.jobs) == [first.job.event_id]
    assert len(uow.store.outbox) == 1
    assert dispatcher.dispatched == [first.job.event_id]


async def test_same_key_returns_the_job_as_it_is_now(
    submit: SubmitJob, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    first = await submit.execute(command(key="k1"))
    stored(uow, first.job.event_id).start(clock.now(), LEASE)

    again = await submit.execute(command(key="k1"))

    assert again.job.status is JobStatus.PROCESSING


async def test_same_key_with_another_body_is_a_mismatch(
    submit: SubmitJob, uow: FakeUnitOfWorkFactory
) -> None:
    await submit.execute(command(key="k1", fingerprint="fp-1"))

    with pytest.raises(IdempotencyMismatch):
        await submit.execute(command(key="k1", fingerprint="fp-2"))
    assert len(uow.store.jobs) == 1
    assert len(uow.store.outbox) == 1


async def test_keys_are_per_owner(submit: SubmitJob, uow: FakeUnitOfWorkFactory) -> None:
    mine = await submit.execute(command(key="k1"))
    theirs = await submit.execute(command(key="k1", owner="bob"))

    assert theirs.created is True
    assert theirs.job.event_id != mine.job.event_id
    assert len(uow.store.jobs) == 2


async def test_no_key_always_makes_a_new_job(submit: SubmitJob, uow: FakeUnitOfWorkFactory) -> None:
    await submit.execute(command())
    await submit.execute(command())
    assert len(uow.store.jobs) == 2


class RacingFactory(FakeUnitOfWorkFactory):
    """Commits a rival job with the same key just before the Nth transaction opens,
    as another request would between our key check and our insert."""

    def __init__(self, rival: Job, at_open: int, vanish_at_open: int | None = None) -> None:
        super().__init__()
        self._rival = rival
        self._at_open = at_open
        self._vanish_at_open = vanish_at_open
        self.opened = 0

    def __call__(self) -> FakeUnitOfWork:
        self.opened += 1
        if self.opened == self._at_open:
            seed(self, self._rival)
        if self.opened == self._vanish_at_open:
            self.store.jobs.pop(self._rival.event_id, None)
        return super().__call__()


def rival_job(clock: FakeClock, fingerprint: str = "fp-1") -> Job:
    job = a_job(event_id=UUID(int=999), now=clock.now())
    job.idempotency_key = "k1"
    job.request_fingerprint = fingerprint
    return job


async def test_the_loser_of_a_race_gets_the_winner(
    clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    # open 1: the key check (finds nothing); open 2: our insert (the rival is in).
    uow = RacingFactory(rival_job(clock), at_open=2)
    submit = SubmitJob(uow, RelayOutbox(uow, dispatcher, clock), clock, ids)

    result = await submit.execute(command(key="k1"))

    assert result.created is False
    assert result.job.event_id == UUID(int=999)
    assert list(uow.store.jobs) == [UUID(int=999)]
    assert uow.store.outbox == []
    assert dispatcher.dispatched == []


async def test_the_loser_of_a_race_with_another_body_gets_a_mismatch(
    clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    uow = RacingFactory(rival_job(clock, fingerprint="fp-other"), at_open=2)
    submit = SubmitJob(uow, RelayOutbox(uow, dispatcher, clock), clock, ids)

    with pytest.raises(IdempotencyMismatch):
        await submit.execute(command(key="k1"))
    assert list(uow.store.jobs) == [UUID(int=999)]


async def test_a_winner_deleted_in_between_is_reported(
    clock: FakeClock, ids: SequentialIds, dispatcher: RecordingDispatcher
) -> None:
    uow = RacingFactory(rival_job(clock), at_open=2, vanish_at_open=3)
    submit = SubmitJob(uow, RelayOutbox(uow, dispatcher, clock), clock, ids)

    with pytest.raises(DuplicateIdempotencyKey):
        await submit.execute(command(key="k1"))
    assert uow.store.jobs == {}
    assert uow.store.outbox == []


# -- the in-flight cap ------------------------------------------------------------


async def test_an_owner_at_the_in_flight_cap_is_refused(
    uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    capped = SubmitJob(uow, relay, clock, ids, max_inflight_per_owner=2)
    for _ in range(2):
        await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))

    with pytest.raises(TooManyJobsInFlight):
        await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    # Another owner is not held back by alice's jobs.
    await capped.execute(SubmitJobCommand(owner="bob", input_text="Text."))
    assert len(uow.store.jobs) == 3


async def test_finished_jobs_do_not_count_against_the_cap(
    uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    capped = SubmitJob(uow, relay, clock, ids, max_inflight_per_owner=1)
    first = await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    uow.store.jobs[first.job.event_id].cancel(clock.now())

    await capped.execute(SubmitJobCommand(owner="alice", input_text="Text."))
    assert len(uow.store.jobs) == 2


# -- callbacks ----------------------------------------------------------------------


async def test_an_http_callback_is_refused_unless_the_operator_allows_it(
    uow: FakeUnitOfWorkFactory, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    plain = SubmitJobCommand(owner="alice", input_text="Text.", callback_url="http://hooks.test/x")

    with pytest.raises(InsecureCallback):
        await SubmitJob(uow, relay, clock, ids).execute(plain)
    assert uow.store.jobs == {}

    allowed = await SubmitJob(uow, relay, clock, ids, callbacks_allow_http=True).execute(plain)
    assert allowed.job.callback_url == "http://hooks.test/x"
    secure = SubmitJobCommand(
        owner="alice", input_text="Text.", callback_url="https://hooks.test/x"
    )
    assert (await SubmitJob(uow, relay, clock, ids).execute(secure)).created
