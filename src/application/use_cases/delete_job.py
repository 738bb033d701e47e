"""DeleteJob: erase a job, its text and its outputs, for good."""

from __future__ import annotations

from uuid import UUID

from application.errors import JobNotFound
from application.ports import Clock, UnitOfWorkFactory


class DeleteJob:
    """Rules: only the owner can erase a job; an unfinished job is cancelled
    first (it counts as cancelled), then erased in the same transaction; its
    worker finds the job gone at its next step boundary and stops (it never
    recreates it)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, owner: str, event_id: UUID) -> None:
        async with self._uow_factory() as uow:
            job = await uow.jobs.get(event_id, owner=owner)
            if job is None:
                raise JobNotFound(str(event_id))
            if not job.status.is_terminal:
                job.cancel(self._clock.now())
            await uow.jobs.delete(job)
            await uow.commit()
