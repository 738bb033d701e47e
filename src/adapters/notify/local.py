"""In-process feeds: committed changes fan out to this process's waiters, revocations
to the runs of the jobs they took away."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from uuid import UUID

from application.ports import JobChange, Revocation, RevocationHandler

log = logging.getLogger(__name__)

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


class LocalFanOut:
    """Waiters by job; `deliver` hands each change to the job's waiters. One loop only."""

    def __init__(self) -> None:
        self._waiters: dict[UUID, set[_Stream]] = {}

    def deliver(self, changes: Sequence[JobChange]) -> None:
        for change in changes:
            for stream in self._waiters.get(change.event_id, ()):
                stream.offer(change)

    @property
    def waiting(self) -> int:
        return sum(len(streams) for streams in self._waiters.values())

    @contextlib.asynccontextmanager
    async def watch(self, event_id: UUID) -> AsyncIterator[_Stream]:
        stream = _Stream()
        self._waiters.setdefault(event_id, set()).add(stream)
        try:
            yield stream
        finally:
            streams = self._waiters.get(event_id)
            if streams is not None:
                streams.discard(stream)
                if not streams:
                    del self._waiters[event_id]


class LocalChangeFeed(LocalFanOut):
    """Implements `ChangeFeed` within one process (the embedded server)."""

    def publish(self, changes: Sequence[JobChange]) -> None:
        self.deliver(changes)


class RevocationFanOut:
    """Who watches which job for revocations; `deliver` calls them. One loop only."""

    def __init__(self) -> None:
        self._heard: dict[UUID, list[RevocationHandler]] = {}

    def deliver(self, revocations: Sequence[Revocation]) -> None:
        for revocation in revocations:
            for heard in tuple(self._heard.get(revocation.event_id, ())):
                try:
                    heard(revocation)
                except Exception:  # one watcher's fault never reaches the others
                    log.exception("revocation handler failed")

    @property
    def watching(self) -> int:
        return sum(len(handlers) for handlers in self._heard.values())

    @contextlib.contextmanager
    def watch(self, event_id: UUID, heard: RevocationHandler) -> Iterator[None]:
        self._heard.setdefault(event_id, []).append(heard)
        try:
            yield
        finally:
            handlers = self._heard.get(event_id)
            if handlers is not None:
                handlers.remove(heard)
                if not handlers:
                    del self._heard[event_id]


class LocalRevocationFeed(RevocationFanOut):
    """Implements `RevocationFeed` within one process (the embedded server)."""

    def publish(self, revocations: Sequence[Revocation]) -> None:
        self.deliver(revocations)
