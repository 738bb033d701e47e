"""Jobs remember their last dispatch and how often a pending one was sent again.

`dispatched_at` (when a worker was last asked to run the job) and `redispatches`
(how many times recovery re-sent it since it last became pending) let recovery
back off; existing rows start from `updated_at`, which was that time until now.
The recovery sweep's index follows: (status, dispatched_at) replaces
(status, updated_at).

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


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(
            sa.Column("redispatches", sa.Integer(), nullable=False, server_default="0")
        )
    op.execute("UPDATE jobs SET dispatched_at = updated_at")
    op.drop_index("ix_jobs_status_updated_at", table_name="jobs")
    op.create_index("ix_jobs_status_dispatched_at", "jobs", ["status", "dispatched_at"])


def downgrade() -> None:
    op.drop_index("ix_jobs_status_dispatched_at", table_name="jobs")
    op.create_index("ix_jobs_status_updated_at", "jobs", ["status", "updated_at"])
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("redispatches")
        batch.drop_column("dispatched_at")
