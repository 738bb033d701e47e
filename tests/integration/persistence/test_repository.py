"""The SQL repository, outbox, unit of work and key store on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.persistence import (
    SqlApiKeyStore,
    SqlUnitOfWork,
    database_ready,
    make_engine,
    sql_unit_of_work_factory,
    upgrade,
)
from application.errors import ConcurrencyConflict, DuplicateIdempotencyKey, StorageUnavailable
from application.ports import PageAfter, UnitOfWorkFactory
from domain import ApiKey, ErrorCode, Job, JobError, JobStatus, Step, Usage

T0 = datetime(2026, 11, 28, 10, 0, 0, 123456, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def new_job(
    owner: str = "alice",
    *,
    at: datetime = T0,
    key: str | None = None,
    text: str = "Wash hands before every patient contact.",
) -> Job:
    return Job.submit(
        event_id=uuid.uuid4(),
        owner=owner,
        input_text=text,
        now=at,
        metadata={"source": "who"},
        idempotency_key=key,
        request_fingerprint="f" * 64 if key else None,
    )


async def add_jobs(uow: UnitOfWorkFactory, *jobs: Job) -> None:
    async with uow() as tx:
        for job in jobs:
            await tx.jobs.add(job)
        await tx.commit()


async def load(uow: UnitOfWorkFactory, event_id: UUID) -> Job | None:
    async with uow() as tx:
        return await tx.jobs.get(event_id)


# -- add / get -------------------------------------------------------------------


def test_every_job_field_is_mapped() -> None:
    """A new field on `Job` must get a column, a migration and a mapping."""
    mapped = {
        "event_id", "owner", "input_text", "created_at", "updated_at", "status", "step",
        "summary", "checklist", "error", "attempts", "deliveries", "metadata", "usage",
        "callback_url", "idempotency_key", "request_fingerprint", "started_at",
        "finished_at", "lease_expires_at", "dispatched_at", "redispatches", "version",
        "retries", "callback",
    }  # fmt: skip
    not_stored = {"events"}  # recorded at each change, published after commit
    assert {f.name for f in fields(Job)} - not_stored == mapped


async def test_a_job_round_trips_with_every_field(uow: UnitOfWorkFactory) -> None:
    job = Job(
        event_id=uuid.uuid4(),
        owner="alice",
        input_text="text",
        created_at=T0,
        updated_at=T0 + timedelta(seconds=3),
        status=JobStatus.FAILED,
        step=None,
        summary="A summary.",
        checklist=("Confirm A.", "Record B."),
        error=JobError(ErrorCode.LLM_TIMEOUT, "timed out"),
        attempts=3,
        deliveries=4,
        metadata={"ward": "7", "source": "nice"},
        usage=Usage(812, 240, 1052),
        callback_url="https://example.org/hook",
        idempotency_key="key-1",
        request_fingerprint="abc",
        started_at=T0 + timedelta(seconds=1),
        finished_at=T0 + timedelta(seconds=3),
        lease_expires_at=None,
        version=0,
    )
    await add_jobs(uow, job)

    loaded = await load(uow, job.event_id)

    assert loaded == job
    assert loaded is not job


async def test_a_processing_job_keeps_step_and_lease(uow: UnitOfWorkFactory) -> None:
    job = new_job()
    job.start(T0, LEASE)
    await add_jobs(uow, job)

    loaded = await load(uow, job.event_id)

    assert loaded is not None
    assert loaded.status is JobStatus.PROCESSING
    assert loaded.step is Step.SUMMARIZE
    assert loaded.lease_expires_at == T0 + LEASE
    assert loaded.checklist is None
    assert loaded.error is None


async def test_get_by_owner_hides_other_owners_jobs(uow: UnitOfWorkFactory) -> None:
    job = new_job("alice")
    await add_jobs(uow, job)

    async with uow() as tx:
        assert await tx.jobs.get(job.event_id, owner="alice") == job
        assert await tx.jobs.get(job.event_id, owner="bob") is None
        assert await tx.jobs.get(uuid.uuid4()) is None


# -- idempotency keys ---------------------------------------------------------------


async def test_a_job_is_found_by_its_owners_idempotency_key(uow: UnitOfWorkFactory) -> None:
    job = new_job("alice", key="k-1")
    await add_jobs(uow, job, new_job("bob", key="k-2"))

    async with uow() as tx:
        assert await tx.queries.get_by_idempotency_key("alice", "k-1") == job
        assert await tx.queries.get_by_idempotency_key("bob", "k-1") is None
        assert await tx.queries.get_by_idempotency_key("alice", "k-2") is None


async def test_a_reused_key_is_refused_and_the_transaction_stays_usable(
    uow: UnitOfWorkFactory,
) -> None:
    first = new_job("alice", key="same")
    await add_jobs(uow, first)

    async with uow() as tx:
        with pytest.raises(DuplicateIdempotencyKey):
            await tx.jobs.add(new_job("alice", key="same"))
        # The loser of a race reads the winner's job in the same transaction.
        assert await tx.queries.get_by_idempotency_key("alice", "same") == first
        await tx.jobs.add(new_job("alice", key="other"))
        await tx.commit()

    async with uow() as tx:
        assert await tx.queries.get_by_idempotency_key("alice", "other") is not None


async def test_keys_are_per_owner_and_jobs_without_a_key_never_clash(
    uow: UnitOfWorkFactory,
) -> None:
    jobs = [new_job("alice", key="same"), new_job("bob", key="same"), new_job(), new_job()]

    await add_jobs(uow, *jobs)

    async with uow() as tx:
        for job in jobs:
            assert await tx.jobs.get(job.event_id) == job


# -- save (optimistic concurrency) ------------------------------------------------


async def test_save_writes_the_changes_and_bumps_the_version(uow: UnitOfWorkFactory) -> None:
    job = new_job()
    await add_jobs(uow, job)

    async with uow() as tx:
        loaded = await tx.jobs.get(job.event_id)
        assert loaded is not None
        loaded.start(T0 + timedelta(seconds=1), LEASE)
        loaded.record_summary("Summary ✓", Usage(10, 5, 15), T0 + timedelta(seconds=2))
        await tx.jobs.save(loaded)
        assert loaded.version == 1
        await tx.commit()

    saved = await load(uow, job.event_id)
    assert saved == loaded
    assert saved is not None
    assert saved.version == 1
    assert saved.summary == "Summary ✓"
    assert saved.step is Step.CHECKLIST
    assert saved.usage == Usage(10, 5, 15)
    assert saved.input_text == job.input_text


async def test_a_stale_save_raises_concurrency_conflict(uow: UnitOfWorkFactory) -> None:
    job = new_job()
    await add_jobs(uow, job)
    stale = await load(uow, job.event_id)
    fresh = await load(uow, job.event_id)
    assert stale is not None
    assert fresh is not None

    async with uow() as tx:
        fresh.cancel(T0 + timedelta(seconds=1))
        await tx.jobs.save(fresh)
        await tx.commit()

    async with uow() as tx:
        stale.start(T0 + timedelta(seconds=2), LEASE)
        with pytest.raises(ConcurrencyConflict):
            await tx.jobs.save(stale)
        assert stale.version == 0

    current = await load(uow, job.event_id)
    assert current is not None
    assert current.status is JobStatus.CANCELLED
    assert current.version == 1


async def test_saving_a_job_that_is_gone_raises_concurrency_conflict(
    uow: UnitOfWorkFactory,
) -> None:
    async with uow() as tx:
        with pytest.raises(ConcurrencyConflict):
            await tx.jobs.save(new_job())


# -- listing ------------------------------------------------------------------------


async def test_list_pages_newest_first_without_gaps_or_duplicates(
    uow: UnitOfWorkFactory,
) -> None:
    # Pairs of jobs share a created_at, so the event_id tie-break is exercised.
    mine = [new_job("alice", at=T0 + timedelta(seconds=i // 2)) for i in range(23)]
    await add_jobs(uow, *mine, new_job("bob", at=T0 + timedelta(hours=1)))
    expected = sorted(mine, key=lambda j: (j.created_at, j.event_id), reverse=True)

    pages: list[list[Job]] = []
    after: PageAfter | None = None
    async with uow() as tx:
        while True:
            page = await tx.queries.list_page("alice", [], 5, after)
            if not page:
                break
            pages.append(page)
            after = PageAfter(page[-1].created_at, page[-1].event_id)

    assert [len(p) for p in pages] == [5, 5, 5, 5, 3]
    assert [j.event_id for p in pages for j in p] == [j.event_id for j in expected]
    # Listed jobs are whole but for the text, which lists never show.
    assert pages[0][0] == dataclasses.replace(expected[0], input_text="")


async def test_list_filters_by_status(uow: UnitOfWorkFactory) -> None:
    jobs = [new_job(at=T0 + timedelta(seconds=i)) for i in range(6)]
    jobs[1].cancel(T0)
    jobs[4].cancel(T0)
    jobs[3].start(T0, LEASE)
    await add_jobs(uow, *jobs)

    async with uow() as tx:
        cancelled = await tx.queries.list_page("alice", [JobStatus.CANCELLED], 10, None)
        either = await tx.queries.list_page(
            "alice", [JobStatus.CANCELLED, JobStatus.PROCESSING], 10, None
        )
        after_first = await tx.queries.list_page(
            "alice",
            [JobStatus.CANCELLED],
            10,
            PageAfter(cancelled[0].created_at, cancelled[0].event_id),
        )

    assert [j.event_id for j in cancelled] == [jobs[4].event_id, jobs[1].event_id]
    assert [j.event_id for j in either] == [j.event_id for j in (jobs[4], jobs[3], jobs[1])]
    assert [j.event_id for j in after_first] == [jobs[1].event_id]


# -- recovery sweep -----------------------------------------------------------------


async def test_find_unfinished_returns_idle_pending_and_expired_processing_jobs(
    uow: UnitOfWorkFactory,
) -> None:
    idle = new_job(at=T0)
    recent = new_job(at=T0 + timedelta(minutes=10))
    expired = new_job(at=T0)
    expired.start(T0, LEASE)  # lease until T0 + 60 s
    leased = new_job(at=T0)
    leased.start(T0 + timedelta(minutes=10), LEASE)
    done = new_job(at=T0)
    done.cancel(T0)
    await add_jobs(uow, idle, recent, expired, leased, done)

    async with uow() as tx:
        found = await tx.sweeps.find_unfinished(
            pending_idle_before=[T0 + timedelta(minutes=5)],
            lease_expired_before=T0 + timedelta(minutes=5),
            limit=10,
        )
        limited = await tx.sweeps.find_unfinished(
            [T0 + timedelta(minutes=5)], T0 + timedelta(minutes=5), 1
        )

    assert {j.event_id for j in found} == {idle.event_id, expired.event_id}
    assert len(limited) == 1


async def test_find_unfinished_backs_off_by_how_often_a_pending_job_was_sent_again(
    uow: UnitOfWorkFactory,
) -> None:
    """Cut-offs per count of redispatches: a job sent again k times is due only once its
    last dispatch is older than the k-th cut-off (the last one for every count above)."""
    fresh = new_job(at=T0)  # dispatched at T0, never sent again
    once = new_job(at=T0)
    once.note_redispatch(T0)  # sent again once, at T0
    often = new_job(at=T0)
    for _ in range(5):
        often.note_redispatch(T0)
    await add_jobs(uow, fresh, once, often)
    stored = await load(uow, often.event_id)
    assert stored is not None
    assert (stored.redispatches, stored.dispatched_at) == (5, T0)

    async def due(*minutes: int) -> set[UUID]:
        cutoffs = [T0 + timedelta(minutes=m) for m in minutes]
        async with uow() as tx:
            jobs = await tx.sweeps.find_unfinished(cutoffs, T0, 10)
        return {job.event_id for job in jobs}

    assert await due(1, 1, 1) == {fresh.event_id, once.event_id, often.event_id}
    assert await due(1, 0, 0) == {fresh.event_id}
    assert await due(0, 1, 0) == {once.event_id}
    assert await due(0, 0, 1) == {often.event_id}  # the last cut-off covers 2 and more
    assert await due(0) == set()


async def test_sent_outbox_rows_are_pruned_after_their_retention(uow: UnitOfWorkFactory) -> None:
    job = new_job()
    async with uow() as tx:
        await tx.jobs.add(job)
        for minute in range(4):
            await tx.outbox.add(job.event_id, T0 + timedelta(minutes=minute))
        await tx.commit()
    async with uow() as tx:  # three rows sent at T0, one never
        taken = await tx.outbox.take_unsent(3)
        await tx.outbox.mark_sent(taken, T0)
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.delete_sent_before(T0, 10) == 0  # sent at T0, not before
        assert await tx.outbox.delete_sent_before(T0 + timedelta(seconds=1), 2) == 2
        assert await tx.outbox.delete_sent_before(T0 + timedelta(seconds=1), 2) == 1
        assert await tx.outbox.delete_sent_before(T0 + timedelta(days=999), 10) == 0
        await tx.commit()
    async with uow() as tx:
        assert await tx.outbox.backlog() == 1  # the unsent row stays, however old


# -- delete -------------------------------------------------------------------------


async def test_delete_erases_the_job_and_its_outbox_rows(uow: UnitOfWorkFactory) -> None:
    job, other = new_job(), new_job()
    async with uow() as tx:
        await tx.jobs.add(job)
        await tx.jobs.add(other)
        await tx.outbox.add(job.event_id, T0)
        await tx.outbox.add(other.event_id, T0)
        await tx.commit()

    async with uow() as tx:
        assert await tx.jobs.delete(job) is True
        await tx.commit()

    async with uow() as tx:
        assert await tx.jobs.get(job.event_id) is None
        assert await tx.jobs.get(other.event_id) == other
        assert await tx.outbox.backlog() == 1
        assert await tx.outbox.take_unsent(10) == [other.event_id]
        assert await tx.jobs.delete(job) is False


async def test_count_unfinished_counts_the_owners_pending_and_processing_jobs(
    uow: UnitOfWorkFactory,
) -> None:
    pending, processing, done, bobs = new_job(), new_job(), new_job(), new_job("bob")
    processing.start(T0, LEASE)
    done.cancel(T0)
    await add_jobs(uow, pending, processing, done, bobs)

    async with uow() as tx:
        assert await tx.queries.count_unfinished("alice") == 2
        assert await tx.queries.count_unfinished("bob") == 1
        assert await tx.queries.count_unfinished("carol") == 0


async def test_delete_created_before_erases_old_jobs_in_batches(uow: UnitOfWorkFactory) -> None:
    old = [new_job(at=T0 - timedelta(days=40 - i)) for i in range(3)]
    fresh = new_job(at=T0)
    await add_jobs(uow, *old, fresh)
    async with uow() as tx:
        for job in (*old, fresh):
            await tx.outbox.add(job.event_id, T0)
        await tx.commit()

    async with uow() as tx:
        assert await tx.sweeps.delete_created_before(T0 - timedelta(days=30), limit=2) == 2
        await tx.commit()
    async with uow() as tx:
        assert await tx.sweeps.delete_created_before(T0 - timedelta(days=30), limit=2) == 1
        await tx.commit()

    async with uow() as tx:
        assert all([await tx.jobs.get(j.event_id) is None for j in old])
        assert await tx.jobs.get(fresh.event_id) == fresh
        assert await tx.outbox.take_unsent(10) == [fresh.event_id]


# -- outbox -------------------------------------------------------------------------


async def test_outbox_can_leave_young_rows_alone(uow: UnitOfWorkFactory) -> None:
    jobs = [new_job() for _ in range(3)]
    async with uow() as tx:
        for i, job in enumerate(jobs):
            await tx.jobs.add(job)
            await tx.outbox.add(job.event_id, T0 + timedelta(seconds=10 * i))
        await tx.commit()

    async with uow() as tx:
        taken = await tx.outbox.take_unsent(10, created_before=T0 + timedelta(seconds=15))
        assert taken == [jobs[0].event_id, jobs[1].event_id]


async def test_outbox_hands_out_unsent_rows_oldest_first(uow: UnitOfWorkFactory) -> None:
    jobs = [new_job() for _ in range(3)]
    async with uow() as tx:
        for i, job in enumerate(jobs):
            await tx.jobs.add(job)
            await tx.outbox.add(job.event_id, T0 + timedelta(seconds=i))
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.backlog() == 3
        taken = await tx.outbox.take_unsent(2)
        assert taken == [jobs[0].event_id, jobs[1].event_id]
        await tx.outbox.mark_sent(taken, T0 + timedelta(minutes=1))
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.backlog() == 1
        assert await tx.outbox.take_unsent(10) == [jobs[2].event_id]
        await tx.outbox.mark_sent([jobs[2].event_id], T0 + timedelta(minutes=1))
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.backlog() == 0
        assert await tx.outbox.take_unsent(10) == []


async def test_outbox_marks_only_the_rows_it_took(uow: UnitOfWorkFactory) -> None:
    job = new_job()
    async with uow() as tx:
        await tx.jobs.add(job)
        await tx.outbox.add(job.event_id, T0)
        await tx.commit()

    async with uow() as tx:
        taken = await tx.outbox.take_unsent(10)
        # A retry writes a second row for the same job before this relay is done.
        await tx.outbox.add(job.event_id, T0 + timedelta(seconds=1))
        await tx.outbox.mark_sent(taken, T0 + timedelta(seconds=2))
        await tx.commit()

    async with uow() as tx:
        assert await tx.outbox.backlog() == 1
        assert await tx.outbox.take_unsent(10) == [job.event_id]


# -- unit of work -----------------------------------------------------------------


async def test_nothing_is_kept_without_commit(uow: UnitOfWorkFactory) -> None:
    job, other = new_job(), new_job()
    async with uow() as tx:
        await tx.jobs.add(job)
        await tx.outbox.add(job.event_id, T0)

    async def add_then_fail() -> None:
        async with uow() as tx:
            await tx.jobs.add(other)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await add_then_fail()

    async with uow() as tx:
        assert await tx.jobs.get(job.event_id) is None
        assert await tx.jobs.get(other.event_id) is None
        assert await tx.outbox.backlog() == 0


async def test_work_after_commit_is_rolled_back_on_exit(uow: UnitOfWorkFactory) -> None:
    kept, dropped = new_job(), new_job()
    async with uow() as tx:
        await tx.jobs.add(kept)
        await tx.commit()
        await tx.jobs.add(dropped)

    assert await load(uow, kept.event_id) == kept
    assert await load(uow, dropped.event_id) is None


async def test_units_of_work_return_their_connections(engine: AsyncEngine) -> None:
    factory = sql_unit_of_work_factory(engine)
    for _ in range(20):  # more than the pool holds (4 + overflow)
        async with factory() as tx:
            await tx.outbox.backlog()

    checked_out = engine.sync_engine.pool.checkedout()  # type: ignore[attr-defined]
    assert checked_out == 0


# -- data fidelity ------------------------------------------------------------------


async def test_unicode_and_long_text_round_trip(uow: UnitOfWorkFactory) -> None:
    text = ("Ŝtep 1 — wash 🧼 hands; 手を洗う. " * 7000)[:199_999] + "🩺"
    assert len(text) == 200_000
    job = new_job(text=text)
    job.metadata = {"ward 🏥": "Ärzte ✓"}
    job.start(T0, LEASE)
    job.record_summary("Résumé 📋", Usage(), T0)
    job.record_checklist(("Lavez-vous les mains 🧼", "记录结果"), Usage(), T0)
    await add_jobs(uow, job)

    loaded = await load(uow, job.event_id)

    assert loaded == job
    assert loaded is not None
    assert loaded.input_text == text


async def test_datetimes_come_back_timezone_aware_utc(uow: UnitOfWorkFactory) -> None:
    paris = timezone(timedelta(hours=2))
    job = new_job(at=datetime(2026, 6, 1, 12, 0, 0, 1, tzinfo=paris))
    job.start(datetime(2026, 6, 1, 12, 0, 5, tzinfo=paris), LEASE)
    await add_jobs(uow, job)

    loaded = await load(uow, job.event_id)

    assert loaded is not None
    for value in (loaded.created_at, loaded.updated_at, loaded.started_at, loaded.lease_expires_at):
        assert value is not None
        assert value.tzinfo is not None
        assert value.utcoffset() == timedelta(0)
    assert loaded.created_at == datetime(2026, 6, 1, 10, 0, 0, 1, tzinfo=UTC)


async def test_a_naive_datetime_is_refused(uow: UnitOfWorkFactory) -> None:
    job = new_job(at=datetime(2026, 1, 1))  # naive on purpose

    async with uow() as tx:
        with pytest.raises(Exception, match="naive datetime"):
            await tx.jobs.add(job)


# -- API keys -----------------------------------------------------------------------


async def test_api_keys_are_stored_listed_and_revoked(engine: AsyncEngine) -> None:
    store = SqlApiKeyStore(engine)
    first = ApiKey("k1", "alice", "hash-1", T0)
    second = ApiKey("k2", "bob", "hash-2", T0 + timedelta(seconds=1))
    await store.add(first)
    await store.add(second)

    assert await store.get("k1") == first
    assert await store.get("nope") is None
    assert await store.all() == [first, second]
    assert await store.revoke("k1", T0 + timedelta(minutes=1)) is True
    assert await store.revoke("k1", T0 + timedelta(minutes=2)) is False
    assert await store.revoke("nope", T0) is False
    assert await store.get("k1") == ApiKey("k1", "alice", "hash-1", T0, T0 + timedelta(minutes=1))
    with pytest.raises(ValueError, match="already exists"):
        await store.add(first)


# -- health ---------------------------------------------------------------------------


async def test_a_migrated_database_is_ready(engine: AsyncEngine) -> None:
    assert await database_ready(engine) is True


# -- PostgreSQL only: real concurrency -------------------------------------------------


@pytest.fixture
async def pg_engine(pg_url: str) -> AsyncIterator[AsyncEngine]:
    upgrade(pg_url)
    engine = make_engine(pg_url, pool_size=4)
    yield engine
    await engine.dispose()


async def test_two_concurrent_writers_one_wins_one_conflicts(pg_engine: AsyncEngine) -> None:
    uow = sql_unit_of_work_factory(pg_engine)
    job = new_job()
    await add_jobs(uow, job)
    both_read = asyncio.Barrier(2)

    async def writer(cancel: bool) -> str:
        async with uow() as tx:
            mine = await tx.jobs.get(job.event_id)
            assert mine is not None
            await both_read.wait()
            if cancel:
                mine.cancel(T0 + timedelta(seconds=1))
            else:
                mine.start(T0 + timedelta(seconds=1), LEASE)
            try:
                await tx.jobs.save(mine)
            except ConcurrencyConflict:
                return "conflict"
            await tx.commit()
            return mine.status.value

    outcomes = await asyncio.gather(writer(True), writer(False))

    # Either writer may win; exactly one of them must meet the conflict.
    assert outcomes.count("conflict") == 1, outcomes
    (winner,) = (o for o in outcomes if o != "conflict")
    assert winner in {"cancelled", "processing"}, outcomes
    stored = await load(uow, job.event_id)
    assert stored is not None
    assert stored.status.value == winner
    assert stored.version == 1


async def test_the_second_writer_waits_for_the_first_then_conflicts(
    pg_engine: AsyncEngine,
) -> None:
    uow = sql_unit_of_work_factory(pg_engine)
    job = new_job()
    await add_jobs(uow, job)

    async with uow() as first, uow() as second:
        a = await first.jobs.get(job.event_id)
        b = await second.jobs.get(job.event_id)
        assert a is not None
        assert b is not None
        a.cancel(T0)
        await first.jobs.save(a)
        b.start(T0, LEASE)
        blocked = asyncio.create_task(second.jobs.save(b))  # waits on a's row lock
        await asyncio.sleep(0.2)
        assert not blocked.done()
        await first.commit()
        with pytest.raises(ConcurrencyConflict):
            await blocked

    stored = await load(uow, job.event_id)
    assert stored is not None
    assert stored.status is JobStatus.CANCELLED


async def test_concurrent_relays_never_take_the_same_rows(pg_engine: AsyncEngine) -> None:
    uow = sql_unit_of_work_factory(pg_engine)
    jobs = [new_job() for _ in range(10)]
    async with uow() as tx:
        for job in jobs:
            await tx.jobs.add(job)
            await tx.outbox.add(job.event_id, T0)
        await tx.commit()

    async with uow() as relay_a, uow() as relay_b:
        taken_a = await relay_a.outbox.take_unsent(6)
        taken_b = await asyncio.wait_for(relay_b.outbox.take_unsent(10), timeout=5)
        await relay_a.outbox.mark_sent(taken_a, T0)
        await relay_b.outbox.mark_sent(taken_b, T0)
        await relay_a.commit()
        await relay_b.commit()

    assert len(taken_a) == 6
    assert len(taken_b) == 4
    assert set(taken_a).isdisjoint(taken_b)
    assert set(taken_a) | set(taken_b) == {j.event_id for j in jobs}
    async with uow() as tx:
        assert await tx.outbox.backlog() == 0


async def test_racing_submits_with_one_key_make_one_job(pg_engine: AsyncEngine) -> None:
    uow = sql_unit_of_work_factory(pg_engine)
    winner, loser = new_job(key="race"), new_job(key="race")

    async with uow() as first, uow() as second:
        await first.jobs.add(winner)
        pending = asyncio.create_task(second.jobs.add(loser))  # waits for the first
        await asyncio.sleep(0.2)
        await first.commit()
        with pytest.raises(DuplicateIdempotencyKey):
            await pending
        assert await second.queries.get_by_idempotency_key("alice", "race") == winner


# -- SQLite only: writers queue --------------------------------------------------------


async def test_sqlite_units_of_work_queue_rather_than_fail(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    engine = make_engine(sqlite_url, pool_size=4)
    uow = sql_unit_of_work_factory(engine)
    job = new_job()
    try:
        await add_jobs(uow, job)

        async def touch(seconds: int) -> None:
            async with uow() as tx:
                mine = await tx.jobs.get(job.event_id)
                assert mine is not None
                await asyncio.sleep(0.05)  # the other writer runs meanwhile
                mine.note_redispatch(T0 + timedelta(seconds=seconds))
                await tx.jobs.save(mine)
                await tx.commit()

        await asyncio.gather(*(touch(i) for i in range(4)))

        stored = await load(uow, job.event_id)
        assert stored is not None
        assert stored.version == 4
    finally:
        await engine.dispose()


# -- storage unavailable ----------------------------------------------------------------


async def test_a_closed_postgres_port_raises_storage_unavailable_fast() -> None:
    engine = make_engine("postgresql://postgres:secret@127.0.0.1:1/nowhere")
    started = time.monotonic()
    try:
        with pytest.raises(StorageUnavailable):
            async with SqlUnitOfWork(engine):
                pass
        assert await database_ready(engine) is False
        with pytest.raises(StorageUnavailable):
            await SqlApiKeyStore(engine).get("k1")
    finally:
        await engine.dispose()
    # Refused at once, not retried or waited on (a pool or connect wait would take 30 s);
    # generous for a loaded machine.
    assert time.monotonic() - started < 15


async def test_an_unopenable_sqlite_file_raises_storage_unavailable(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path}/missing-dir/db.sqlite3")
    try:
        with pytest.raises(StorageUnavailable):
            async with SqlUnitOfWork(engine):
                pass
        assert await database_ready(engine) is False
    finally:
        await engine.dispose()
        await _aiosqlite_threads_finished()


async def _aiosqlite_threads_finished() -> None:
    """Let aiosqlite's worker threads end before the test's loop closes.

    After a failed connect aiosqlite stops its thread without awaiting it; a
    thread still running when the loop closes reports "Event loop is closed".
    """
    for _ in range(100):
        if not any("_connection_worker_thread" in t.name for t in threading.enumerate()):
            return
        await asyncio.sleep(0.01)


async def test_a_missing_schema_is_not_mistaken_for_an_outage(db_url: str) -> None:
    engine = make_engine(db_url)  # not migrated: the table is missing, a bug not an outage
    try:
        async with SqlUnitOfWork(engine) as tx:
            with pytest.raises(Exception) as raised:  # noqa: PT011 - the type is the point
                await tx.jobs.get(uuid.uuid4())
        assert not isinstance(raised.value, StorageUnavailable)
    finally:
        await engine.dispose()
