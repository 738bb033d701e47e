"""Live progress: each committed change of a job, fanned out to whoever waits for it."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from domain import Job, JobStatus, Step


@dataclass(frozen=True, slots=True)
class JobChange:
    event_id: UUID
    version: int
    status: JobStatus
    step: Step | None
    document: bytes  # the job object without input_text, as JSON


class JobRenderer(Protocol):
    def __call__(self, job: Job) -> bytes:
        """The job object without input_text, as JSON (the API's own format)."""


class ChangeStream(Protocol):
    async def next(self, timeout_s: float) -> JobChange | None:
        """The next change of the watched job, or None after `timeout_s` without one."""


class ChangeFeed(Protocol):
    """One subscription per process fans committed changes out to every waiter."""

    def publish(self, changes: Sequence[JobChange]) -> None:
        """Announce committed changes; never blocks, never raises."""

    def watch(self, event_id: UUID) -> AbstractAsyncContextManager[ChangeStream]:
        """Changes of one job from now on, while the block runs."""
