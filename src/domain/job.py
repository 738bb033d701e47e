"""The job entity: one guideline turned into a summary and a checklist.

Its methods are the only way its status changes; an illegal move raises
`IllegalTransition`. Time comes in as an argument, so the entity stays
deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.callback import CallbackDelivery
from domain.errors import IllegalTransition, InvalidOutput
from domain.events import JobEvent, StatusChanged, StepStarted
from domain.status import JobStatus, Step

PENDING, PROCESSING = JobStatus.PENDING, JobStatus.PROCESSING
COMPLETED, FAILED, CANCELLED = JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED


# The whole state machine: each method of `Job` that may change the status, the
# statuses it may be called in, and the status it leaves (None: the status stays).
# The methods look their move up here; nothing else decides what is allowed.
#
#   method              allowed from                         to
MOVES: Mapping[str, tuple[frozenset[JobStatus], JobStatus | None]] = {
    "start":            (frozenset({PENDING}),               PROCESSING),
    "renew_lease":      (frozenset({PROCESSING}),            None),
    "record_summary":   (frozenset({PROCESSING}),            None),
    "record_checklist": (frozenset({PROCESSING}),            COMPLETED),
    "fail":             (frozenset({PROCESSING}),            FAILED),
    "cancel":           (frozenset({PENDING, PROCESSING}),   CANCELLED),
    "requeue":          (frozenset({PROCESSING}),            PENDING),
    "retry":            (frozenset({FAILED, CANCELLED}),     PENDING),
    "note_redispatch":  (frozenset({PENDING}),               None),
}  # fmt: skip

# Every (from, to) status pair the table allows (API.md's list of transitions).
ALLOWED_TRANSITIONS: frozenset[tuple[JobStatus, JobStatus]] = frozenset(
    (source, target)
    for sources, target in MOVES.values()
    if target is not None
    for source in sources
)


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
    version: int = 0
    # How its callback went (read with the job for display; written by its own store).
    callback: CallbackDelivery | None = None
    events: list[JobEvent] = field(default_factory=list, repr=False, compare=False)

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
        job = cls(
            event_id=event_id,
            owner=owner,
            input_text=input_text,
            created_at=now,
            updated_at=now,
            metadata=dict(metadata or {}),
            callback_url=callback_url,
            idempotency_key=idempotency_key,
            request_fingerprint=request_fingerprint,
        )
        job.events.append(StatusChanged(event_id, None, PENDING, now))
        return job

    # -- derived -------------------------------------------------------------

    @property
    def result(self) -> JobResult | None:
        if self.status is not COMPLETED or self.summary is None:
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
            self.status is PROCESSING
            and self.lease_expires_at is not None
            and self.lease_expires_at <= now
        )

    # -- transitions (each looks its move up in MOVES) -----------------------

    def start(self, now: datetime, lease: timedelta) -> None:
        """A worker takes the job: pending → processing."""
        self._move("start", now)
        self.attempts += 1
        self.deliveries += 1
        self.started_at = self.started_at or now
        self.step = self.next_step or Step.CHECKLIST
        self.lease_expires_at = now + lease

    def claim(self, now: datetime, lease: timedelta, max_deliveries: int) -> bool:
        """A worker asks for the job; True when the job changed for it.

        A processing job whose lease ran out is taken over (its worker died);
        a job delivered more than `max_deliveries` times fails with `internal`
        (it keeps killing its workers) instead of running again. Any other job
        that is not pending is not the asker's: False, nothing changes.
        """
        if self.lease_expired(now):
            self.requeue(now)
        if self.status is not PENDING:
            return False
        self.start(now, lease)
        if self.deliveries > max_deliveries:
            self.fail(
                JobError(ErrorCode.INTERNAL, "The job was delivered more times than allowed."), now
            )
        return True

    def renew_lease(self, now: datetime, lease: timedelta) -> None:
        self._move("renew_lease", now)
        self.lease_expires_at = now + lease

    def record_summary(self, summary: str, usage: Usage, now: datetime) -> None:
        """Step 1 done: the checklist step comes next."""
        self._check("record_summary")
        if not summary.strip():
            raise InvalidOutput("a summary cannot be blank")
        self._move("record_summary", now)
        self.summary = summary
        self.usage = self.usage + usage
        self.step = Step.CHECKLIST
        self.events.append(StepStarted(self.event_id, Step.CHECKLIST, now))

    def record_checklist(self, items: tuple[str, ...], usage: Usage, now: datetime) -> None:
        """Step 2 done: the job is complete."""
        self._check("record_checklist")
        if self.summary is None:
            raise IllegalTransition("a checklist needs the summary first")
        if not items:
            raise InvalidOutput("a checklist needs at least one item")
        self.checklist = tuple(items)
        self.usage = self.usage + usage
        self._move("record_checklist", now)
        self._finish(now)

    def fail(self, error: JobError, now: datetime) -> None:
        self._move("fail", now)
        self.error = error
        self._finish(now)

    def cancel(self, now: datetime) -> None:
        self._move("cancel", now)
        self._finish(now)

    def requeue(self, now: datetime) -> None:
        """Hand a processing job back (its worker died, shut down or lost its lease)."""
        self._move("requeue", now)
        self.step = None
        self.lease_expires_at = None

    def retry(self, now: datetime) -> None:
        """An explicit retry of a failed or cancelled job; finished steps are kept."""
        self._move("retry", now)
        self.error = None
        self.finished_at = None
        self.deliveries = 0

    def note_redispatch(self, now: datetime) -> None:
        """A pending job was dispatched again (its message may have been lost)."""
        self._move("note_redispatch", now)

    def recover(self, now: datetime) -> None:
        """A stuck job gets a worker again: a processing one (its lease ran out, or
        the server restarted) is handed back; a pending one is noted as dispatched
        again (its message may have been lost)."""
        if self.status is PROCESSING:
            self.requeue(now)
        else:
            self.note_redispatch(now)

    # -- helpers -------------------------------------------------------------

    def pull_events(self) -> list[JobEvent]:
        """The events recorded since the last pull (read after a commit)."""
        events, self.events = self.events, []
        return events

    def _check(self, method: str) -> None:
        sources, target = MOVES[method]
        if self.status not in sources:
            verb = method.replace("_", " ")
            raise IllegalTransition(
                f"a {self.status} job cannot {verb}"
                + (f" (it would become {target})" if target is not None else "")
            )

    def _move(self, method: str, now: datetime) -> None:
        self._check(method)
        target = MOVES[method][1]
        self.updated_at = now
        if target is not None:
            self.events.append(StatusChanged(self.event_id, self.status, target, now))
            self.status = target

    def _finish(self, now: datetime) -> None:
        self.step = None
        self.lease_expires_at = None
        self.finished_at = now

    def copy(self) -> Job:
        """A detached copy without pending events (in-memory stores mimic a round trip)."""
        callback = self.callback.copy() if self.callback is not None else None
        return replace(self, metadata=dict(self.metadata), callback=callback, events=[])
