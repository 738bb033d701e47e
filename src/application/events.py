"""Domain events, read from the jobs a unit of work wrote once it has committed.

`publishing(factory, handlers, before_commit)` wraps any unit-of-work factory:
its `jobs` store remembers each job it added, saved or deleted. Just before the
commit, the `before_commit` steps may write more in the same transaction (the
callback delivery of a job that reached a terminal status: recorded with the
status, so no crash loses it); after a successful commit the events those jobs
recorded are handed to every handler (metrics, live-progress waiters, the
worker of a job taken from it). A transaction that rolls back publishes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Self
from uuid import UUID

from application.ports import (
    CallbackStore,
    ChangeFeed,
    IdFactory,
    JobChange,
    JobQueries,
    JobRenderer,
    JobStore,
    JobSweeps,
    Metrics,
    Outbox,
    Revocation,
    RevocationFeed,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain import (
    TERMINAL_STATUSES,
    CallbackDelivery,
    Job,
    JobEvent,
    JobStatus,
    StatusChanged,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Committed:
    """What one commit changed: the jobs that recorded events, and the events."""

    jobs: Sequence[Job]
    events: Sequence[JobEvent]


EventHandler = Callable[[Committed], None]
# Runs inside the transaction, before it commits: (the unit of work, the jobs written).
BeforeCommit = Callable[[UnitOfWork, Sequence[Job]], Awaitable[None]]


class _SeenJobs:
    """A `JobStore` that remembers the jobs written through it (and which it erased)."""

    def __init__(self, inner: JobStore, seen: list[Job]) -> None:
        self._inner = inner
        self._seen = seen
        self.erased: set[UUID] = set()

    async def add(self, job: Job) -> None:
        await self._inner.add(job)
        self._seen.append(job)

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        return await self._inner.get(event_id, owner)

    async def save(self, job: Job) -> None:
        await self._inner.save(job)
        self._seen.append(job)

    async def lock_owner(self, owner: str) -> None:
        await self._inner.lock_owner(owner)

    async def delete(self, job: Job) -> bool:
        deleted = await self._inner.delete(job)
        self._seen.append(job)
        self.erased.add(job.event_id)
        return deleted


class PublishingUnitOfWork:
    """A `UnitOfWork` that publishes its jobs' events after it commits."""

    jobs: JobStore
    queries: JobQueries
    sweeps: JobSweeps
    outbox: Outbox
    callbacks: CallbackStore

    def __init__(
        self,
        inner: UnitOfWork,
        handlers: Sequence[EventHandler],
        before_commit: Sequence[BeforeCommit] = (),
    ) -> None:
        self._inner = inner
        self._handlers = handlers
        self._before_commit = before_commit
        self._seen: list[Job] = []
        self._store: _SeenJobs | None = None

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        self._store = _SeenJobs(self._inner.jobs, self._seen)
        self.jobs = self._store
        self.queries = self._inner.queries
        self.sweeps = self._inner.sweeps
        self.outbox = self._inner.outbox
        self.callbacks = self._inner.callbacks
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._seen.clear()
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        if self._before_commit and self._seen:
            erased: set[UUID] = self._store.erased if self._store is not None else set()
            living = [job for job in self._seen if job.event_id not in erased]
            for step in self._before_commit:
                await step(self, living)
        await self._inner.commit()
        changed: dict[UUID, Job] = {}
        events: list[JobEvent] = []
        for job in self._seen:
            pulled = job.pull_events()
            if pulled:
                events.extend(pulled)
                changed[job.event_id] = job  # the last written copy of each job
        self._seen.clear()
        if events:
            publish(Committed(list(changed.values()), events), self._handlers)


def publish(committed: Committed, handlers: Sequence[EventHandler]) -> None:
    """Hand what was committed to each handler; a failing handler never fails the use case."""
    for handle in handlers:
        try:
            handle(committed)
        except Exception:  # the change is committed; a subscriber's fault is only logged
            log.exception("event handler failed", extra={"handler": repr(handle)})


def publishing(
    factory: UnitOfWorkFactory,
    handlers: Sequence[EventHandler],
    before_commit: Sequence[BeforeCommit] = (),
) -> UnitOfWorkFactory:
    """Units of work from `factory` that publish their events to `handlers`."""

    def new_unit_of_work() -> UnitOfWork:
        return PublishingUnitOfWork(factory(), handlers, before_commit)

    return new_unit_of_work


def count_statuses(metrics: Metrics) -> EventHandler:
    """The handler that counts every job reaching each status."""

    def handle(committed: Committed) -> None:
        for event in committed.events:
            if isinstance(event, StatusChanged):
                metrics.job_reached(event.target)

    return handle


def announce_changes(feed: ChangeFeed, render: JobRenderer) -> EventHandler:
    """The handler that tells live-progress waiters of each committed change."""

    def handle(committed: Committed) -> None:
        feed.publish(
            [
                JobChange(job.event_id, job.version, job.status, job.step, render(job))
                for job in committed.jobs
            ]
        )

    return handle


# Where a move out of processing goes when someone takes the job from its worker: a
# cancel (a delete cancels first), or a hand-back to pending (a worker shutting down,
# recovery of an expired lease, a takeover by another worker's claim). Completing and
# failing are the running worker's own moves: nobody needs telling.
TAKEN_AWAY = frozenset({JobStatus.CANCELLED, JobStatus.PENDING})


def announce_revocations(feed: RevocationFeed) -> EventHandler:
    """The handler that tells a job's worker, at once, of a committed change that took
    the running job from it (so its LLM call stops without waiting for a heartbeat)."""

    def handle(committed: Committed) -> None:
        taken = {
            event.event_id
            for event in committed.events
            if isinstance(event, StatusChanged)
            and event.source is JobStatus.PROCESSING
            and event.target in TAKEN_AWAY
        }
        if taken:
            feed.publish(
                [
                    Revocation(job.event_id, job.attempts, job.status)
                    for job in committed.jobs
                    if job.event_id in taken
                ]
            )

    return handle


def schedule_callbacks(ids: IdFactory) -> BeforeCommit:
    """The step that records a callback delivery, in the same transaction, for each job
    with a callback URL that reaches a terminal status (an erased job gets none)."""

    async def schedule(uow: UnitOfWork, jobs: Sequence[Job]) -> None:
        for job in jobs:
            if job.callback_url is None:
                continue
            for event in job.events:
                if isinstance(event, StatusChanged) and event.target in TERMINAL_STATUSES:
                    webhook_id = f"msg_{ids.new_id().hex}"
                    job.callback = CallbackDelivery.for_event(
                        job.event_id, event.target, webhook_id, event.at
                    )
                    await uow.callbacks.schedule(job.callback)

    return schedule
