"""WaitForJob (long poll) and FollowJob (a stream of changes): live progress of one job."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from uuid import UUID

from application.errors import JobNotFound
from application.ports import ChangeFeed, ChangeStream, JobChange, JobRenderer, UnitOfWorkFactory
from domain import Job

KEEPALIVE_S = 15.0


class WaitForJob:
    """Rules: a finished job answers at once; otherwise the answer waits until the
    job finishes or `wait_s` pass, then is the job as it is. Waiting costs no
    polling: one read at the start, one at the end; the change feed says when.
    The watch starts before the first read, so no change is missed in between;
    a missed notification still ends at the deadline."""

    def __init__(self, uow_factory: UnitOfWorkFactory, feed: ChangeFeed) -> None:
        self._uow_factory = uow_factory
        self._feed = feed

    async def execute(self, owner: str, event_id: UUID, wait_s: float) -> Job:
        async with self._feed.watch(event_id) as changes:
            job = await _read(self._uow_factory, owner, event_id)
            if job.status.is_terminal or wait_s <= 0:
                return job
            deadline = time.monotonic() + wait_s
            while (left := deadline - time.monotonic()) > 0:
                change = await changes.next(left)
                if change is not None and change.status.is_terminal:
                    break
        return await _read(self._uow_factory, owner, event_id)


class FollowJob:
    """Rules: first the job as it is, then one item per committed change of its
    status or step, until it is finished (then the stream ends). Items are the
    job object without input_text, as JSON, with the job's version. While nothing
    changes, `None` comes every `keepalive_s` (a keep-alive for proxies), and the
    job is read once then, so a missed notification delays an item, never loses
    the end."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        feed: ChangeFeed,
        render: JobRenderer,
        keepalive_s: float = KEEPALIVE_S,
    ) -> None:
        self._uow_factory = uow_factory
        self._feed = feed
        self._render = render
        self._keepalive_s = keepalive_s

    async def start(self, owner: str, event_id: UUID) -> AsyncIterator[JobChange | None]:
        """Check the job exists (JobNotFound before any item), then stream."""
        watch = self._feed.watch(event_id)
        changes = await watch.__aenter__()
        try:
            job = await _read(self._uow_factory, owner, event_id)
        except BaseException:
            await watch.__aexit__(None, None, None)
            raise
        return self._stream(owner, job, changes, watch)

    async def _stream(
        self,
        owner: str,
        job: Job,
        changes: ChangeStream,
        watch: AbstractAsyncContextManager[ChangeStream],
    ) -> AsyncIterator[JobChange | None]:
        try:
            last = self._change(job)
            yield last
            while not last.status.is_terminal:
                change = await changes.next(self._keepalive_s)
                if change is None:
                    yield None  # keep-alive
                    fresh = self._change(await _read(self._uow_factory, owner, job.event_id))
                    if fresh.version == last.version:
                        continue
                    change = fresh
                if change.version <= last.version:
                    continue  # older news, or the same change twice
                last = change
                yield change
        finally:
            await watch.__aexit__(None, None, None)

    def _change(self, job: Job) -> JobChange:
        return JobChange(job.event_id, job.version, job.status, job.step, self._render(job))


async def _read(uow_factory: UnitOfWorkFactory, owner: str, event_id: UUID) -> Job:
    async with uow_factory() as uow:
        job = await uow.jobs.get(event_id, owner=owner)
    if job is None:
        raise JobNotFound(str(event_id))
    return job
