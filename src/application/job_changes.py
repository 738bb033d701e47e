"""The one way to change a stored job when other writers may race: read, change, save, retry."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from uuid import UUID

from application.errors import ConcurrencyConflict
from application.ports import UnitOfWork, UnitOfWorkFactory
from domain import Job

Change = Callable[[Job, UnitOfWork], Awaitable[None]]
TRIES = 5


async def change_job(
    uow_factory: UnitOfWorkFactory,
    event_id: UUID,
    change: Change,
    *,
    owner: str | None = None,
    first_guess: Job | None = None,
    tries: int = TRIES,
) -> Job | None:
    """Apply `change` to the stored job and commit it; None when there is no such job.

    Optimistic concurrency: the save is guarded by the job's version. When another
    writer got there first (a heartbeat, a cancel, a racing retry), the job is read
    again and `change` runs again on the fresh copy, up to `tries` times; then the
    ConcurrencyConflict is raised. `change` may raise to abort (nothing is written).
    `first_guess` is a copy believed current: the first try writes it without a read.
    """
    guess = first_guess
    for attempt in range(1, tries + 1):
        async with uow_factory() as uow:
            job = guess.copy() if guess is not None else await uow.jobs.get(event_id, owner)
            guess = None
            if job is None:
                return None
            await change(job, uow)
            try:
                await uow.jobs.save(job)
                await uow.commit()
            except ConcurrencyConflict:
                if attempt == tries:
                    raise
                continue
            return job
    raise AssertionError("unreachable")  # pragma: no cover
