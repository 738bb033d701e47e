"""Fakes we own for our own ports: in-memory storage, a controllable clock and ids."""

from __future__ import annotations

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


class InMemoryStore:
    """The 'database': committed state shared by every unit of work."""

    def __init__(self) -> None:
        self.jobs: dict[UUID, Job] = {}
        self.outbox: list[tuple[UUID, bool]] = []
        self.callbacks: dict[UUID, CallbackDelivery] = {}
        self.commits = 0


class InMemoryJobRepository:
    def __init__(
        self,
        staged: dict[UUID, Job],
        deleted: set[UUID],
        dirty: set[UUID],
        callbacks: dict[UUID, CallbackDelivery] | None = None,
    ) -> None:
        self._staged = staged
        self._deleted = deleted
        self._dirty = dirty
        self._callbacks = callbacks if callbacks is not None else {}

    async def add(self, job: Job) -> None:
        if job.idempotency_key is not None and any(
            j.owner == job.owner and j.idempotency_key == job.idempotency_key
            for j in self._staged.values()
        ):
            raise DuplicateIdempotencyKey(job.idempotency_key)
        self._staged[job.event_id] = job.copy()
        self._dirty.add(job.event_id)

    async def get(self, event_id: UUID, owner: str | None = None) -> Job | None:
        job = self._staged.get(event_id)
        if job is None or (owner is not None and job.owner != owner):
            return None
        found = job.copy()
        delivery = self._callbacks.get(event_id)  # read with the job, like SQL's join
        found.callback = delivery.copy() if delivery is not None else None
        return found

    async def get_by_idempotency_key(self, owner: str, key: str) -> Job | None:
        for job in self._staged.values():
            if job.owner == owner and job.idempotency_key == key:
                return job.copy()
        return None

    async def list_page(
        self, owner: str, statuses: Sequence[JobStatus], limit: int, after: PageAfter | None
    ) -> list[Job]:
        jobs = sorted(
            (j for j in self._staged.values() if j.owner == owner),
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
        current = self._staged.get(job.event_id)
        if current is None or current.version != job.version:
            raise ConcurrencyConflict(str(job.event_id))
        job.version += 1
        self._staged[job.event_id] = job.copy()
        self._dirty.add(job.event_id)

    async def delete(self, job: Job) -> bool:
        return self._erase(job.event_id)

    def _erase(self, event_id: UUID) -> bool:
        self._deleted.add(event_id)
        return self._staged.pop(event_id, None) is not None

    async def count_by_status(self) -> dict[JobStatus, int]:
        counts = dict.fromkeys(JobStatus, 0)
        for job in self._staged.values():
            counts[job.status] += 1
        return counts

    async def count_unfinished(self, owner: str) -> int:
        unfinished = {JobStatus.PENDING, JobStatus.PROCESSING}
        return sum(1 for j in self._staged.values() if j.owner == owner and j.status in unfinished)

    async def delete_created_before(self, cutoff: datetime, limit: int) -> int:
        doomed = sorted(
            (j for j in self._staged.values() if j.created_at < cutoff), key=lambda j: j.created_at
        )[:limit]
        for job in doomed:
            self._erase(job.event_id)
        return len(doomed)

    async def find_unfinished(
        self, pending_idle_before: datetime, lease_expired_before: datetime, limit: int
    ) -> list[Job]:
        found = [
            j.copy()
            for j in self._staged.values()
            if (j.status is JobStatus.PENDING and j.updated_at < pending_idle_before)
            or (
                j.status is JobStatus.PROCESSING
                and j.lease_expires_at is not None
                and j.lease_expires_at < lease_expired_before
            )
        ]
        return found[:limit]


class InMemoryOutbox:
    def __init__(self, rows: list[tuple[UUID, bool]]) -> None:
        self._rows = rows

    async def add(self, event_id: UUID, now: datetime) -> None:
        self._rows.append((event_id, False))

    async def take_unsent(self, limit: int, created_before: datetime | None = None) -> list[UUID]:
        # The fake keeps no times: every row counts as old enough.
        return [event_id for event_id, sent in self._rows if not sent][:limit]

    async def mark_sent(self, event_ids: Sequence[UUID], now: datetime) -> None:
        wanted = set(event_ids)
        self._rows[:] = [(e, sent or e in wanted) for e, sent in self._rows]

    async def backlog(self) -> int:
        return sum(1 for _, sent in self._rows if not sent)


class InMemoryCallbackStore:
    def __init__(self, rows: dict[UUID, CallbackDelivery], jobs: dict[UUID, Job]) -> None:
        self._rows = rows
        self._jobs = jobs

    async def schedule(self, delivery: CallbackDelivery) -> None:
        self._rows[delivery.event_id] = delivery.copy()

    async def save(self, delivery: CallbackDelivery) -> None:
        if delivery.event_id in self._rows:
            self._rows[delivery.event_id] = delivery.copy()

    async def take_due(self, now: datetime, limit: int) -> list[CallbackDelivery]:
        due = sorted(
            (d for d in self._rows.values() if d.is_due(now) and d.event_id in self._jobs),
            key=lambda d: d.next_attempt_at or now,
        )
        return [d.copy() for d in due[:limit]]

    async def get(self, event_id: UUID) -> CallbackDelivery | None:
        delivery = self._rows.get(event_id)
        return delivery.copy() if delivery is not None else None


class FakeUnitOfWork:
    """Stages changes on copies; `commit` publishes them to the store, like a transaction."""

    def __init__(self, store: InMemoryStore) -> None:
        self._store = store
        self._jobs = {k: v.copy() for k, v in store.jobs.items()}
        self._versions_read = {k: v.version for k, v in store.jobs.items()}
        self._outbox = list(store.outbox)
        self._deleted: set[UUID] = set()
        self._dirty: set[UUID] = set()
        self._callbacks = {k: v.copy() for k, v in store.callbacks.items()}
        # One in-memory class plays the three job ports (store, queries, sweeps).
        self.jobs = self.queries = self.sweeps = InMemoryJobRepository(
            self._jobs, self._deleted, self._dirty, self._callbacks
        )
        self.outbox = InMemoryOutbox(self._outbox)
        self.callbacks = InMemoryCallbackStore(self._callbacks, self._jobs)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        for event_id in self._dirty:
            committed = self._store.jobs.get(event_id)
            read = self._versions_read.get(event_id)
            if committed is not None and committed.version != read:
                raise ConcurrencyConflict(str(event_id))  # another writer committed first
            if event_id in self._store.jobs and read is None:
                raise DuplicateIdempotencyKey(str(event_id))
        for event_id in self._deleted:
            self._store.jobs.pop(event_id, None)
        for event_id in self._dirty - self._deleted:
            self._store.jobs[event_id] = self._jobs[event_id].copy()
        self._store.outbox[:] = self._outbox
        self._store.callbacks = {
            k: v for k, v in self._callbacks.items() if k in self._store.jobs
        }  # a deleted job's delivery goes with it, like ON DELETE CASCADE
        self._store.commits += 1


class FakeUnitOfWorkFactory:
    def __init__(self) -> None:
        self.store = InMemoryStore()

    def __call__(self) -> FakeUnitOfWork:
        return FakeUnitOfWork(self.store)


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
