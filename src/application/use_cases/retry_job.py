"""RetryJob: put a failed or cancelled job back in the queue."""

from __future__ import annotations

from uuid import UUID

from application.errors import ConcurrencyConflict, JobConflict, JobNotFound
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases.relay_outbox import RelayOutbox
from domain import IllegalTransition, Job

_TRIES = 5


class RetryJob:
    """Rules:
    - only a failed or cancelled job can be retried; anything else is a conflict;
    - finished steps are kept, so a retry never pays for them twice;
    - the job and its outbox row change together; then it is dispatched.
    """

    def __init__(self, uow_factory: UnitOfWorkFactory, relay: RelayOutbox, clock: Clock) -> None:
        self._uow_factory = uow_factory
        self._relay = relay
        self._clock = clock

    async def execute(self, owner: str, event_id: UUID) -> Job:
        for _ in range(_TRIES - 1):
            try:
                return await self._attempt(owner, event_id)
            except ConcurrencyConflict:
                continue  # a racing retry or cancel: read again (a second retry gets 409)
        return await self._attempt(owner, event_id)

    async def _attempt(self, owner: str, event_id: UUID) -> Job:
        now = self._clock.now()
        async with self._uow_factory() as uow:
            job = await uow.jobs.get(event_id, owner=owner)
            if job is None:
                raise JobNotFound(str(event_id))
            try:
                job.retry(now)
            except IllegalTransition as exc:
                raise JobConflict(f"A {job.status} job cannot be retried.") from exc
            await uow.jobs.save(job)
            await uow.outbox.add(job.event_id, now)
            await uow.commit()
        await self._relay.publish_now([job.event_id])
        return job
