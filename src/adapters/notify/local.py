"""The in-process change feed: committed changes fan out to this process's waiters."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

from application.ports import JobChange

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
