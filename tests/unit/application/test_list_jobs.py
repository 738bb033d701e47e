"""ListJobs: the owner's jobs, newest first, paged with an opaque keyset cursor."""

from __future__ import annotations

import base64
import json
from uuid import UUID

import pytest
from builders import Storage, a_job, seed
from fakes import FakeClock

from application.errors import InvalidCursor
from application.use_cases.list_jobs import ListJobs, ListJobsQuery
from domain import JobStatus

STATUSES = list(JobStatus)


@pytest.fixture
def list_jobs(uow: Storage) -> ListJobs:
    return ListJobs(uow)


async def seed_jobs(uow: Storage, clock: FakeClock, count: int) -> list[UUID]:
    """`count` jobs of alice, created one after another, in every status; every
    third pair shares a timestamp so the event id must break the tie."""
    made = []
    for n in range(count):
        if n % 3 != 1:
            clock.advance(1)
        event_id = UUID(int=1000 + n)
        status = STATUSES[n % len(STATUSES)]
        await seed(uow, a_job(status, event_id=event_id, now=clock.now()))
        made.append(event_id)
    await seed(uow, a_job(event_id=UUID(int=1), now=clock.now(), owner="bob"))
    return made


async def test_newest_first_and_only_the_owners(
    list_jobs: ListJobs, uow: Storage, clock: FakeClock
) -> None:
    made = await seed_jobs(uow, clock, 5)

    page = await list_jobs.execute(ListJobsQuery(owner="alice"))

    assert [j.event_id for j in page.items] == list(reversed(made))
    assert page.next_cursor is None


async def test_status_filter(list_jobs: ListJobs, uow: Storage, clock: FakeClock) -> None:
    await seed_jobs(uow, clock, 10)
    wanted = (JobStatus.FAILED, JobStatus.PENDING)

    page = await list_jobs.execute(ListJobsQuery(owner="alice", statuses=wanted))

    assert page.items
    assert {j.status for j in page.items} == set(wanted)
    assert len(page.items) == 4  # pending: 0, 5; failed: 3, 8


async def test_paging_through_45_jobs_gives_each_exactly_once(
    list_jobs: ListJobs, uow: Storage, clock: FakeClock
) -> None:
    made = await seed_jobs(uow, clock, 45)
    seen: list[UUID] = []
    sizes = []
    cursor = None
    while True:
        page = await list_jobs.execute(ListJobsQuery(owner="alice", limit=20, cursor=cursor))
        seen += [j.event_id for j in page.items]
        sizes.append(len(page.items))
        cursor = page.next_cursor
        if cursor is None:
            break

    assert sizes == [20, 20, 5]
    assert seen == list(reversed(made))


async def test_a_full_last_page_has_no_next_cursor(
    list_jobs: ListJobs, uow: Storage, clock: FakeClock
) -> None:
    await seed_jobs(uow, clock, 40)
    first = await list_jobs.execute(ListJobsQuery(owner="alice", limit=20))
    second = await list_jobs.execute(
        ListJobsQuery(owner="alice", limit=20, cursor=first.next_cursor)
    )
    assert len(second.items) == 20
    assert second.next_cursor is None


async def test_paging_is_stable_under_new_inserts(
    list_jobs: ListJobs, uow: Storage, clock: FakeClock
) -> None:
    made = await seed_jobs(uow, clock, 30)
    first = await list_jobs.execute(ListJobsQuery(owner="alice", limit=20))
    clock.advance(10)
    await seed(uow, a_job(event_id=UUID(int=5000), now=clock.now()))

    second = await list_jobs.execute(
        ListJobsQuery(owner="alice", limit=20, cursor=first.next_cursor)
    )

    assert [j.event_id for j in first.items + second.items] == list(reversed(made))


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor!",
        "%%%",
        b64(b"garbage"),
        b64(b"\xff\xfe"),
        b64(json.dumps({"a": 1}).encode()),
        b64(json.dumps(["2026-11-28T10:00:00+00:00"]).encode()),
        b64(json.dumps(["yesterday", str(UUID(int=1))]).encode()),
        b64(json.dumps(["2026-11-28T10:00:00+00:00", "not-a-uuid"]).encode()),
        b64(json.dumps(["2026-11-28T10:00:00", str(UUID(int=1))]).encode()),  # naive
        b64(json.dumps([1, 2]).encode()),
    ],
)
async def test_a_bad_cursor_is_refused(list_jobs: ListJobs, cursor: str) -> None:
    with pytest.raises(InvalidCursor):
        await list_jobs.execute(ListJobsQuery(owner="alice", cursor=cursor))


@pytest.mark.parametrize(
    "content",
    [["2020-01-01T00:00:00+00:00", 5], [1, "00000000-0000-0000-0000-000000000001"], [None, None]],
)
async def test_a_cursor_of_the_wrong_shape_is_invalid(uow: Storage, content: list[object]) -> None:
    cursor = base64.urlsafe_b64encode(json.dumps(content).encode()).decode()
    with pytest.raises(InvalidCursor):
        await ListJobs(uow).execute(ListJobsQuery("alice", cursor=cursor))
