"""Handing a job to a worker, and the lifecycle of what does it."""

from __future__ import annotations

from typing import Protocol
from uuid import UUID


class JobDispatcher(Protocol):
    """Makes sure a worker will run the job. Must be harmless to call twice."""

    async def dispatch(self, event_id: UUID) -> None: ...


class Lifecycle(Protocol):
    """Something a process starts when it starts and stops when it stops."""

    async def start(self) -> None: ...

    async def stop(self, grace_s: float) -> None:
        """Refuse new work; let running work finish for up to `grace_s`."""


class ManagedDispatcher(JobDispatcher, Lifecycle, Protocol):
    """A dispatcher that the hosting process starts and stops."""
