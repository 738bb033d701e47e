"""The schema as SQLAlchemy Core tables; the migrations must match it (a test checks)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    Uuid,
)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware timestamp that always comes back as UTC.

    SQLite keeps no offset, so naive values read back are UTC by contract;
    naive values are refused on write so nothing local-time slips in.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass a timezone-aware UTC value")
        return value.astimezone(UTC)

    def process_result_value(self, value: Any | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        assert isinstance(value, datetime)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

IDEMPOTENCY_CONSTRAINT = "uq_jobs_owner_idempotency_key"

jobs = Table(
    "jobs",
    metadata,
    Column("event_id", Uuid(), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("input_text", Text(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(16), nullable=True),
    Column("summary", Text(), nullable=True),
    # none_as_null: "no checklist yet" is SQL NULL, not the JSON value null.
    Column("checklist", JSON(none_as_null=True), nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error_message", Text(), nullable=True),
    Column("attempts", Integer(), nullable=False),
    Column("deliveries", Integer(), nullable=False),
    Column("metadata", JSON(), nullable=False),
    Column("prompt_tokens", Integer(), nullable=False),
    Column("completion_tokens", Integer(), nullable=False),
    Column("total_tokens", Integer(), nullable=False),
    Column("callback_url", Text(), nullable=True),
    Column("idempotency_key", String(255), nullable=True),
    Column("request_fingerprint", String(128), nullable=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("started_at", UtcDateTime(), nullable=True),
    Column("finished_at", UtcDateTime(), nullable=True),
    Column("lease_expires_at", UtcDateTime(), nullable=True),
    Column("version", Integer(), nullable=False),
    # NULL keys are distinct on both dialects: jobs without a key never clash.
    UniqueConstraint("owner", "idempotency_key", name=IDEMPOTENCY_CONSTRAINT),
)

# Listing: an owner's jobs newest first, keyset on (created_at, event_id).
# Both dialects scan a B-tree backwards, so ascending columns serve the
# descending order as well as DESC ones would, and stay plain columns for
# autogenerate's comparison.
Index("ix_jobs_owner_created_at_event_id", jobs.c.owner, jobs.c.created_at, jobs.c.event_id)
# Recovery sweep: pending jobs idle since a time, processing jobs by lease.
Index("ix_jobs_status_updated_at", jobs.c.status, jobs.c.updated_at)

api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String(64), primary_key=True),
    Column("owner", String(255), nullable=False),
    Column("secret_hash", String(255), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("revoked_at", UtcDateTime(), nullable=True),
)

outbox = Table(
    "outbox",
    metadata,
    # BIGINT on PostgreSQL; INTEGER on SQLite, the only type that is its rowid.
    Column(
        "id",
        BigInteger().with_variant(Integer(), "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    Column(
        "event_id",
        Uuid(),
        ForeignKey("jobs.event_id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("sent_at", UtcDateTime(), nullable=True),
)

# The relay scans unsent rows oldest first; sent rows stay out of the index.
Index(
    "ix_outbox_unsent",
    outbox.c.id,
    postgresql_where=outbox.c.sent_at.is_(None),
    sqlite_where=outbox.c.sent_at.is_(None),
)
Index("ix_outbox_event_id", outbox.c.event_id)

# One delivery per job: its latest terminal event's callback (API.md "Callbacks").
callback_deliveries = Table(
    "callback_deliveries",
    metadata,
    Column(
        "event_id",
        Uuid(),
        ForeignKey("jobs.event_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("webhook_id", String(64), nullable=False),
    Column("event_type", String(32), nullable=False),
    Column("occurred_at", UtcDateTime(), nullable=False),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("last_status_code", Integer(), nullable=True),
    Column("last_error", Text(), nullable=True),
    Column("next_attempt_at", UtcDateTime(), nullable=True),
    Column("delivered_at", UtcDateTime(), nullable=True),
)
# Workers look for due deliveries: waiting or sending ones, by time.
Index(
    "ix_callback_deliveries_next_attempt_at",
    callback_deliveries.c.next_attempt_at,
    postgresql_where=callback_deliveries.c.next_attempt_at.is_not(None),
    sqlite_where=callback_deliveries.c.next_attempt_at.is_not(None),
)
