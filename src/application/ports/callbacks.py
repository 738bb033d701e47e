"""Callback deliveries in storage, and the sender that POSTs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from uuid import UUID

from domain import CallbackDelivery, Job


class CallbackStore(Protocol):
    """One delivery per job (its latest terminal event). Never commits."""

    async def schedule(self, delivery: CallbackDelivery) -> None:
        """Record a new event's delivery, replacing the job's previous one."""

    async def save(self, delivery: CallbackDelivery) -> None: ...

    async def take_due(self, now: datetime, limit: int) -> list[CallbackDelivery]:
        """Deliveries due by `now`, oldest first; locked against other workers where
        the store can (they skip them)."""

    async def get(self, event_id: UUID) -> CallbackDelivery | None: ...


@dataclass(frozen=True, slots=True)
class SendResult:
    status_code: int | None  # None: no answer (refused, timed out, not allowed)
    error: str | None  # why it did not succeed, in words; never the body or a secret
    final: bool = False  # no point in trying again (410 Gone, a refused destination)

    @property
    def delivered(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class WebhookSender(Protocol):
    """POSTs a signed body to a callback URL; never raises for the receiver's faults."""

    async def send(
        self, url: str, webhook_id: str, timestamp: datetime, body: bytes
    ) -> SendResult: ...


class CallbackBodies(Protocol):
    def __call__(self, job: Job, delivery: CallbackDelivery) -> bytes:
        """The POST body: `{"type", "timestamp", "data": <the job without input_text>}`."""
