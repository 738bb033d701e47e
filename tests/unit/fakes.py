"""Fakes we own for our own ports: in-memory storage, a controllable clock and ids."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Self
from uuid import UUID

from application.errors import ConcurrencyConflict, DuplicateIdempotencyKey
from application.ports import PageAfter
from domain import ApiKey, CallbackDelivery, Job, JobStatus


class FakeClock:
    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 11, 28, 10, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class SequentialIds:
    def __init__(self) -> None:
        self._counter = itertools.count(1)

    def new_id(self) -> UUID:
        return UUID(int=next(self._counter))


@dataclasses.dataclass(slots=True)
class OutboxRow:
    id: int
    event_id: UUID
    created_at: datetime
    sent_at: datetime | None = None


class InMemoryStore:
    """The 'database': committed state shared by every unit of work, and the row locks
    that open units of work hold on the jobs they wrote."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, Job] = {}
        self.outbox: list[OutboxRow] = []
        self.commits = 0
        self.locks: dict[UUID, FakeUnitOfWork] = {}
        self.callbacks: dict[UUID, CallbackDelivery] = {}
        self.row_ids = itertools.count(1)


class InMemoryJobRepository:
    """The three job ports on one unit of work, with PostgreSQL's READ COMMITTED rules:

    - a read sees the latest committed state plus this unit of work's own writes;
    - `save` is the versioned UPDATE: it waits for a row lock another open unit of
      work holds, then compares the version with the latest committed one, and raises
      ConcurrencyConflict there (never later, at commit);
    - deleting a job deletes its outbox rows (the foreign key cascades).
    """

    def __init__(self, unit: FakeUnitOfWork) -> None:
        self._unit = unit

    async def add(self, job: Job) -> None:
        unit = self._unit
        if job.idempotency_key is not None and any(
            j.owner == job.owner and j.idempotency_key == job.idempotency_key
            for j in unit.visible_jobs()
        ):
            raise DuplicateIdempotencyKey(job.idempotency_key)
        if unit.visible_job(job.event_id) is not None:
            raise DuplicateIdempotencyKey(str(job.event_id))  # the primary key
        await unit.lock(job.event_id)
        unit.deleted.discard(job.event_id)
        unit.written[job.event_id] = job.copy()
        unit.added.add(job.event_id)

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        job = self._unit.visible_job(event_id)
        if job is None or (owner is not None and job.owner != owner):
            return None
        found = job.copy()
        delivery = self._unit.visible_callback(event_id)  # read with the job, like SQL's join
        found.callback = delivery.copy() if delivery is not None else None
        return found

    async def lock_owner(self, owner: str) -> None:
        return None  # no await between the count and the write here: nothing can slip in

    async def get_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        for job in self._unit.visible_jobs():
            if job.owner == owner and job.idempotency_key == key:
                return job.copy()
        return None

    async def list_page(
        self, owner: str, statuses: Sequence[JobStatus], limit: int, after: PageAfter | None
    ) -> list[Job]:
        jobs = sorted(
            (j for j in self._unit.visible_jobs() if j.owner == owner),
            key=lambda j: (j.created_at, j.event_id),
            reverse=True,
        )
        if statuses:
            jobs = [j for j in jobs if j.status in statuses]
        if after is not None:
            jobs = [
                j for j in jobs if (j.created_at, j.event_id) < (after.created_at, after.event_id)
            ]
        return [dataclasses.replace(j.copy(), input_text="") for j in jobs[:limit]]

    async def save(self, job: Job) -> None:
        await self._unit.lock(job.event_id)
        current = self._unit.visible_job(job.event_id)  # after the wait: the latest commit
        if current is None or current.version != job.version:
            raise ConcurrencyConflict(str(job.event_id))
        job.version += 1
        self._unit.written[job.event_id] = job.copy()

    async def delete(self, job: Job) -> bool:
        return await self._erase(job.event_id)

    async def _erase(self, event_id: UUID) -> bool:
        await self._unit.lock(event_id)
        existed = self._unit.visible_job(event_id) is not None
        self._unit.written.pop(event_id, None)
        self._unit.added.discard(event_id)
        self._unit.deleted.add(event_id)
        return existed

    async def count_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for job in self._unit.visible_jobs():
            counts[job.status] += 1
        return counts

    async def count_unfinished(self, owner: str) -> int:
        unfinished = {JobStatus.PENDING, JobStatus.PROCESSING}
        return sum(
            1 for j in self._unit.visible_jobs() if j.owner == owner and j.status in unfinished
        )

    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        doomed = sorted(
            (j for j in self._unit.visible_jobs() if j.created_at < cutoff),
            key=lambda j: j.created_at,
        )[:limit]
        for job in doomed:
            await self._erase(job.event_id)
        return len(doomed)

    async def find_unfinished(
        self,
        pending_idle_before: Sequence[datetime],
        lease_expired_before: datetime,
        limit: int,
    ) -> list[Job]:
        def idle(job: Job) -> bool:
            cutoff = pending_idle_before[min(job.redispatches, len(pending_idle_before) - 1)]
            return job.dispatched_at is not None and job.dispatched_at < cutoff

        found = sorted(
            (
                j.copy()
                for j in self._unit.visible_jobs()
                if (j.status is JobStatus.PENDING and idle(j))
                or (
                    j.status is JobStatus.PROCESSING
                    and j.lease_expires_at is not None
                    and j.lease_expires_at < lease_expired_before
                )
            ),
            key=lambda j: (j.updated_at, j.event_id),
        )
        return found[:limit]


