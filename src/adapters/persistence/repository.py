"""Jobs and outbox rows through SQLAlchemy Core on the unit of work's connection.

Each method is one or two statements; none commits (the unit of work does).
Rows are mapped to `domain.Job` here, so no SQL row ever leaves the adapter.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import (
    ColumnElement,
    Insert,
    RowMapping,
    Uuid,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from adapters.persistence.errors import translate_errors
from adapters.persistence.tables import (
    IDEMPOTENCY_CONSTRAINT,
    UtcDateTime,
    callback_deliveries,
    jobs,
    outbox,
)
from application.errors import ConcurrencyConflict, DuplicateIdempotencyKey
from application.ports import PageAfter
from domain import (
    CallbackDelivery,
    CallbackStatus,
    ErrorCode,
    Job,
    JobError,
    JobStatus,
    Step,
    Usage,
)

# Never rewritten by `save`: set once at submit (input_text is up to 200,000 chars).
_IMMUTABLE = frozenset(
    {"event_id", "owner", "input_text", "created_at", "idempotency_key", "request_fingerprint"}
)


def job_to_row(job: Job) -> dict[str, Any]:
    """The column values of `job` (keys are the `jobs` column names)."""
    return {
        "event_id": job.event_id,
        "owner": job.owner,
        "input_text": job.input_text,
        "status": job.status.value,
        "step": job.step.value if job.step is not None else None,
        "summary": job.summary,
        "checklist": list(job.checklist) if job.checklist is not None else None,
        "error_code": job.error.code.value if job.error is not None else None,
        "error_message": job.error.message if job.error is not None else None,
        "attempts": job.attempts,
        "deliveries": job.deliveries,
        "metadata": dict(job.metadata),
        "prompt_tokens": job.usage.prompt_tokens,
        "completion_tokens": job.usage.completion_tokens,
        "total_tokens": job.usage.total_tokens,
        "callback_url": job.callback_url,
        "idempotency_key": job.idempotency_key,
        "request_fingerprint": job.request_fingerprint,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "lease_expires_at": job.lease_expires_at,
        "version": job.version,
    }


_CB = callback_deliveries.c
# The job's callback state, read with it (LEFT JOIN), under prefixed names.
_CALLBACK_COLUMNS = [c.label(f"cb_{c.name}") for c in callback_deliveries.c if c.name != "event_id"]
_WITH_CALLBACK = jobs.outerjoin(callback_deliveries, _CB.event_id == jobs.c.event_id)


def delivery_to_row(delivery: CallbackDelivery) -> dict[str, Any]:
    return {
        "event_id": delivery.event_id,
        "webhook_id": delivery.webhook_id,
        "event_type": delivery.event_type,
        "occurred_at": delivery.occurred_at,
        "status": delivery.status.value,
        "attempts": delivery.attempts,
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "next_attempt_at": delivery.next_attempt_at,
        "delivered_at": delivery.delivered_at,
    }


def row_to_delivery(row: RowMapping, prefix: str = "") -> CallbackDelivery:
    return CallbackDelivery(
        event_id=row["event_id"],
        webhook_id=row[f"{prefix}webhook_id"],
        event_type=row[f"{prefix}event_type"],
        occurred_at=row[f"{prefix}occurred_at"],
        status=CallbackStatus(row[f"{prefix}status"]),
        attempts=row[f"{prefix}attempts"],
        last_status_code=row[f"{prefix}last_status_code"],
        last_error=row[f"{prefix}last_error"],
        next_attempt_at=row[f"{prefix}next_attempt_at"],
        delivered_at=row[f"{prefix}delivered_at"],
    )


def row_to_job(row: RowMapping) -> Job:
    """The `Job` a `jobs` row holds (with its callback, when the row has those columns)."""
    error_code = row["error_code"]
    checklist = row["checklist"]
    return Job(
        event_id=row["event_id"],
        owner=row["owner"],
        input_text=row["input_text"],
        status=JobStatus(row["status"]),
        step=Step(row["step"]) if row["step"] is not None else None,
        summary=row["summary"],
        checklist=tuple(checklist) if checklist is not None else None,
        error=(
            JobError(ErrorCode(error_code), row["error_message"] or "")
            if error_code is not None
            else None
        ),
        attempts=row["attempts"],
        deliveries=row["deliveries"],
        metadata=dict(row["metadata"] or {}),
        usage=Usage(row["prompt_tokens"], row["completion_tokens"], row["total_tokens"]),
        callback_url=row["callback_url"],
        idempotency_key=row["idempotency_key"],
        request_fingerprint=row["request_fingerprint"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
        lease_expires_at=row["lease_expires_at"],
        version=row["version"],
        callback=(row_to_delivery(row, "cb_") if row.get("cb_webhook_id") is not None else None),
    )


def _is_idempotency_clash(error: IntegrityError) -> bool:
    diag = getattr(error.orig, "diag", None)  # psycopg names the constraint
    if diag is not None and getattr(diag, "constraint_name", None):
        return bool(diag.constraint_name == IDEMPOTENCY_CONSTRAINT)
    # sqlite3: "UNIQUE constraint failed: jobs.owner, jobs.idempotency_key"
    return "jobs.idempotency_key" in str(error.orig)


# Hot-path statements built once and given parameters: SQLAlchemy reuses their
# compiled form, and building a statement anew costs more than running it.
_INSERT_JOB = insert(jobs)
_INSERT_OUTBOX = insert(outbox)
_SELECT_JOB = (
    select(jobs, *_CALLBACK_COLUMNS)
    .select_from(_WITH_CALLBACK)
    .where(jobs.c.event_id == bindparam("b_event_id"))
)
# The SET clause comes from the parameters given (every column but the immutable ones).
_UPDATE_JOB = update(jobs).where(
    jobs.c.event_id == bindparam("b_event_id"), jobs.c.version == bindparam("b_version")
)


class _OnConnection:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn


class SqlJobStore(_OnConnection):
    """`JobStore` on one connection inside the unit of work's transaction."""

    def _insert(self, job: Job) -> Insert:
        """The INSERT of a keyed job: it does nothing on an idempotency clash.

        Skipping the row (rather than raising) keeps a PostgreSQL transaction
        usable, so the loser of two racing submits can read the winner's job.
        """
        row = job_to_row(job)
        target = [jobs.c.owner, jobs.c.idempotency_key]
        dialect_insert = (
            postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        )
        return (
            dialect_insert(jobs)
            .values(row)
            .on_conflict_do_nothing(index_elements=target)
            # An INSERT's rowcount is kept only on request: 0 means "skipped".
            .execution_options(preserve_rowcount=True)
        )

    @translate_errors
    async def add(self, job: Job) -> None:
        if job.idempotency_key is None:
            await self._conn.execute(_INSERT_JOB, job_to_row(job))
            return
        try:
            result = await self._conn.execute(self._insert(job))
        except IntegrityError as error:
            if _is_idempotency_clash(error):
                raise DuplicateIdempotencyKey(job.idempotency_key) from error
            raise
        if result.rowcount == 0:
            raise DuplicateIdempotencyKey(job.idempotency_key)

    @translate_errors
    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        if owner is None:
            result = await self._conn.execute(_SELECT_JOB, {"b_event_id": event_id})
        else:
            query = _SELECT_JOB.where(jobs.c.owner == owner)
            result = await self._conn.execute(query, {"b_event_id": event_id})
        row = result.mappings().one_or_none()
        return row_to_job(row) if row is not None else None

    @translate_errors
    async def save(self, job: Job) -> None:
        values = {k: v for k, v in job_to_row(job).items() if k not in _IMMUTABLE}
        values.update(version=job.version + 1, b_event_id=job.event_id, b_version=job.version)
        result = await self._conn.execute(_UPDATE_JOB, values)
        if result.rowcount == 0:
            raise ConcurrencyConflict(f"job {job.event_id} changed since version {job.version}")
        job.version += 1

    @translate_errors
    async def delete(self, job: Job) -> bool:
        await self._conn.execute(delete(outbox).where(outbox.c.event_id == job.event_id))
        result = await self._conn.execute(delete(jobs).where(jobs.c.event_id == job.event_id))
        return result.rowcount > 0


