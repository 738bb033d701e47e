"""Ports: what the use cases need from the outside world, as small Protocols."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, Self
from uuid import UUID

from domain import Job, JobStatus, Usage


@dataclass(frozen=True, slots=True)
class PageAfter:
    """Keyset position for listing: jobs strictly older than this one."""

    created_at: datetime
    event_id: UUID


class JobRepository(Protocol):
    """Jobs in storage. Never commits: the unit of work does."""

    async def add(self, job: Job) -> None:
        """Insert a new job. Raises DuplicateIdempotencyKey on a key clash."""

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        """The job, or None; with `owner`, only that owner's job."""

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

    async def save(self, job: Job) -> None:
        """Write a changed job if its version is still the one read, and bump it.

        Raises ConcurrencyConflict when another writer got there first.
        """

    async def delete(self, event_id: UUID) -> bool: ...

    async def count_unfinished(self, owner: str) -> int:
        """How many of the owner's jobs are pending or processing."""

    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        """Erase up to `limit` jobs created before `cutoff`; return how many."""

    async def find_unfinished(
        self,
        pending_idle_before: Sequence[datetime],
        lease_expired_before: datetime,
        limit: int,
    ) -> list[Job]:
        """Jobs that need a worker: `pending` ones last dispatched before
        `pending_idle_before[k]`, k being how often they were sent again (the last
        time applies to every count from there on), or `processing` ones whose
        lease ran out before `lease_expired_before`."""


class Outbox(Protocol):
    """Dispatch requests written in the same transaction as the job change."""

    async def add(self, event_id: UUID, now: datetime) -> None: ...

    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        """Unsent rows (written before `created_before`, if given), oldest first;
        locked against other relays where the store can."""

    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None: ...

    async def delete_sent_before(self, cutoff: datetime, limit: int) -> int:
        """Delete up to `limit` rows sent before `cutoff`, oldest first; return how many."""

    async def backlog(self) -> int:
        """How many rows are unsent."""


class UnitOfWork(Protocol):
    """One transaction. Rolls back on exit unless `commit` was called."""

    jobs: JobRepository
    outbox: Outbox

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...


class JobDispatcher(Protocol):
    """Makes sure a worker will run the job. Must be harmless to call twice."""

    async def dispatch(self, event_id: UUID) -> None: ...


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Checklist:
    items: tuple[str, ...]
    usage: Usage


class LLMGateway(Protocol):
    """The two LLM steps. Raises TransientLLMError / PermanentLLMError only."""

    async def summarize(self, text: str) -> Summary: ...

    async def write_checklist(self, summary: str, source_text: str) -> Checklist: ...


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""


class IdFactory(Protocol):
    def new_id(self) -> UUID: ...


@dataclass(frozen=True, slots=True)
class ApiKey:
    """An API key's public record; the secret is never stored, only its hash."""

    key_id: str
    owner: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None


class ApiKeyStore(Protocol):
    """API keys. Each call is its own transaction (keys change rarely)."""

    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str, now: datetime) -> bool: ...


class Metrics(Protocol):
    """What the use cases report for monitoring."""

    def job_reached(self, status: JobStatus) -> None: ...

    def step_finished(self, step: str, seconds: float) -> None: ...

    def llm_call(self, outcome: str, usage: Usage | None) -> None: ...

    def outbox_backlog(self, rows: int) -> None: ...


class NoMetrics:
    """Metrics that go nowhere (tests, CLI)."""

    def job_reached(self, status: JobStatus) -> None:
        return None

    def step_finished(self, step: str, seconds: float) -> None:
        return None

    def llm_call(self, outcome: str, usage: Usage | None) -> None:
        return None

    def outbox_backlog(self, rows: int) -> None:
        return None


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float  # seconds until the window resets


class RateLimiter(Protocol):
    """Counts hits per key in fixed windows."""

    async def hit(self, key: str, limit: int, window_s: int) -> RateDecision: ...