class InMemoryOutbox:
    """Outbox rows with their times, like the SQL table: `take_unsent` honours
    `created_before`, and `mark_sent` marks the rows this instance took."""

    def __init__(self, unit: FakeUnitOfWork) -> None:
        self._unit = unit
        self._taken: dict[UUID, list[int]] = {}

    async def add(self, event_id: UUID, now: datetime) -> None:
        if self._unit.visible_job(event_id) is None:
            raise LookupError(f"outbox row for a missing job {event_id}")  # the foreign key
        self._unit.new_rows.append(OutboxRow(next(self._unit.store.row_ids), event_id, now))

    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        rows = [
            r
            for r in self._unit.visible_rows()
            if r.sent_at is None and (created_before is None or r.created_at < created_before)
        ][:limit]
        taken: list[UUID] = []
        for row in rows:
            if row.event_id not in self._taken:
                taken.append(row.event_id)
            self._taken.setdefault(row.event_id, []).append(row.id)
        return taken

    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None:
        row_ids: set[int] = set()
        untracked: set[UUID] = set()
        for event_id in event_ids:
            taken = self._taken.pop(event_id, None)
            if taken is None:
                untracked.add(event_id)
            else:
                row_ids.update(taken)
        for row in self._unit.visible_rows():
            if row.sent_at is None and (row.id in row_ids or row.event_id in untracked):
                self._unit.sent[row.id] = now

    async def backlog(self) -> int:
        return sum(1 for r in self._unit.visible_rows() if r.sent_at is None)


class InMemoryCallbackStore:
    """`CallbackStore`: staged on the unit of work, gone with its job (ON DELETE CASCADE)."""

    def __init__(self, unit: FakeUnitOfWork) -> None:
        self._unit = unit

    async def schedule(self, delivery: CallbackDelivery) -> None:
        self._unit.callbacks_written[delivery.event_id] = delivery.copy()

    async def save(self, delivery: CallbackDelivery) -> None:
        if self._unit.visible_callback(delivery.event_id) is not None:
            self._unit.callbacks_written[delivery.event_id] = delivery.copy()

    async def take_due(self, now: datetime, limit: int) -> list[CallbackDelivery]:
        ids = self._unit.store.callbacks.keys() | self._unit.callbacks_written.keys()
        due = [
            d
            for event_id in ids
            if (d := self._unit.visible_callback(event_id)) is not None and d.is_due(now)
        ]
        due.sort(key=lambda d: d.next_attempt_at or now)
        return [d.copy() for d in due[:limit]]

    async def get(self, event_id: UUID) -> CallbackDelivery | None:
        delivery = self._unit.visible_callback(event_id)
        return delivery.copy() if delivery is not None else None

    async def delete_sent_before(self, cutoff: datetime, limit: int) -> int:
        # The fake keeps no times (see take_unsent): it prunes nothing.
        return 0


