"""The cap on an owner's unfinished jobs, shared by submits and retries."""

from __future__ import annotations

from application.errors import TooManyJobsInFlight
from application.ports import UnitOfWork


async def check_inflight(uow: UnitOfWork, owner: str, cap: int | None) -> None:
    """Raise TooManyJobsInFlight when `owner` already has `cap` pending or processing
    jobs. Takes the owner's lock first (held until the transaction ends), so two
    racing requests never both see room for one more."""
    if cap is None:
        return
    await uow.jobs.lock_owner(owner)
    if await uow.queries.count_unfinished(owner) >= cap:
        raise TooManyJobsInFlight(
            f"This key already has {cap} unfinished jobs; wait for some to finish, or cancel them."
        )