class SqlJobQueries(_OnConnection):
    """`JobQueries`: the API's reads."""

    @translate_errors
    async def get_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        query = (
            select(jobs, *_CALLBACK_COLUMNS)
            .select_from(_WITH_CALLBACK)
            .where(jobs.c.owner == owner, jobs.c.idempotency_key == key)
        )
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return row_to_job(row) if row is not None else None

    @translate_errors
    async def list_page(
        self,
        owner: str,
        statuses: Sequence[JobStatus],
        limit: int,
        after: PageAfter | None,
    ) -> list[Job]:
        # Lists never show the text (up to 200,000 characters a job): leave it in the table.
        columns = [c for c in jobs.c if c.name != "input_text"]
        query = (
            select(*columns, literal("").label("input_text"), *_CALLBACK_COLUMNS)
            .select_from(_WITH_CALLBACK)
            .where(jobs.c.owner == owner)
        )
        if statuses:
            query = query.where(jobs.c.status.in_([s.value for s in statuses]))
        if after is not None:
            query = query.where(_older_than(after))
        query = query.order_by(jobs.c.created_at.desc(), jobs.c.event_id.desc()).limit(limit)
        rows = (await self._conn.execute(query)).mappings()
        return [row_to_job(row) for row in rows]

    @translate_errors
    async def count_unfinished(self, owner: str) -> int:
        query = select(func.count()).where(
            jobs.c.owner == owner,
            jobs.c.status.in_([JobStatus.PENDING.value, JobStatus.PROCESSING.value]),
        )
        return int((await self._conn.execute(query)).scalar_one())

    @translate_errors
    async def count_by_status(self) -> Mapping[JobStatus, int]:
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        counts = dict.fromkeys(JobStatus, 0)
        for status, count in (await self._conn.execute(query)).tuples():
            counts[JobStatus(status)] = int(count)
        return counts


