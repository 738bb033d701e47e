"""Run the Alembic migrations shipped in this package, from sync code.

No alembic.ini: the configuration is built here. Migrations use the sync
drivers (sqlite3, psycopg 3), so these functions need no event loop; from
async code call them through `asyncio.to_thread`.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from adapters.persistence.engine import sync_url

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    """An Alembic `Config` for the database at `url` (any URL `make_engine` takes)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    # Handed over as an attribute, not an option: options interpolate "%",
    # which percent-encoded passwords contain.
    config.attributes["database_url"] = sync_url(url)
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Bring the schema at `url` up to `revision`."""
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Take the schema at `url` down to `revision` ("base" drops everything)."""
    command.downgrade(alembic_config(url), revision)
