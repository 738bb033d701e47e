"""RelayOutbox: hand stored dispatch requests to the dispatcher and mark them sent."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from uuid import UUID

from application.ports import Clock, JobDispatcher, UnitOfWorkFactory

log = logging.getLogger(__name__)


class RelayOutbox:
    """Rules:
    - a row is marked sent only after the dispatcher accepted it, so a broker
      outage leaves rows for the next run (at-least-once; claiming a job is a
      compare-and-set, so a duplicate dispatch is harmless);
    - `publish_now` is the fast path right after a commit; it never raises;
    - `execute` is the periodic catch-up; concurrent relays skip each other's
      locked rows where the store can.
    """

    def __init__(
        self, uow_factory: UnitOfWorkFactory, dispatcher: JobDispatcher, clock: Clock
    ) -> None:
        self._uow_factory = uow_factory
        self._dispatcher = dispatcher
        self._clock = clock

    async def publish_now(self, event_ids: Sequence[UUID]) -> None:
        try:
            for event_id in event_ids:
                await self._dispatcher.dispatch(event_id)
            async with self._uow_factory() as uow:
                await uow.outbox.mark_sent(event_ids, self._clock.now())
                await uow.commit()
        except Exception as exc:  # the job is committed: never fail the request now
            log.warning(
                "dispatch deferred to the outbox relay",
                extra={"error": type(exc).__name__, "jobs": len(event_ids)},
            )

    async def execute(self, limit: int = 500) -> int:
        """Publish up to `limit` unsent rows; return how many were sent."""
        async with self._uow_factory() as uow:
            event_ids = await uow.outbox.take_unsent(limit)
            if not event_ids:
                return 0
            for event_id in event_ids:
                await self._dispatcher.dispatch(event_id)
            await uow.outbox.mark_sent(event_ids, self._clock.now())
            await uow.commit()
        return len(event_ids)

    async def backlog(self) -> int:
        async with self._uow_factory() as uow:
            return await uow.outbox.backlog()
