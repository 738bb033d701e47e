"""A job's callback: the signed POST of its terminal state to the owner's URL, and how it went.

One delivery per job: the latest terminal event (a retried job that ends again
gets a new event and a new `webhook_id`). Redelivering is a new round of tries of
the same event (same `webhook_id`), so receivers can drop duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from uuid import UUID

from domain.errors import IllegalTransition
from domain.status import JobStatus


class CallbackStatus(StrEnum):
    WAITING = "waiting"  # due at next_attempt_at
    SENDING = "sending"  # a worker holds it until next_attempt_at (then it is due again)
    DELIVERED = "delivered"
    FAILED = "failed"


EVENT_TYPES = {
    JobStatus.COMPLETED: "job.completed",
    JobStatus.FAILED: "job.failed",
    JobStatus.CANCELLED: "job.cancelled",
}


@dataclass(slots=True, kw_only=True)
class CallbackDelivery:
    event_id: UUID  # the job's
    webhook_id: str
    event_type: str
    occurred_at: datetime  # the event's time: the payload's `timestamp`
    status: CallbackStatus = CallbackStatus.WAITING
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None
    delivered_at: datetime | None = None

    @classmethod
    def for_event(
        cls, event_id: UUID, status: JobStatus, webhook_id: str, now: datetime
    ) -> CallbackDelivery:
        """The delivery of the job reaching terminal `status`, due at once."""
        if status not in EVENT_TYPES:
            raise IllegalTransition(f"a {status} job has no callback event")
        return cls(
            event_id=event_id,
            webhook_id=webhook_id,
            event_type=EVENT_TYPES[status],
            occurred_at=now,
            next_attempt_at=now,
        )

    def is_due(self, now: datetime) -> bool:
        return (
            self.status in (CallbackStatus.WAITING, CallbackStatus.SENDING)
            and self.next_attempt_at is not None
            and self.next_attempt_at <= now
        )

    def start_try(self, now: datetime, hold: timedelta) -> None:
        """A worker takes the delivery for one try; held for `hold` (then due again:
        a worker that dies mid-delivery never loses it)."""
        if not self.is_due(now):
            raise IllegalTransition(f"a {self.status} callback is not due")
        self.status = CallbackStatus.SENDING
        self.attempts += 1
        self.next_attempt_at = now + hold

    def succeed(self, status_code: int, now: datetime) -> None:
        self.status = CallbackStatus.DELIVERED
        self.last_status_code, self.last_error = status_code, None
        self.next_attempt_at = None
        self.delivered_at = now

    def give_up(self, status_code: int | None, error: str) -> None:
        """No more tries: 410 Gone, a refused destination, or the tries ran out."""
        self.status = CallbackStatus.FAILED
        self.last_status_code, self.last_error = status_code, error
        self.next_attempt_at = None

    def try_again(self, status_code: int | None, error: str, at: datetime) -> None:
        self.status = CallbackStatus.WAITING
        self.last_status_code, self.last_error = status_code, error
        self.next_attempt_at = at

    def redeliver(self, now: datetime) -> None:
        """A new round of tries of the same event (same webhook_id), due at once."""
        self.status = CallbackStatus.WAITING
        self.attempts = 0
        self.next_attempt_at = now
        self.delivered_at = None

    def copy(self) -> CallbackDelivery:
        return replace(self)