class SqlJobSweeps(_OnConnection):
    """`JobSweeps`: the periodic chores' batch work."""

    @translate_errors
    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        doomed = (
            select(jobs.c.event_id)
            .where(jobs.c.created_at < cutoff)
            .order_by(jobs.c.created_at)
            .limit(limit)
            .scalar_subquery()
        )
        await self._conn.execute(delete(outbox).where(outbox.c.event_id.in_(doomed)))
        result = await self._conn.execute(delete(jobs).where(jobs.c.event_id.in_(doomed)))
        return int(result.rowcount)

    @translate_errors
    async def find_unfinished(
        self, pending_idle_before: datetime, lease_expired_before: datetime, limit: int
    ) -> list[Job]:
        query = (
            select(jobs)
            .where(
                or_(
                    and_(
                        jobs.c.status == JobStatus.PENDING.value,
                        jobs.c.updated_at < pending_idle_before,
                    ),
                    and_(
                        jobs.c.status == JobStatus.PROCESSING.value,
                        jobs.c.lease_expires_at < lease_expired_before,
                    ),
                )
            )
            .order_by(jobs.c.updated_at, jobs.c.event_id)
            .limit(limit)
        )
        rows = (await self._conn.execute(query)).mappings()
        return [row_to_job(row) for row in rows]


def _older_than(after: PageAfter) -> ColumnElement[bool]:
    """Strictly after `after` in newest-first order: a row-value comparison."""
    return tuple_(jobs.c.created_at, jobs.c.event_id) < tuple_(
        literal(after.created_at, UtcDateTime()), literal(after.event_id, Uuid())
    )


