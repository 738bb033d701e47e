"""Test data: jobs brought to a status through the entity's own methods, and
put straight into the fake store (as if an earlier transaction had committed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from uuid import UUID

from fakes import FakeUnitOfWorkFactory

from domain import ErrorCode, Job, JobError, JobStatus, Usage

LEASE = timedelta(seconds=60)


def a_job(
    status: JobStatus = JobStatus.PENDING,
    *,
    event_id: UUID,
    now: datetime,
    owner: str = "alice",
    summary: str | None = None,
    input_text: str = "Wash hands before every patient contact.",
) -> Job:
    """A job in `status`; `summary` is recorded first when given (or when completing)."""
    job = Job.submit(event_id=event_id, owner=owner, input_text=input_text, now=now)
    if status is JobStatus.PENDING and summary is None:
        return job
    job.start(now, LEASE)
    if summary is not None or status is JobStatus.COMPLETED:
        job.record_summary(summary or "A summary.", Usage(10, 5, 15), now)
    if status is JobStatus.PENDING:  # handed back after step 1
        job.requeue(now)
    if status is JobStatus.COMPLETED:
        job.record_checklist(("Wash hands.",), Usage(8, 4, 12), now)
    elif status is JobStatus.FAILED:
        job.fail(JobError(ErrorCode.LLM_UNAVAILABLE, "provider down"), now)
    elif status is JobStatus.CANCELLED:
        job.cancel(now)
    return job


def seed(uow: FakeUnitOfWorkFactory, *jobs: Job) -> None:
    for job in jobs:
        uow.store.jobs[job.event_id] = job.copy()


def stored(uow: FakeUnitOfWorkFactory, event_id: UUID) -> Job:
    return uow.store.jobs[event_id]
