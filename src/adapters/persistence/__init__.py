"""Persistence adapter: jobs, outbox and API keys in SQL (PostgreSQL or SQLite).

SQLAlchemy Core on async connections (psycopg 3 / aiosqlite); the schema is
managed by the Alembic migrations shipped in `migrations/`. Nothing above
this package sees a `sqlalchemy.*` exception: storage failures surface as
`application.errors.StorageUnavailable`.
"""

from adapters.persistence.api_keys import SqlApiKeyStore
from adapters.persistence.engine import async_url, make_engine, masked_url, sync_url
from adapters.persistence.health import database_ready
from adapters.persistence.migrate import downgrade, upgrade
from adapters.persistence.repository import SqlJobQueries, SqlJobStore, SqlJobSweeps, SqlOutbox
from adapters.persistence.unit_of_work import SqlUnitOfWork, sql_unit_of_work_factory

__all__ = [
    "SqlApiKeyStore",
    "SqlJobQueries",
    "SqlJobStore",
    "SqlJobSweeps",
    "SqlOutbox",
    "SqlUnitOfWork",
    "async_url",
    "database_ready",
    "downgrade",
    "make_engine",
    "masked_url",
    "sql_unit_of_work_factory",
    "sync_url",
    "upgrade",
]
