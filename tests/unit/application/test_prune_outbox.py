"""PruneOutbox: sent outbox rows go after the retention period, in batches; unsent stay."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Self
from uuid import UUID

from fakes import FakeClock

from application.use_cases.prune_outbox import PruneOutbox


class TimedOutbox:
    """Outbox rows with their sent time (the shared fake keeps none)."""

    def __init__(self) -> None:
        self.sent_at: list[datetime | None] = []
        self.calls: list[int] = []

    async def delete_sent_before(self, cutoff: datetime, limit: int) -> int:
        doomed = [i for i, t in enumerate(self.sent_at) if t is not None and t < cutoff][:limit]
        for index in reversed(doomed):
            del self.sent_at[index]
        self.calls.append(len(doomed))
        return len(doomed)

    async def add(self, event_id: UUID, now: datetime) -> None: ...

    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        return []

    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None: ...

    async def backlog(self) -> int:
        return sum(1 for t in self.sent_at if t is None)


class OutboxOnlyUnitOfWork:
    def __init__(self, outbox: TimedOutbox) -> None:
        self.outbox = outbox
        self.jobs: Any = None
        self.commits = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.commits += 1


async def test_rows_sent_before_the_retention_go_in_batches_and_unsent_ones_stay(
    clock: FakeClock,
) -> None:
    outbox = TimedOutbox()
    now = clock.now()
    outbox.sent_at = [now - timedelta(hours=30)] * 5 + [now - timedelta(hours=1)] * 2 + [None] * 3
    unit = OutboxOnlyUnitOfWork(outbox)
    prune = PruneOutbox(lambda: unit, clock, retention_s=24 * 3600, batch=2)

    assert await prune.execute() == 5
    assert outbox.calls == [2, 2, 1]  # batches until one comes back short
    assert unit.commits == 3
    assert outbox.sent_at == [now - timedelta(hours=1)] * 2 + [None] * 3
    assert await prune.execute() == 0
