"""Test data and views of the storage, through the ports only, so that a test runs the
same on every storage backend (`uow` fixture: in memory, PostgreSQL).

- `a_job(...)`: a job brought to a status through the entity's own methods;
- `await seed(uow, *jobs)`: store them, as if an earlier transaction had committed;
- `await stored(uow, id)` / `await found(uow, id)`: the committed job (or None);
- `await update(uow, id, apply)`: another writer changes a job and commits;
- `await job_count(uow)`, `await uow.outbox_rows()`: what is stored in all;
- `Interleaved(uow, ...)`: a factory in which another writer commits at chosen moments.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from application.ports import JobQueries, JobStore, JobSweeps, Outbox, UnitOfWork
from domain import ErrorCode, Job, JobError, JobStatus, Usage

LEASE = timedelta(seconds=60)


def a_job(
    status: JobStatus = JobStatus.PENDING,
    *,
    event_id: UUID,
    now: datetime,
    owner: str = "alice",
    summary: str | None = None,
    input_text: str = "Wash hands before every patient contact.",
) -> Job:
    """A job in `status`; `summary` is recorded first when given (or when completing)."""
    job = Job.submit(event_id=event_id, owner=owner, input_text=input_text, now=now)
    if status is JobStatus.PENDING and summary is None:
        return job
    job.start(now, LEASE)
    if summary is not None or status is JobStatus.COMPLETED:
        job.record_summary(summary or "A summary.", Usage(10, 5, 15), now)
    if status is JobStatus.PENDING:  # handed back after step 1
        job.requeue(now)
    if status is JobStatus.COMPLETED:
        job.record_checklist(("Wash hands.",), Usage(8, 4, 12), now)
    elif status is JobStatus.FAILED:
        job.fail(JobError(ErrorCode.LLM_UNAVAILABLE, "provider down"), now)
    elif status is JobStatus.CANCELLED:
        job.cancel(now)
    return job


class Storage(Protocol):
    """A storage backend of the unit tests: a unit-of-work factory, plus the two things
    tests read that no port offers (every outbox row, sent or not; the commit count)."""

    commits: int

    def __call__(self) -> UnitOfWork: ...

    async def outbox_rows(self) -> list[tuple[UUID, bool]]: ...


async def seed(uow: Storage, *jobs: Job) -> None:
    async with uow() as tx:
        for job in jobs:
            await tx.jobs.add(job.copy())
        await tx.commit()


async def found(uow: Storage, event_id: UUID) -> Job | None:
    async with uow() as tx:
        return await tx.jobs.get(event_id)


async def stored(uow: Storage, event_id: UUID) -> Job:
    job = await found(uow, event_id)
    assert job is not None, f"job {event_id} is not stored"
    return job


async def update(uow: Storage, event_id: UUID, apply: Callable[[Job], object]) -> Job:
    """Another writer applies `apply` to the stored job and commits (the version moves on)."""
    async with uow() as tx:
        job = await tx.jobs.get(event_id)
        assert job is not None
        apply(job)
        await tx.jobs.save(job)
        await tx.commit()
    return job


async def job_count(uow: Storage) -> int:
    async with uow() as tx:
        counts: Mapping[JobStatus, int] = await tx.queries.count_by_status()
    return sum(counts.values())


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 10.0) -> None:
    """Wait until `check()` is true (it runs on a real database too: no fixed wait)."""
    async with asyncio.timeout(timeout_s):
        while not await check():
            await asyncio.sleep(0.005)


# -- races ---------------------------------------------------------------------------

Moment = Callable[[], Awaitable[None]]


def rival(uow: Storage, change: Callable[[UnitOfWork], Awaitable[None]]) -> Moment:
    """A moment at which another writer runs `change` in its own transaction and commits."""

    async def commit_rival() -> None:
        async with uow() as tx:
            await change(tx)
            await tx.commit()

    return commit_rival


def rival_update(uow: Storage, event_id: UUID, apply: Callable[[Job], object]) -> Moment:
    """A moment at which another writer changes the job (see `update`)."""

    async def commit_rival() -> None:
        await update(uow, event_id, apply)

    return commit_rival


class Interleaved:
    """A unit-of-work factory over `base` in which other things happen between our steps:
    `before_open[n]` runs before our n-th unit of work begins, `after_read[n]` right after
    our n-th `jobs.get` returned (counted over every unit of work of this factory).
    On PostgreSQL a rival then really commits between our read and our write."""

    def __init__(
        self,
        base: Storage,
        *,
        before_open: Mapping[int, Moment] | None = None,
        after_read: Mapping[int, Moment] | None = None,
    ) -> None:
        self.base = base
        self.before_open = dict(before_open or {})
        self.after_read = dict(after_read or {})
        self.opened = 0
        self.reads = 0

    def __call__(self) -> UnitOfWork:
        return _InterleavedUnit(self)


class _InterleavedJobs:
    def __init__(self, inner: JobStore, factory: Interleaved) -> None:
        self._inner = inner
        self._factory = factory

    async def add(self, job: Job) -> None:
        await self._inner.add(job)

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        job = await self._inner.get(event_id, owner)
        self._factory.reads += 1
        moment = self._factory.after_read.get(self._factory.reads)
        if moment is not None:
            await moment()
        return job

    async def save(self, job: Job) -> None:
        await self._inner.save(job)

    async def delete(self, job: Job) -> bool:
        return await self._inner.delete(job)


class _InterleavedUnit:
    jobs: JobStore
    queries: JobQueries
    sweeps: JobSweeps
    outbox: Outbox

    def __init__(self, factory: Interleaved) -> None:
        self._factory = factory
        self._inner: UnitOfWork | None = None

    async def __aenter__(self) -> Self:
        factory = self._factory
        factory.opened += 1
        moment = factory.before_open.get(factory.opened)
        if moment is not None:
            await moment()
        inner = factory.base()
        await inner.__aenter__()
        self._inner = inner
        self.jobs = _InterleavedJobs(inner.jobs, factory)
        self.queries, self.sweeps, self.outbox = inner.queries, inner.sweeps, inner.outbox
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._inner is not None
        await self._inner.__aexit__(exc_type, exc, tb)

    async def commit(self) -> None:
        assert self._inner is not None
        await self._inner.commit()
