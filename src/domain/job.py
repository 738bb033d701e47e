"""The job entity: one guideline turned into a summary and a checklist.

Its methods are the only way its status changes; an illegal move raises
`IllegalTransition`. Time comes in as an argument, so the entity stays
deterministic.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.errors import IllegalTransition, InvalidOutput


class JobStatus(StrEnum):
    PENDING = "pending"
    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATUSES


TERMINAL_STATUSES = frozenset({JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED})

# Every move the contract allows (API.md); anything else is refused.
ALLOWED_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    {
        (JobStatus.PENDING, JobStatus.PROCESSING),
        (JobStatus.PENDING, JobStatus.CANCELLED),
        (JobStatus.PROCESSING, JobStatus.COMPLETED),
        (JobStatus.PROCESSING, JobStatus.FAILED),
        (JobStatus.PROCESSING, JobStatus.CANCELLED),
        (JobStatus.PROCESSING, JobStatus.PENDING),
        (JobStatus.FAILED, JobStatus.PENDING),
        (JobStatus.CANCELLED, JobStatus.PENDING),
    }
)


class Step(StrEnum):
    SUMMARIZE = "summarize"
    CHECKLIST = "checklist"


class ErrorCode(StrEnum):
    LLM_RATE_LIMITED = "llm_rate_limited"
    LLM_UNAVAILABLE = "llm_unavailable"
    LLM_TIMEOUT = "llm_timeout"
    LLM_REJECTED = "llm_rejected"
    LLM_BAD_OUTPUT = "llm_bad_output"
    INTERNAL = "internal"


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts reported by the LLM provider."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
        )


@dataclass(frozen=True, slots=True)
class JobError:
    code: ErrorCode
    message: str


@dataclass(frozen=True, slots=True)
class JobResult:
    summary: str
    checklist: tuple[str, ...]


@dataclass(slots=True, kw_only=True)
class Job:
    """A submitted guideline and the state of its two-step chain."""

    event_id: UUID
    owner: str
    input_text: str
    created_at: datetime
    updated_at: datetime
    status: JobStatus = JobStatus.PENDING
    step: Step | None = None
    summary: str | None = None
    checklist: tuple[str, ...] | None = None
    error: JobError | None = None
    attempts: int = 0
    deliveries: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    usage: Usage = field(default_factory=Usage)
    callback_url: str | None = None
    idempotency_key: str | None = None
    request_fingerprint: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    lease_expires_at: datetime | None = None
    # When a worker was last asked to run the job; how often recovery sent it again
    # since it last became pending (so recovery can back off).
    dispatched_at: datetime | None = None
    redispatches: int = 0
    version: int = 0

    @classmethod
    def submit(
        cls,
        *,
        event_id: UUID,
        owner: str,
        input_text: str,
        now: datetime,
        metadata: dict[str, str] | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        request_fingerprint: str | None = None,
    ) -> Job:
        return cls(
            event_id=event_id,
            owner=owner,
            input_text=input_text,
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
            dispatched_at=now,
        )

    # -- derived -------------------------------------------------------------

    @property
    def result(self) -> JobResult | None:
        if self.status is not JobStatus.COMPLETED or self.summary is None:
            return None
        return JobResult(self.summary, self.checklist or ())

    @property
    def next_step(self) -> Step | None:
        """The step a worker would run next, from the outputs already saved."""
        if self.summary is None:
            return Step.SUMMARIZE
        if self.checklist is None:
            return Step.CHECKLIST
        return None

    def lease_expired(self, now: datetime) -> bool:
        return (
            self.status is JobStatus.PROCESSING
            and self.lease_expires_at is not None
            and self.lease_expires_at <= now
        )

    # -- transitions ---------------------------------------------------------

    def start(self, now: datetime, lease: timedelta) -> None:
        """A worker takes the job: pending → processing."""
        self._move(JobStatus.PROCESSING, now)
        self.attempts += 1
        self.deliveries += 1
        self.started_at = self.started_at or now
        self.step = self.next_step or Step.CHECKLIST
        self.lease_expires_at = now + lease

    def renew_lease(self, now: datetime, lease: timedelta) -> None:
        self._require(JobStatus.PROCESSING, "renew the lease of")
        self.lease_expires_at = now + lease
        self.updated_at = now

    def record_summary(self, summary: str, usage: Usage, now: datetime) -> None:
        self._require(JobStatus.PROCESSING, "record a summary on")
        if not summary.strip():
            raise InvalidOutput("a summary cannot be blank")
        self.summary = summary
        self.usage = self.usage + usage
        self.step = Step.CHECKLIST
        self.updated_at = now

    def record_checklist(self, items: tuple[str, ...], usage: Usage, now: datetime) -> None:
        """Step 2 done: the job is complete."""
        self._require(JobStatus.PROCESSING, "record a checklist on")
        if self.summary is None:
            raise IllegalTransition("a checklist needs the summary first")
        if not items:
            raise InvalidOutput("a checklist needs at least one item")
        self.checklist = tuple(items)
        self.usage = self.usage + usage
        self._move(JobStatus.COMPLETED, now)
        self._finish(now)

    def fail(self, error: JobError, now: datetime) -> None:
        self._move(JobStatus.FAILED, now)
        self.error = error
        self._finish(now)

    def cancel(self, now: datetime) -> None:
        self._move(JobStatus.CANCELLED, now)
        self._finish(now)

    def requeue(self, now: datetime) -> None:
        """Hand a processing job back (its worker died, shut down or lost its lease)."""
        self._move(JobStatus.PENDING, now, allowed_from={JobStatus.PROCESSING})
        self.step = None
        self.lease_expires_at = None
        self._dispatched(now)

    def retry(self, now: datetime) -> None:
        """An explicit retry of a failed or cancelled job; finished steps are kept."""
        self._move(JobStatus.PENDING, now, allowed_from={JobStatus.FAILED, JobStatus.CANCELLED})
        self.error = None
        self.finished_at = None
        self.deliveries = 0
        self._dispatched(now)

    def note_redispatch(self, now: datetime) -> None:
        """A pending job was dispatched again (its message may have been lost)."""
        self._require(JobStatus.PENDING, "redispatch")
        self.updated_at = now
        self.dispatched_at = now
        self.redispatches += 1

    # -- helpers -------------------------------------------------------------

    def _require(self, status: JobStatus, action: str) -> None:
        if self.status is not status:
            raise IllegalTransition(f"cannot {action} a {self.status} job")

    def _move(
        self, target: JobStatus, now: datetime, allowed_from: set[JobStatus] | None = None
    ) -> None:
        source = self.status
        if (source, target) not in ALLOWED_TRANSITIONS or (
            allowed_from is not None and source not in allowed_from
        ):
            raise IllegalTransition(f"a {source} job cannot become {target}")
        self.status = target
        self.updated_at = now

    def _dispatched(self, now: datetime) -> None:
        """The job became pending and is sent to a worker now: backing off starts over."""
        self.dispatched_at = now
        self.redispatches = 0

    def _finish(self, now: datetime) -> None:
        self.step = None
        self.lease_expires_at = None
        self.finished_at = now

    def copy(self) -> Job:
        """A detached copy (used by in-memory stores to mimic a database round trip)."""
        return replace(self, metadata=dict(self.metadata))
