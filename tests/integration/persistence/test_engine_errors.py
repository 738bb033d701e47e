"""A database error never carries the statement's bound values (`hide_parameters`)."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

MARKER = "clinical-text-and-SECRET-marker"


async def test_a_failed_statement_hides_its_parameters(
    engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="sqlalchemy.engine")  # statement logging on
    with pytest.raises(DBAPIError) as caught:
        async with engine.begin() as connection:
            await connection.execute(
                sqlalchemy.text("INSERT INTO no_such_table (x) VALUES (:x)"), {"x": MARKER}
            )
    text = f"{caught.value}\n{caught.value!r}"
    assert "no_such_table" in text  # the statement is there, its values are not
    assert MARKER not in text
    assert "hidden due to hide_parameters" in text
    engine_lines = [r.getMessage() for r in caplog.records if r.name.startswith("sqlalchemy")]
    assert any("no_such_table" in line for line in engine_lines)
    assert not any(MARKER in line for line in engine_lines)
