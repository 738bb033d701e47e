"""PruneOutbox: delete outbox rows sent longer ago than the retention period."""

from __future__ import annotations

from datetime import timedelta

from application.ports import Clock, UnitOfWorkFactory

BATCH = 5_000


class PruneOutbox:
    """Rules: a row is deleted only once sent, and only `retention_s` after it was
    sent (unsent rows are the relay's, whatever their age); rows go in batches of
    `batch`, one short transaction each, until none is left."""

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, retention_s: float, batch: int = BATCH
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention = timedelta(seconds=retention_s)
        self._batch = batch

    async def execute(self) -> int:
        cutoff = self._clock.now() - self._retention
        pruned = 0
        while True:
            async with self._uow_factory() as uow:
                deleted = await uow.outbox.delete_sent_before(cutoff, self._batch)
                await uow.commit()
            pruned += deleted
            if deleted < self._batch:
                return pruned
