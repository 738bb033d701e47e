"""Callback deliveries: one row per job, its latest terminal event's callback.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "callback_deliveries",
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("webhook_id", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(32), nullable=False),
        sa.Column("occurred_at", _TS, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("next_attempt_at", _TS, nullable=True),
        sa.Column("delivered_at", _TS, nullable=True),
        sa.PrimaryKeyConstraint("event_id", name="pk_callback_deliveries"),
        sa.ForeignKeyConstraint(
            ["event_id"],
            ["jobs.event_id"],
            name="fk_callback_deliveries_event_id_jobs",
            ondelete="CASCADE",
        ),
    )
    due = sa.text("next_attempt_at IS NOT NULL")
    op.create_index(
        "ix_callback_deliveries_next_attempt_at",
        "callback_deliveries",
        ["next_attempt_at"],
        postgresql_where=due,
        sqlite_where=due,
    )


def downgrade() -> None:
    op.drop_index("ix_callback_deliveries_next_attempt_at", table_name="callback_deliveries")
    op.drop_table("callback_deliveries")
