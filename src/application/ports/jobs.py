"""Jobs in storage, by role: the aggregate's store, the read-side queries, the sweeps."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from domain import Job, JobStatus


@dataclass(frozen=True, slots=True)
class PageAfter:
    """Keyset position for listing: jobs strictly older than this one."""

    created_at: datetime
    event_id: UUID


class JobStore(Protocol):
    """The `Job` aggregate's store. Never commits: the unit of work does."""

    async def add(self, job: Job) -> None:
        """Insert a new job. Raises DuplicateIdempotencyKey on a key clash."""

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        """The job, or None; with `owner`, only that owner's job."""

    async def save(self, job: Job) -> None:
        """Write a changed job if its version is still the one read, and bump it.

        Raises ConcurrencyConflict when another writer got there first.
        """

    async def delete(self, job: Job) -> bool:
        """Erase the job and its outbox rows; False when it was not there."""


class JobQueries(Protocol):
    """Reads for the API: never change anything."""

    async def get_by_idempotency_key(self, owner: str, key: str) -> Job | None: ...

    async def list_page(
        self,
        owner: str,
        statuses: Sequence[JobStatus],
        limit: int,
        after: PageAfter | None,
    ) -> list[Job]:
        """The owner's jobs, newest first (created_at, event_id descending).

        Listed jobs come without their input text (`input_text == ""`): lists
        never show it, and it can be 200,000 characters a job.
        """

    async def count_unfinished(self, owner: str) -> int:
        """How many of the owner's jobs are pending or processing."""

    async def count_by_status(self) -> Mapping[JobStatus, int]:
        """How many jobs (of every owner) are in each status; absent statuses count 0."""


class JobSweeps(Protocol):
    """Batch work of the periodic chores (recovery, retention)."""

    async def find_unfinished(
        self, pending_idle_before: datetime, lease_expired_before: datetime, limit: int
    ) -> list[Job]:
        """Jobs that need a worker: `pending` untouched since the first time,
        or `processing` whose lease ran out before the second."""

    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        """Erase up to `limit` jobs created before `cutoff`; return how many."""
