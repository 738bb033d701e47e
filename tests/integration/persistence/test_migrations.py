"""The Alembic migrations: the stairway walk, and head matching `tables.py`."""

from __future__ import annotations

from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from adapters.persistence import downgrade, sync_url, upgrade
from adapters.persistence.migrate import alembic_config
from adapters.persistence.tables import metadata

EXPECTED_TABLES = {"jobs", "api_keys", "outbox", "callback_deliveries", "alembic_version"}


def revisions(url: str) -> list[tuple[str, str]]:
    """(revision, the one below it or "base"), oldest first."""
    script = ScriptDirectory.from_config(alembic_config(url))
    walk = list(script.walk_revisions("base", "heads"))
    assert walk, "no migrations found"
    pairs = []
    for rev in reversed(walk):
        down = rev.down_revision
        assert down is None or isinstance(down, str), "merge revisions need their own walk"
        pairs.append((rev.revision, down or "base"))
    return pairs


def table_names(url: str) -> set[str]:
    engine = create_engine(sync_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_there_is_a_single_head(sqlite_url: str) -> None:
    script = ScriptDirectory.from_config(alembic_config(sqlite_url))
    assert len(script.get_heads()) == 1


def test_stairway(db_url: str) -> None:
    """Each revision goes up, down one step, and up again cleanly."""
    for revision, below in revisions(db_url):
        upgrade(db_url, revision)
        downgrade(db_url, below)
        upgrade(db_url, revision)
    downgrade(db_url, "base")
    assert table_names(db_url) == {"alembic_version"}


def test_upgrade_head_creates_the_schema(db_url: str) -> None:
    upgrade(db_url)
    upgrade(db_url)  # a second run is a no-op

    assert table_names(db_url) == EXPECTED_TABLES
    engine = create_engine(sync_url(db_url))
    try:
        with engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()
    assert current == ScriptDirectory.from_config(alembic_config(db_url)).get_current_head()


def _differences(url: str) -> list[Any]:
    engine = create_engine(sync_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_tables_module(db_url: str) -> None:
    upgrade(db_url)

    assert _differences(db_url) == []


def test_the_comparison_notices_a_drift(db_url: str) -> None:
    """Guard against a comparison that can never fail."""
    upgrade(db_url)
    engine = create_engine(sync_url(db_url))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("DROP INDEX ix_jobs_status_dispatched_at")
    finally:
        engine.dispose()

    kinds = [diff[0] for diff in _differences(db_url)]
    assert kinds == ["add_index"]


def test_offline_sql_can_be_rendered(
    sqlite_url: str, pg_admin_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for url in (sqlite_url, pg_admin_url):
        command.upgrade(alembic_config(url), "head", sql=True)
        assert "CREATE TABLE jobs" in capsys.readouterr().out
