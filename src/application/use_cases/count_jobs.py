"""CountJobs: how many jobs are in each status, across every process (for monitoring)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from application.ports import UnitOfWorkFactory
from domain import JobStatus


class CountJobs:
    """Rules: one grouped count over all jobs, answered from a cache for `cache_s`
    seconds, so a scrape every few seconds costs at most one cheap query each
    `cache_s`; every status is present (0 when none)."""

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        cache_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._uow_factory = uow_factory
        self._cache_s = cache_s
        self._monotonic = monotonic
        self._cached: tuple[float, Mapping[JobStatus, int]] | None = None

    async def execute(self) -> Mapping[JobStatus, int]:
        now = self._monotonic()
        if self._cached is not None and now - self._cached[0] < self._cache_s:
            return self._cached[1]
        async with self._uow_factory() as uow:
            counts = await uow.queries.count_by_status()
        full = {status: counts.get(status, 0) for status in JobStatus}
        self._cached = (now, full)
        return full
