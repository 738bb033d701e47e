"""Callbacks: recorded with the terminal status, tried until delivered or given up."""

from __future__ import annotations

import random
from datetime import datetime
from uuid import UUID

import pytest
from builders import a_job
from fakes import FakeClock, FakeUnitOfWorkFactory, SequentialIds

from application.events import publishing, schedule_callbacks
from application.null_metrics import NoMetrics
from application.ports import SendResult, UnitOfWorkFactory
from application.use_cases.cancel_job import CancelJob
from application.use_cases.delete_job import DeleteJob
from application.use_cases.deliver_callbacks import CallbackSettings, DeliverCallbacks
from domain import CallbackDelivery, CallbackStatus, Job, JobStatus

JOB_ID = UUID(int=5)
URL = "https://receiver.example/hook"
SETTINGS = CallbackSettings(timeout_s=10, backoff_base_s=5, max_attempts=3)


class ScriptedSender:
    def __init__(self, *results: SendResult) -> None:
        self.results = list(results)
        self.sent: list[tuple[str, str, bytes]] = []

    async def send(self, url: str, webhook_id: str, timestamp: datetime, body: bytes) -> SendResult:
        self.sent.append((url, webhook_id, body))
        return self.results.pop(0) if self.results else SendResult(200, None)


def body(job: Job, delivery: CallbackDelivery) -> bytes:
    return f"{delivery.event_type}:{job.status}".encode()


@pytest.fixture
def units(uow: FakeUnitOfWorkFactory, ids: SequentialIds) -> UnitOfWorkFactory:
    return publishing(uow, [], [schedule_callbacks(ids)])


async def cancelled_job(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    job = a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now())
    job.callback_url = URL
    uow.store.jobs[JOB_ID] = job.copy()
    await CancelJob(units, clock).execute("alice", JOB_ID)


def deliverer(
    units: UnitOfWorkFactory, sender: ScriptedSender, clock: FakeClock
) -> DeliverCallbacks:
    return DeliverCallbacks(units, sender, body, clock, NoMetrics(), SETTINGS, random.Random(2))


async def test_a_terminal_move_records_the_delivery_in_its_own_transaction(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    commits = uow.store.commits
    await cancelled_job(units, uow, clock)
    assert uow.store.commits == commits + 1  # the status and the delivery: one commit
    delivery = uow.store.callbacks[JOB_ID]
    assert delivery.event_type == "job.cancelled"
    assert delivery.status is CallbackStatus.WAITING
    assert delivery.next_attempt_at == clock.now()


async def test_a_job_without_callback_url_or_an_erased_one_gets_no_delivery(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    plain = a_job(JobStatus.PROCESSING, event_id=UUID(int=6), now=clock.now())
    uow.store.jobs[plain.event_id] = plain.copy()
    await CancelJob(units, clock).execute("alice", plain.event_id)
    erased = a_job(JobStatus.PROCESSING, event_id=UUID(int=7), now=clock.now())
    erased.callback_url = URL
    uow.store.jobs[erased.event_id] = erased.copy()
    await DeleteJob(units, clock).execute("alice", erased.event_id)
    assert uow.store.callbacks == {}


async def test_a_2xx_delivers_with_one_try(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await cancelled_job(units, uow, clock)
    sender = ScriptedSender(SendResult(204, None))
    assert await deliverer(units, sender, clock).execute() == 1
    delivery = uow.store.callbacks[JOB_ID]
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        CallbackStatus.DELIVERED,
        1,
        204,
    )
    assert delivery.delivered_at == clock.now()
    assert sender.sent == [(URL, delivery.webhook_id, b"job.cancelled:cancelled")]


async def test_failures_are_retried_with_backoff_under_the_same_webhook_id(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await cancelled_job(units, uow, clock)
    sender = ScriptedSender(
        SendResult(500, "the receiver answered 500"),
        SendResult(None, "no answer within 10 s"),
        SendResult(200, None),
    )
    run = deliverer(units, sender, clock)
    assert await run.execute() == 1
    first = uow.store.callbacks[JOB_ID]
    assert (first.status, first.last_status_code) == (CallbackStatus.WAITING, 500)
    assert first.next_attempt_at is not None
    wait = (first.next_attempt_at - clock.now()).total_seconds()
    assert 0 <= wait <= 5  # base * 2^0, full jitter
    assert await run.execute() == 0  # not due yet
    clock.advance(5)
    assert await run.execute() == 1
    second = uow.store.callbacks[JOB_ID]
    assert second.status is CallbackStatus.WAITING
    assert second.next_attempt_at is not None
    assert (second.next_attempt_at - clock.now()).total_seconds() <= 10  # base * 2^1
    clock.advance(10)
    await run.execute()
    assert uow.store.callbacks[JOB_ID].status is CallbackStatus.DELIVERED
    assert uow.store.callbacks[JOB_ID].attempts == 3
    assert len({webhook_id for _, webhook_id, _ in sender.sent}) == 1
    assert uow.store.jobs[JOB_ID].status is JobStatus.CANCELLED  # the job never changes


async def test_410_gone_stops_at_once(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await cancelled_job(units, uow, clock)
    sender = ScriptedSender(SendResult(410, "the receiver answered 410 Gone", final=True))
    await deliverer(units, sender, clock).execute()
    clock.advance(3600)
    await deliverer(units, sender, clock).execute()
    delivery = uow.store.callbacks[JOB_ID]
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == (
        CallbackStatus.FAILED,
        1,
        410,
    )
    assert len(sender.sent) == 1


async def test_after_max_attempts_the_delivery_fails(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await cancelled_job(units, uow, clock)
    sender = ScriptedSender(*[SendResult(503, "the receiver answered 503")] * 5)
    run = deliverer(units, sender, clock)
    for _ in range(5):
        await run.execute()
        clock.advance(3600)
    delivery = uow.store.callbacks[JOB_ID]
    assert (delivery.status, delivery.attempts) == (CallbackStatus.FAILED, SETTINGS.max_attempts)
    assert delivery.last_error == "the receiver answered 503"
    assert len(sender.sent) == SETTINGS.max_attempts


async def test_a_try_in_flight_is_held_and_due_again_if_its_worker_dies(
    units: UnitOfWorkFactory, uow: FakeUnitOfWorkFactory, clock: FakeClock
) -> None:
    await cancelled_job(units, uow, clock)
    run = deliverer(units, ScriptedSender(), clock)
    taken = await run._take_due()  # a worker took it, then died before any answer
    assert len(taken) == 1
    assert uow.store.callbacks[JOB_ID].status is CallbackStatus.SENDING
    assert await run._take_due() == []  # held: no second worker sends it meanwhile
    clock.advance(2 * SETTINGS.timeout_s + 5)
    assert await run.execute() == 1  # due again: delivered after all
    assert uow.store.callbacks[JOB_ID].status is CallbackStatus.DELIVERED
