"""RetryJob: put a failed or cancelled job back in the queue."""

from __future__ import annotations

from uuid import UUID

from application.errors import JobConflict, JobNotFound
from application.job_changes import change_job
from application.ports import Clock, UnitOfWork, UnitOfWorkFactory
from application.use_cases.relay_outbox import RelayOutbox
from domain import IllegalTransition, Job


class RetryJob:
    """Rules:
    - only a failed or cancelled job can be retried; anything else is a conflict
      (of two racing retries, the second finds the job pending: 409);
    - finished steps are kept, so a retry never pays for them twice;
    - the job and its outbox row change together; then it is dispatched.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, relay: RelayOutbox, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._relay = relay
        self._clock = clock

    async def execute(self, owner: str, event_id: UUID) -> Job:
        async def retry(job: Job, uow: UnitOfWork) -> None:
            now = self._clock.now()
            try:
                job.retry(now)
            except IllegalTransition as exc:
                raise JobConflict(f"A {job.status} job cannot be retried.") from exc
            await uow.outbox.add(job.event_id, now)

        job = await change_job(self._uow_factory, event_id, retry, owner=owner)
        if job is None:
            raise JobNotFound(str(event_id))
        await self._relay.publish_now([job.event_id])
        return job
