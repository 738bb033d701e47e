"""DeliverCallbacks: POST due callback deliveries, and record how each try went."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass
from datetime import timedelta

from application.ports import (
    CallbackBodies,
    Clock,
    Metrics,
    UnitOfWorkFactory,
    WebhookSender,
)
from domain import CallbackDelivery, CallbackStatus, Job

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CallbackSettings:
    timeout_s: float = 10.0
    backoff_base_s: float = 5.0
    backoff_max_s: float = 3 * 3600.0  # a few hours between tries at most
    max_attempts: int = 8
    batch: int = 100
    concurrency: int = 50


class DeliverCallbacks:
    """Rules:
    - a due delivery is taken for one try and held meanwhile (until twice the
      timeout has passed): a worker that dies mid-try never loses it — it is due
      again (at least once; receivers drop duplicates by `webhook-id`);
    - a 2xx answer delivers it; `410 Gone` or a refused destination fails it at
      once; any other answer, no answer, or no answer within the timeout is tried
      again after exponential backoff with full jitter (base * 2^(try-1), capped),
      up to `max_attempts` tries, then it fails;
    - a delivery whose job was erased is dropped with it (no body to send);
    - the job itself never changes, however the callback goes.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        sender: WebhookSender,
        bodies: CallbackBodies,
        clock: Clock,
        metrics: Metrics,
        settings: CallbackSettings | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._sender = sender
        self._bodies = bodies
        self._clock = clock
        self._metrics = metrics
        self._settings = settings or CallbackSettings()
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(self._settings.concurrency)

    async def execute(self) -> int:
        """One round: try every delivery due now; return how many were tried."""
        taken = await self._take_due()
        await asyncio.gather(*(self._try(delivery, job) for delivery, job in taken))
        return len(taken)

    async def _take_due(self) -> list[tuple[CallbackDelivery, Job]]:
        now = self._clock.now()
        hold = timedelta(seconds=2 * self._settings.timeout_s + 5)
        taken: list[tuple[CallbackDelivery, Job]] = []
        async with self._uow_factory() as uow:
            for delivery in await uow.callbacks.take_due(now, self._settings.batch):
                job = await uow.jobs.get(delivery.event_id)
                if job is None or job.callback_url is None:
                    continue
                delivery.start_try(now, hold)
                await uow.callbacks.save(delivery)
                taken.append((delivery, job))
            await uow.commit()
        return taken

    async def _try(self, delivery: CallbackDelivery, job: Job) -> None:
        assert job.callback_url is not None
        async with self._slots:
            result = await self._sender.send(
                job.callback_url,
                delivery.webhook_id,
                self._clock.now(),
                self._bodies(job, delivery),
            )
        now = self._clock.now()
        if result.delivered:
            assert result.status_code is not None
            delivery.succeed(result.status_code, now)
        elif result.final or delivery.attempts >= self._settings.max_attempts:
            delivery.give_up(result.status_code, result.error or "not delivered")
        else:
            delivery.try_again(
                result.status_code, result.error or "not delivered", now + self._backoff(delivery)
            )
        async with self._uow_factory() as uow:
            await uow.callbacks.save(delivery)
            await uow.commit()
        self._metrics.callback_try(delivery.status)
        log.info(
            "callback try",
            extra={
                "event_id": str(delivery.event_id),
                "webhook_id": delivery.webhook_id,
                "attempt": delivery.attempts,
                "status_code": result.status_code,
                "outcome": str(delivery.status),
            },
        )

    def _backoff(self, delivery: CallbackDelivery) -> timedelta:
        ceiling = min(
            self._settings.backoff_max_s,
            self._settings.backoff_base_s * 2 ** (delivery.attempts - 1),
        )
        return timedelta(seconds=self._rng.uniform(0, ceiling))


__all__ = ["CallbackSettings", "CallbackStatus", "DeliverCallbacks"]
