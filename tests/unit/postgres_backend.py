"""The PostgreSQL storage backend of the unit tests: the production SQL unit of work
on a migrated database that every test finds empty.

A fresh database per test would cost about 3 s here (CREATE DATABASE ... TEMPLATE
plus DROP, measured on the CI machine), so the session migrates one database and
each test starts by emptying its tables (a few milliseconds).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import psycopg
import pytest
from psycopg import sql
from sqlalchemy import event, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence import make_engine, sql_unit_of_work_factory, upgrade
from adapters.persistence.tables import outbox
from application.ports import UnitOfWork

PG_SERVER = os.environ.get("GI_TEST_PG_SERVER", "postgres@127.0.0.1:5432")


class PostgresUnitOfWorkFactory:
    """`sql_unit_of_work_factory(engine)`, plus what the tests read besides the ports:
    the outbox rows and how many transactions committed."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.commits = 0
        self._factory = sql_unit_of_work_factory(engine)
        event.listen(engine.sync_engine, "commit", self._counted)

    def _counted(self, _conn: Any) -> None:
        self.commits += 1

    def __call__(self) -> UnitOfWork:
        return self._factory()

    async def outbox_rows(self) -> list[tuple[UUID, bool]]:
        """Every committed outbox row, oldest first: (job, sent?)."""
        query = select(outbox.c.event_id, outbox.c.sent_at.is_not(None)).order_by(outbox.c.id)
        async with self.engine.connect() as conn:
            return [(event_id, bool(sent)) for event_id, sent in await conn.execute(query)]


def _admin(query: sql.Composable) -> None:
    url = f"postgresql://{PG_SERVER}/postgres"
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(query)
    except psycopg.OperationalError as error:
        pytest.fail(f"PostgreSQL is not reachable at {PG_SERVER}: {error}", pytrace=False)


@pytest.fixture(scope="session")
def unit_database_url() -> Iterator[str]:
    """One migrated database for the session's PostgreSQL unit tests, dropped at the end."""
    name = f"gi_unit_{uuid.uuid4().hex[:16]}"
    _admin(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = f"postgresql://{PG_SERVER}/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        _admin(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


async def empty_database(url: str) -> AsyncEngine:
    """An engine on `url` whose tables were just emptied."""
    engine = make_engine(url, pool_size=4)
    async with engine.begin() as conn:
        await conn.execute(text("DELETE FROM api_keys"))
        await conn.execute(text("DELETE FROM outbox"))
        await conn.execute(text("DELETE FROM jobs"))
    return engine
