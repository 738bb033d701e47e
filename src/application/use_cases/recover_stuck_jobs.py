"""RecoverStuckJobs: give a worker to jobs whose worker died or whose message was lost."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from application.errors import ConcurrencyConflict
from application.ports import Clock, UnitOfWorkFactory
from application.use_cases.relay_outbox import RelayOutbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RecoverySettings:
    pending_redispatch_s: float = 120.0
    batch: int = 500


class RecoverStuckJobs:
    """Rules:
    - a processing job whose lease ran out goes back to pending and is dispatched again;
    - a pending job untouched for `pending_redispatch_s` is dispatched again
      (its message was lost, e.g. the broker restarted without persistence);
    - each change goes through the outbox, and a job changed meanwhile by
      someone else is left alone; running it twice at once is harmless.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        relay: RelayOutbox,
        clock: Clock,
        settings: RecoverySettings | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._relay = relay
        self._clock = clock
        self._settings = settings or RecoverySettings()

    async def execute(self) -> int:
        now = self._clock.now()
        idle_before = now - timedelta(seconds=self._settings.pending_redispatch_s)
        async with self._uow_factory() as uow:
            jobs = await uow.sweeps.find_unfinished(idle_before, now, self._settings.batch)
        recovered = 0
        for stale in jobs:
            try:
                async with self._uow_factory() as uow:
                    job = await uow.jobs.get(stale.event_id)
                    if job is None or job.version != stale.version:
                        continue
                    job.recover(now)
                    await uow.jobs.save(job)
                    await uow.outbox.add(job.event_id, now)
                    await uow.commit()
            except ConcurrencyConflict:
                continue
            recovered += 1
        if recovered:
            log.info("stuck jobs recovered", extra={"jobs": recovered})
            await self._relay.execute()
        return recovered

    async def resume_all(self) -> int:
        """At the start of an embedded server: every unfinished job left by the
        previous run needs a worker now, whatever its lease says."""
        now = self._clock.now()
        far_future = now + timedelta(days=36500)
        resumed = 0
        while True:
            async with self._uow_factory() as uow:
                # Touched jobs get updated_at = now, so the next batch skips them.
                jobs = await uow.sweeps.find_unfinished(now, far_future, self._settings.batch)
                for job in jobs:
                    job.recover(now)
                    await uow.jobs.save(job)
                    await uow.outbox.add(job.event_id, now)
                await uow.commit()
            resumed += len(jobs)
            if len(jobs) < self._settings.batch:
                return resumed
