"""One transaction per use case, on one connection from the async engine."""

from __future__ import annotations

from types import TracebackType
from typing import Self

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from adapters.persistence.errors import storage_errors
from adapters.persistence.repository import (
    SqlCallbackStore,
    SqlJobQueries,
    SqlJobStore,
    SqlJobSweeps,
    SqlOutbox,
)
from application.errors import StorageUnavailable
from application.ports import (
    CallbackStore,
    JobQueries,
    JobStore,
    JobSweeps,
    Outbox,
    UnitOfWork,
    UnitOfWorkFactory,
)


class SqlUnitOfWork:
    """`UnitOfWork`: a connection and its transaction, open while the block runs.

    `jobs`, `queries`, `sweeps` and `outbox` exist once the block is entered. Leaving the block
    rolls back whatever was not committed and returns the connection.
    """

    jobs: JobStore
    queries: JobQueries
    sweeps: JobSweeps
    outbox: Outbox
    callbacks: CallbackStore

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._conn: AsyncConnection | None = None

    async def __aenter__(self) -> Self:
        if self._conn is not None:
            raise RuntimeError("this unit of work is already open")
        with storage_errors():
            conn = await self._engine.connect()
            try:
                await conn.begin()
            except BaseException:
                await conn.close()
                raise
        self._conn = conn
        self.jobs = SqlJobStore(conn)
        self.queries = SqlJobQueries(conn)
        self.sweeps = SqlJobSweeps(conn)
        self.outbox = SqlOutbox(conn)
        self.callbacks = SqlCallbackStore(conn)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if conn.in_transaction():
                await conn.rollback()
        except SQLAlchemyError as error:
            # A dead connection cannot roll back; its transaction is gone anyway.
            # Report that only when it is the sole failure.
            if exc is None:
                raise StorageUnavailable("the database is unavailable") from error
        finally:
            await conn.close()

    async def commit(self) -> None:
        if self._conn is None:
            raise RuntimeError("commit outside the unit of work's block")
        with storage_errors():
            await self._conn.commit()


def sql_unit_of_work_factory(engine: AsyncEngine) -> UnitOfWorkFactory:
    """A factory of units of work on `engine` (one new `SqlUnitOfWork` per call)."""

    def new_unit_of_work() -> UnitOfWork:
        return SqlUnitOfWork(engine)

    return new_unit_of_work
