"""ListJobs: an owner's jobs, newest first, a page at a time."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from application.errors import InvalidCursor
from application.ports import PageAfter, UnitOfWorkFactory
from domain import Job, JobStatus

MAX_LIMIT = 100


@dataclass(frozen=True, slots=True)
class ListJobsQuery:
    owner: str
    statuses: Sequence[JobStatus] = ()
    limit: int = 20
    cursor: str | None = None


@dataclass(frozen=True, slots=True)
class JobPage:
    items: list[Job]
    next_cursor: str | None


def encode_cursor(after: PageAfter) -> str:
    raw = json.dumps([after.created_at.isoformat(), str(after.event_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> PageAfter:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created_at, event_id = json.loads(raw)
        if not isinstance(created_at, str) or not isinstance(event_id, str):
            raise TypeError("a cursor holds two strings")
        after = PageAfter(datetime.fromisoformat(created_at), UUID(event_id))
    except (binascii.Error, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidCursor("The cursor is not one this service made.") from exc
    if after.created_at.tzinfo is None:
        raise InvalidCursor("The cursor is not one this service made.")
    return after


class ListJobs:
    """Rules: keyset pagination (stable under inserts), newest first; the
    cursor is opaque to clients; only the owner's jobs are listed."""

    def __init__(self, uow_factory: UnitOfWorkFactory) -> None:
        self._uow_factory = uow_factory

    async def execute(self, query: ListJobsQuery) -> JobPage:
        if not 1 <= query.limit <= MAX_LIMIT:
            raise ValueError(f"limit must be 1 to {MAX_LIMIT}")
        after = decode_cursor(query.cursor) if query.cursor else None
        async with self._uow_factory() as uow:
            jobs = await uow.queries.list_page(query.owner, query.statuses, query.limit + 1, after)
        items = jobs[: query.limit]
        next_cursor = None
        if len(jobs) > query.limit:
            last = items[-1]
            next_cursor = encode_cursor(PageAfter(last.created_at, last.event_id))
        return JobPage(items, next_cursor)
