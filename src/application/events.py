"""Domain events, read from the jobs a unit of work wrote once it has committed.

`publishing(factory, handlers)` wraps any unit-of-work factory: its `jobs` store
remembers each job it added, saved or deleted; after a successful commit the
events those jobs recorded are handed to every handler (metrics, live-progress
waiters). A transaction that rolls back publishes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Self
from uuid import UUID

from application.ports import (
    JobQueries,
    JobStore,
    JobSweeps,
    Metrics,
    Outbox,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain import Job, JobEvent, StatusChanged

log = logging.getLogger(__name__)

EventHandler = Callable[[Sequence[JobEvent]], None]


class _SeenJobs:
    """A `JobStore` that remembers the jobs written through it."""

    def __init__(self, inner: JobStore, seen: list[Job]) -> None:
        self._inner = inner
        self._seen = seen

    async def add(self, job: Job) -> None:
        await self._inner.add(job)
        self._seen.append(job)

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        return await self._inner.get(event_id, owner)

    async def save(self, job: Job) -> None:
        await self._inner.save(job)
        self._seen.append(job)

    async def delete(self, job: Job) -> bool:
        deleted = await self._inner.delete(job)
        self._seen.append(job)
        return deleted


class PublishingUnitOfWork:
    """A `UnitOfWork` that publishes its jobs' events after it commits."""

    jobs: JobStore
    queries: JobQueries
    sweeps: JobSweeps
    outbox: Outbox

    def __init__(self, inner: UnitOfWork, handlers: Sequence[EventHandler]) -> None:
        self._inner = inner
        self._handlers = handlers
        self._seen: list[Job] = []

    async def __aenter__(self) -> Self:
        await self._inner.__aenter__()
        self.jobs = _SeenJobs(self._inner.jobs, self._seen)
        self.queries = self._inner.queries
        self.sweeps = self._inner.sweeps
        self.outbox = self._inner.outbox
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
        await self._inner.commit()
        events = [event for job in self._seen for event in job.pull_events()]
        self._seen.clear()
        if events:
            publish(events, self._handlers)


def publish(events: Sequence[JobEvent], handlers: Sequence[EventHandler]) -> None:
    """Hand `events` to each handler; a failing handler never fails the use case."""
    for handle in handlers:
        try:
            handle(events)
        except Exception:  # the change is committed; a subscriber's fault is only logged
            log.exception("event handler failed", extra={"handler": repr(handle)})


def publishing(factory: UnitOfWorkFactory, handlers: Sequence[EventHandler]) -> UnitOfWorkFactory:
    """Units of work from `factory` that publish their events to `handlers`."""

    def new_unit_of_work() -> UnitOfWork:
        return PublishingUnitOfWork(factory(), handlers)

    return new_unit_of_work


def count_statuses(metrics: Metrics) -> EventHandler:
    """The handler that counts every job reaching each status."""

    def handle(events: Sequence[JobEvent]) -> None:
        for event in events:
            if isinstance(event, StatusChanged):
                metrics.job_reached(event.target)

    return handle
