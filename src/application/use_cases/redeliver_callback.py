"""RedeliverCallback: send a finished job's callback again (a new try of the same event)."""

from __future__ import annotations

from uuid import UUID

from application.errors import JobConflict, JobNotFound, NoCallback
from application.ports import Clock, UnitOfWorkFactory
from domain import CallbackDelivery, Job


class RedeliverCallback:
    """Rules: only the owner; a job without `callback_url` has nothing to redeliver
    (NoCallback, 404); a job that is not finished yet is a conflict (its callback
    comes when it finishes); otherwise the delivery starts a new round of tries at
    once, with the same `webhook-id` (a job finished before deliveries were
    recorded gets its first one now)."""

    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._clock = clock

    async def execute(self, owner: str, event_id: UUID) -> Job:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            job = await uow.jobs.get(event_id, owner=owner)
            if job is None:
                raise JobNotFound(str(event_id))
            if job.callback_url is None:
                raise NoCallback("This job has no callback_url.")
            if not job.status.is_terminal:
                raise JobConflict(f"A {job.status} job has no callback to send yet.")
            if job.callback is None:
                job.callback = CallbackDelivery.for_event(
                    job.event_id, job.status, f"msg_{job.event_id.hex}", now
                )
                await uow.callbacks.schedule(job.callback)
            else:
                job.callback.redeliver(now)
                await uow.callbacks.save(job.callback)
            await uow.commit()
        return job
