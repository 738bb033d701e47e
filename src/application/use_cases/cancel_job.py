"""CancelJob: stop a pending or processing job."""

from __future__ import annotations

from uuid import UUID

from application.errors import ConcurrencyConflict, JobConflict, JobNotFound
from application.ports import Clock, Metrics, NoMetrics, UnitOfWorkFactory
from domain import IllegalTransition, Job

_TRIES = 5


class CancelJob:
    """Rules:
    - only a pending or processing job can be cancelled; a terminal one is a conflict;
    - a running worker sees the cancel at its next step boundary and never
      overwrites it (it re-reads the job before saving a step);
    - a concurrent change (a worker's heartbeat, say) is retried, not reported.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, clock: Clock, metrics: Metrics | None = None
    ) -> None:
        self._uow_factory = uow_factory
        self._clock = clock
        self._metrics = metrics or NoMetrics()

    async def execute(self, owner: str, event_id: UUID) -> Job:
        for _ in range(_TRIES - 1):
            try:
                return await self._attempt(owner, event_id)
            except ConcurrencyConflict:
                continue
        return await self._attempt(owner, event_id)

    async def _attempt(self, owner: str, event_id: UUID) -> Job:
        async with self._uow_factory() as uow:
            job = await uow.jobs.get(event_id, owner=owner)
            if job is None:
                raise JobNotFound(str(event_id))
            try:
                job.cancel(self._clock.now())
            except IllegalTransition as exc:
                raise JobConflict(f"A {job.status} job cannot be cancelled.") from exc
            await uow.jobs.save(job)
            await uow.commit()
        self._metrics.job_reached(job.status)
        return job