class SqlOutbox:
    """`Outbox` on the unit of work's connection.

    `take_unsent` locks the rows it returns on PostgreSQL (FOR UPDATE SKIP
    LOCKED), so two relays never take the same rows; `mark_sent` then marks
    exactly the rows this instance took, not later rows for the same job.
    """

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn
        self._taken: dict[UUID, list[int]] = {}

    @translate_errors
    async def add(self, event_id: UUID, now: datetime) -> None:
        await self._conn.execute(_INSERT_OUTBOX, {"event_id": event_id, "created_at": now})

    @translate_errors
    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        query = (
            select(outbox.c.id, outbox.c.event_id)
            .where(outbox.c.sent_at.is_(None))
            .order_by(outbox.c.id)
            .limit(limit)
        )
        if created_before is not None:
            query = query.where(outbox.c.created_at < created_before)
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        taken: list[UUID] = []
        for row_id, event_id in (await self._conn.execute(query)).tuples():
            if event_id not in self._taken:
                taken.append(event_id)
            self._taken.setdefault(event_id, []).append(row_id)
        return taken

    @translate_errors
    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None:
        row_ids: list[int] = []
        untracked: list[UUID] = []  # not taken here: mark all their unsent rows
        for event_id in event_ids:
            taken = self._taken.pop(event_id, None)
            if taken is None:
                untracked.append(event_id)
            else:
                row_ids.extend(taken)
        conditions: list[ColumnElement[bool]] = []
        if row_ids:
            conditions.append(outbox.c.id.in_(row_ids))
        if untracked:
            conditions.append(outbox.c.event_id.in_(untracked))
        if not conditions:
            return
        await self._conn.execute(
            update(outbox).where(or_(*conditions), outbox.c.sent_at.is_(None)).values(sent_at=now)
        )

    @translate_errors
    async def backlog(self) -> int:
        query = select(func.count()).select_from(outbox).where(outbox.c.sent_at.is_(None))
        return int((await self._conn.execute(query)).scalar_one())


class SqlCallbackStore(_OnConnection):
    """`CallbackStore`: deliveries on the unit of work's connection.

    `take_due` locks the rows it returns on PostgreSQL (FOR UPDATE SKIP LOCKED),
    so two workers never take the same delivery.
    """

    @translate_errors
    async def schedule(self, delivery: CallbackDelivery) -> None:
        row = delivery_to_row(delivery)
        dialect_insert = (
            postgresql.insert if self._conn.dialect.name == "postgresql" else sqlite.insert
        )
        statement = dialect_insert(callback_deliveries).values(row)
        statement = statement.on_conflict_do_update(
            index_elements=[_CB.event_id],
            set_={k: v for k, v in row.items() if k != "event_id"},
        )
        await self._conn.execute(statement)

    @translate_errors
    async def save(self, delivery: CallbackDelivery) -> None:
        row = delivery_to_row(delivery)
        await self._conn.execute(
            update(callback_deliveries)
            .where(_CB.event_id == delivery.event_id)
            .values({k: v for k, v in row.items() if k != "event_id"})
        )

    @translate_errors
    async def take_due(self, now: datetime, limit: int) -> list[CallbackDelivery]:
        query = (
            select(callback_deliveries)
            .where(
                _CB.next_attempt_at <= now,
                _CB.status.in_([CallbackStatus.WAITING.value, CallbackStatus.SENDING.value]),
            )
            .order_by(_CB.next_attempt_at)
            .limit(limit)
        )
        if self._conn.dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return [row_to_delivery(row) for row in (await self._conn.execute(query)).mappings()]

    @translate_errors
    async def get(self, event_id: UUID) -> CallbackDelivery | None:
        query = select(callback_deliveries).where(_CB.event_id == event_id)
        row = (await self._conn.execute(query)).mappings().one_or_none()
        return row_to_delivery(row) if row is not None else None
