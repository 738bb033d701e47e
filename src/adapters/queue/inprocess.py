"""The embedded mode's dispatcher: runs jobs on a bounded set of tasks inside the server."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from uuid import UUID

import structlog

log = structlog.get_logger(__name__)

RunJob = Callable[[UUID], Awaitable[object]]


class InProcessDispatcher:
    """`dispatch` queues the job; `concurrency` tasks take jobs off the queue.

    Stopping refuses new work, lets running jobs finish for up to the grace
    period, then cancels the rest (the use case hands them back to pending;
    the next start resumes them).
    """

    def __init__(self, run_job: RunJob, concurrency: int) -> None:
        self._run_job = run_job
        self._concurrency = concurrency
        self._queue: asyncio.Queue[UUID] = asyncio.Queue()
        self._tasks: list[asyncio.Task[None]] = []
        self._running = 0  # runs in progress (the same job may be queued twice)
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False

    async def dispatch(self, event_id: UUID) -> None:
        if not self._stopping:
            self._queue.put_nowait(event_id)

    async def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._work(), name=f"job-runner-{i}")
            for i in range(self._concurrency)
        ]

    async def stop(self, grace_s: float) -> None:
        self._stopping = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout=grace_s)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._running:
            log.warning("jobs handed back at shutdown", jobs=self._running)

    async def _work(self) -> None:
        while True:
            event_id = await self._queue.get()
            if self._stopping:
                continue
            self._running += 1
            self._idle.clear()
            try:
                await self._run_job(event_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one job's fault must not kill the runner
                log.error(
                    "job run crashed",
                    event_id=str(event_id),
                    error=type(exc).__name__,
                    exc_info=exc,
                )
            finally:
                self._running -= 1
                if not self._running:
                    self._idle.set()
