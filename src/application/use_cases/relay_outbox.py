"""RelayOutbox: hand stored dispatch requests to the dispatcher and mark them sent."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import timedelta
from uuid import UUID

from application.null_metrics import NoMetrics
from application.ports import Clock, JobDispatcher, Metrics, UnitOfWorkFactory

log = logging.getLogger(__name__)

# The fast path publishes within milliseconds of the commit; older rows are strays.
CATCH_UP_MIN_AGE_S = 5.0


class RelayOutbox:
    """Rules:
    - a row is marked sent only after the dispatcher accepted it, so a broker
      outage leaves rows for the next run (at-least-once; claiming a job is a
      compare-and-set, so a duplicate dispatch is harmless);
    - `publish_now` is the fast path right after a commit; it never raises.
      The rows it published are marked sent together, a moment later, in one
      transaction for all the requests of that moment (`flush`); rows left
      unmarked by a crash are published again by the catch-up (harmless);
    - `catch_up` is the periodic run: it leaves rows younger than
      `CATCH_UP_MIN_AGE_S` to the fast path that is publishing them right now
      (else a job would often be published twice); concurrent relays skip each
      other's locked rows where the store can.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        dispatcher: JobDispatcher,
        clock: Clock,
        mark_delay_s: float = 0.05,
        metrics: Metrics | None = None,
    ) -> None:
        self._metrics = metrics or NoMetrics()
        self._uow_factory = uow_factory
        self._dispatcher = dispatcher
        self._clock = clock
        self._mark_delay_s = mark_delay_s
        self._published: list[UUID] = []
        self._marking: asyncio.Task[None] | None = None

    async def publish_now(self, event_ids: Sequence[UUID]) -> None:
        try:
            for event_id in event_ids:
                await self._dispatcher.dispatch(event_id)
        except Exception as exc:  # the job is committed: never fail the request now
            log.warning(
                "dispatch deferred to the outbox relay",
                extra={"error": type(exc).__name__, "jobs": len(event_ids)},
            )
            return
        self._published.extend(event_ids)
        if self._marking is None or self._marking.done():
            self._marking = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._mark_delay_s)
        await self.flush()

    async def flush(self) -> None:
        """Mark what the fast path published as sent (also called at shutdown)."""
        batch, self._published = self._published, []
        if not batch:
            return
        try:
            async with self._uow_factory() as uow:
                await uow.outbox.mark_sent(batch, self._clock.now())
                await uow.commit()
        except Exception as exc:  # the rows stay unsent: the catch-up sends them again
            log.warning("marking outbox rows sent failed", extra={"error": type(exc).__name__})

    async def catch_up(self) -> int:
        sent = await self.execute(min_age_s=CATCH_UP_MIN_AGE_S)
        self._metrics.outbox_backlog(await self.backlog())
        return sent

    async def execute(self, limit: int = 500, min_age_s: float = 0.0) -> int:
        """Publish up to `limit` unsent rows at least `min_age_s` old; return how many."""
        created_before = self._clock.now() - timedelta(seconds=min_age_s) if min_age_s else None
        async with self._uow_factory() as uow:
            event_ids = await uow.outbox.take_unsent(limit, created_before)
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
