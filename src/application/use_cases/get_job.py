"""GetJob: one job of its owner."""

from __future__ import annotations

from uuid import UUID

from application.errors import JobNotFound
from application.ports import UnitOfWorkFactory
from domain import Job


class GetJob:
    """Rules: another owner's job is reported exactly like a missing one."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, owner: str, event_id: UUID) -> Job:
        async with self._uow_factory() as uow:
            job = await uow.jobs.get(event_id, owner=owner)
        if job is None:
            raise JobNotFound(str(event_id))
        return job
