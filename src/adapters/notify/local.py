"""In-process feeds: committed changes fan out to this process's waiters, revocations
to the runs of the jobs they took away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Generic, TypeVar
from uuid import UUID

from application.ports import JobChange, Revocation, RevocationHandler

log = logging.getLogger(__name__)

_W = TypeVar("_W")
QUEUE_LIMIT = 64  # a waiter that far behind loses old changes, never the latest


class _Stream:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[JobChange] = asyncio.Queue(QUEUE_LIMIT)

    async def next(self, timeout_s: float) -> JobChange | None:
        try:
            async with asyncio.timeout(max(timeout_s, 0.0)):
                return await self.queue.get()
        except TimeoutError:
            return None

    def offer(self, change: JobChange) -> None:
        if self.queue.full():
            self.queue.get_nowait()
        self.queue.put_nowait(change)


class _ByJob(Generic[_W]):
    """Watchers by job id: what both fan-outs keep. One loop only."""

    def __init__(self) -> None:
        self._by_job: dict[UUID, list[_W]] = {}

    def of(self, event_id: UUID) -> tuple[_W, ...]:
        return tuple(self._by_job.get(event_id, ()))

    def __len__(self) -> int:
        return sum(len(watchers) for watchers in self._by_job.values())

    @contextlib.contextmanager
    def added(self, event_id: UUID, watcher: _W) -> Iterator[None]:
        self._by_job.setdefault(event_id, []).append(watcher)
        try:
            yield
        finally:
            watchers = self._by_job.get(event_id)
            if watchers is not None:
                watchers.remove(watcher)
                if not watchers:
                    del self._by_job[event_id]


class LocalFanOut:
    """Waiters by job; `deliver` hands each change to the job's waiters. One loop only."""

    def __init__(self) -> None:
        self._waiters: _ByJob[_Stream] = _ByJob()

    def deliver(self, changes: Sequence[JobChange]) -> None:
        for change in changes:
            for stream in self._waiters.of(change.event_id):
                stream.offer(change)

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @contextlib.asynccontextmanager
    async def watch(self, event_id: UUID) -> AsyncIterator[_Stream]:
        stream = _Stream()
        with self._waiters.added(event_id, stream):
            yield stream


class LocalChangeFeed(LocalFanOut):
    """Implements `ChangeFeed` within one process (the embedded server)."""

    def publish(self, changes: Sequence[JobChange]) -> None:
        self.deliver(changes)


class RevocationFanOut:
    """Who watches which job for revocations; `deliver` calls them. One loop only."""

    def __init__(self) -> None:
        self._heard: _ByJob[RevocationHandler] = _ByJob()

    def deliver(self, revocations: Sequence[Revocation]) -> None:
        for revocation in revocations:
            for heard in self._heard.of(revocation.event_id):
                try:
                    heard(revocation)
                except Exception:  # one watcher's fault never reaches the others
                    log.exception("revocation handler failed")

    @property
    def watching(self) -> int:
        return len(self._heard)

    def watch(
        self, event_id: UUID, heard: RevocationHandler
    ) -> contextlib.AbstractContextManager[None]:
        return self._heard.added(event_id, heard)


class LocalRevocationFeed(RevocationFanOut):
    """Implements `RevocationFeed` within one process (the embedded server)."""

    def publish(self, revocations: Sequence[Revocation]) -> None:
        self.deliver(revocations)
