"""One transaction per use case, over every store it touches."""

from __future__ import annotations

from types import TracebackType
from typing import Protocol, Self

from application.ports.callbacks import CallbackStore
from application.ports.jobs import JobQueries, JobStore, JobSweeps
from application.ports.outbox import Outbox


class UnitOfWork(Protocol):
    """One transaction. Rolls back on exit unless `commit` was called."""

    jobs: JobStore
    queries: JobQueries
    sweeps: JobSweeps
    outbox: Outbox
    callbacks: CallbackStore

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def commit(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self) -> UnitOfWork: ...
