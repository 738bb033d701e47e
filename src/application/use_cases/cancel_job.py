"""CancelJob: stop a pending or processing job."""

from __future__ import annotations

from uuid import UUID

from application.errors import JobConflict, JobNotFound
from application.job_changes import change_job
from application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from domain import IllegalTransition, Job


class CancelJob:
    """Rules:
    - only a pending or processing job can be cancelled; a terminal one is a conflict;
    - a running worker sees the cancel at its next step boundary and never
      overwrites it (its saves are guarded by the job's version and status);
    - a concurrent change (a worker's heartbeat, say) is retried, not reported.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, owner: str, event_id: UUID) -> Job:
        async def cancel(job: Job, _: UnitOfWork) -> None:
            try:
                job.cancel(self._clock.now())
            except IllegalTransition as exc:
                raise JobConflict(f"A {job.status} job cannot be cancelled.") from exc

        job = await change_job(self._uow_factory, event_id, cancel, owner=owner)
        if job is None:
            raise JobNotFound(str(event_id))
        return job
