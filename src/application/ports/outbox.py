"""The outbox: dispatch requests written in the same transaction as the job change."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol
from uuid import UUID


class Outbox(Protocol):
    """Rows of "a worker must run this job", published by the relay."""

    async def add(self, event_id: UUID, now: datetime) -> None: ...

    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        """Unsent rows (written before `created_before`, if given), oldest first;
        locked against other relays where the store can."""

    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None: ...

    async def backlog(self) -> int:
        """How many rows are unsent."""