class FakeUnitOfWork:
    """One transaction: its writes are staged here and published to the store by
    `commit`; leaving the block without a commit drops them. Row locks taken by its
    writes are held until then, so a rival's save waits, as on PostgreSQL."""

    def __init__(self, store: InMemoryStore) -> None:
        self.store = store
        self.written: dict[UUID, Job] = {}
        self.added: set[UUID] = set()
        self.deleted: set[UUID] = set()
        self.new_rows: list[OutboxRow] = []
        self.sent: dict[int, datetime] = {}
        self._done = asyncio.Event()
        # One in-memory class plays the three job ports (store, queries, sweeps).
        self.jobs = self.queries = self.sweeps = InMemoryJobRepository(self)
        self.outbox = InMemoryOutbox(self)
        self.callbacks_written: dict[UUID, CallbackDelivery] = {}
        self.callbacks = InMemoryCallbackStore(self)

    # -- what this transaction sees ------------------------------------------------

    def visible_job(self, event_id: UUID) -> Job | None:
        if event_id in self.deleted:
            return None
        return self.written.get(event_id) or self.store.jobs.get(event_id)

    def visible_callback(self, event_id: UUID) -> CallbackDelivery | None:
        if self.visible_job(event_id) is None:
            return None
        return self.callbacks_written.get(event_id) or self.store.callbacks.get(event_id)

    def visible_jobs(self) -> list[Job]:
        ids = (self.store.jobs.keys() | self.written.keys()) - self.deleted
        return [job for event_id in ids if (job := self.visible_job(event_id)) is not None]

    def visible_rows(self) -> list[OutboxRow]:
        rows = [
            dataclasses.replace(r, sent_at=self.sent.get(r.id, r.sent_at))
            for r in (*self.store.outbox, *self.new_rows)
            if r.event_id not in self.deleted
        ]
        return sorted(rows, key=lambda r: r.id)

    async def lock(self, event_id: UUID) -> None:
        """Take the row lock on `event_id`, waiting while another unit of work holds it."""
        while (holder := self.store.locks.get(event_id)) is not None and holder is not self:
            await holder._done.wait()
        self.store.locks[event_id] = self

    # -- the transaction -----------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._finish()

    async def commit(self) -> None:
        store = self.store
        for event_id in self.added:
            job = self.written.get(event_id)
            clash = event_id in store.jobs or (
                job is not None
                and job.idempotency_key is not None
                and any(
                    j.owner == job.owner and j.idempotency_key == job.idempotency_key
                    for j in store.jobs.values()
                )
            )
            if clash:  # another unit of work committed the same key in between
                self._finish()
                raise DuplicateIdempotencyKey(str(event_id))
        for event_id in self.deleted:
            store.jobs.pop(event_id, None)
        for event_id, job in self.written.items():
            store.jobs[event_id] = job.copy()
        store.outbox[:] = [
            dataclasses.replace(r, sent_at=self.sent.get(r.id, r.sent_at))
            for r in (*store.outbox, *self.new_rows)
            if r.event_id not in self.deleted
        ]
        store.callbacks.update(self.callbacks_written)
        for event_id in list(store.callbacks):
            if event_id not in store.jobs:
                del store.callbacks[event_id]
        store.commits += 1
        self._finish()

    def _finish(self) -> None:
        """Drop what is staged and release the row locks."""
        for event_id, holder in list(self.store.locks.items()):
            if holder is self:
                del self.store.locks[event_id]
        self.written, self.added, self.deleted = {}, set(), set()
        self.new_rows, self.sent = [], {}
        self.callbacks_written = {}
        self._done.set()


class FakeUnitOfWorkFactory:
    """The in-memory storage backend of the unit tests."""

    def __init__(self) -> None:
        self.store = InMemoryStore()

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)

    @property
    def commits(self) -> int:
        return self.store.commits

    async def outbox_rows(self) -> list[tuple[UUID, bool]]:
        """Every committed outbox row, oldest first: (job, sent?)."""
        return [(r.event_id, r.sent_at is not None) for r in self.store.outbox]


class RecordingDispatcher:
    def __init__(self) -> None:
        self.dispatched: list[UUID] = []
        self.broken = False

    async def dispatch(self, event_id: UUID) -> None:
        if self.broken:
            raise OSError("broker down")
        self.dispatched.append(event_id)


class InMemoryApiKeyStore:
    def __init__(self) -> None:
        self.keys: dict[str, ApiKey] = {}

    async def add(self, key: ApiKey) -> None:
        self.keys[key.key_id] = key

    async def get(self, key_id: str) -> ApiKey | None:
        return self.keys.get(key_id)

    async def all(self) -> list[ApiKey]:
        return list(self.keys.values())

    async def revoke(self, key_id: str, now: datetime) -> bool:
        key = self.keys.get(key_id)
        if key is None or key.revoked_at is not None:
            return False
        self.keys[key_id] = ApiKey(key.key_id, key.owner, key.secret_hash, key.created_at, now)
        return True
