"""PurgeExpiredJobs: erase jobs older than the retention period."""

from __future__ import annotations

import logging
from datetime import timedelta

from application.ports import Clock, UnitOfWorkFactory

log = logging.getLogger(__name__)


class PurgeExpiredJobs:
    """Rules: with a retention of N days, every job created more than N days
    ago is erased (text, outputs, metadata) whatever its status, in batches;
    with no retention set, nothing is erased."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        clock: Clock,
        retention_days: int | None,
        batch: int = 500,
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._retention_days = retention_days
        self._batch = batch

    async def execute(self) -> int:
        if self._retention_days is None:
            return 0
        cutoff = self._clock.now() - timedelta(days=self._retention_days)
        erased = 0
        while True:
            async with self._uow_factory() as uow:
                count = await uow.sweeps.delete_created_before(cutoff, self._batch)
                await uow.commit()
            erased += count
            if count < self._batch:
                break
        if erased:
            log.info("expired jobs erased", extra={"jobs": erased})
        return erased
