"""Revocation notices: a committed change took a running job from its worker.

A cancel (or a delete, which cancels first), a hand-back to pending, a takeover
of an expired lease: whoever commits one announces it, and the worker running
the job stops the step's LLM call at once. A notice is only a hint to stop
sooner: a lost one costs time, never correctness (the step's next heartbeat
finds the job taken away).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol
from uuid import UUID

from domain import JobStatus


@dataclass(frozen=True, slots=True)
class Revocation:
    """The job's attempt count and status after the change that took it away."""

    event_id: UUID
    attempt: int
    status: JobStatus

    def takes(self, attempt: int) -> bool:
        """Whether this change took `attempt` of the job from its worker.

        A job's attempt count only grows (each claim adds one), so a later attempt
        means ours was taken over, and our own attempt out of processing means it
        was cancelled or handed back. A notice about an earlier attempt (one that
        arrives late, after we claimed the job again) takes nothing from us.
        """
        return self.attempt > attempt or (
            self.attempt == attempt and self.status is not JobStatus.PROCESSING
        )


RevocationHandler = Callable[[Revocation], None]


class RevocationFeed(Protocol):
    """Announces revocations across the deployment; hands each to the watchers of its job."""

    def publish(self, revocations: Sequence[Revocation]) -> None:
        """Announce committed revocations; never blocks, never raises."""

    def watch(self, event_id: UUID, heard: RevocationHandler) -> AbstractContextManager[None]:
        """While the block runs, `heard` is called (on this event loop, never raising)
        with each revocation of the job announced from then on. Entering never waits."""
