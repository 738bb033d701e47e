"""Rules that moved onto the entity (claim, recover) and the events its moves record."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest

from domain import (
    MOVES,
    ErrorCode,
    IllegalTransition,
    Job,
    JobError,
    JobStatus,
    StatusChanged,
    Step,
    StepStarted,
    Usage,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
ID = UUID(int=1)


def new_job() -> Job:
    return Job.submit(event_id=ID, owner="alice", input_text="Wash hands.", now=T0)


def test_every_status_changing_method_is_in_the_table() -> None:
    moving = {name for name, (_, target) in MOVES.items() if target is not None}
    assert moving == {"start", "record_checklist", "fail", "cancel", "requeue", "retry"}
    for name in MOVES:
        assert callable(getattr(Job, name)), name


def test_each_move_records_one_status_event_and_a_step_change_records_a_step_event() -> None:
    job = new_job()
    job.start(T0, LEASE)
    job.record_summary("S.", Usage(), T0 + timedelta(seconds=1))
    job.renew_lease(T0 + timedelta(seconds=2), LEASE)
    job.record_checklist(("Do.",), Usage(), T0 + timedelta(seconds=3))

    assert job.pull_events() == [
        StatusChanged(ID, None, JobStatus.PENDING, T0),
        StatusChanged(ID, JobStatus.PENDING, JobStatus.PROCESSING, T0),
        StepStarted(ID, Step.CHECKLIST, T0 + timedelta(seconds=1)),
        StatusChanged(ID, JobStatus.PROCESSING, JobStatus.COMPLETED, T0 + timedelta(seconds=3)),
    ]
    assert job.pull_events() == []  # pulled once


def test_a_refused_move_records_nothing() -> None:
    job = new_job()
    job.pull_events()
    with pytest.raises(IllegalTransition):
        job.retry(T0)
    assert job.pull_events() == []
    assert job.status is JobStatus.PENDING


def test_a_copy_carries_no_pending_events() -> None:
    job = new_job()
    assert job.copy().pull_events() == []
    assert len(job.pull_events()) == 1


def test_claim_starts_a_pending_job() -> None:
    job = new_job()
    assert job.claim(T0, LEASE, max_deliveries=5) is True
    assert (job.status, job.attempts, job.lease_expires_at) == (
        JobStatus.PROCESSING,
        1,
        T0 + LEASE,
    )


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
def test_claim_leaves_a_finished_job_alone(status: JobStatus) -> None:
    job = new_job()
    job.start(T0, LEASE)
    if status is JobStatus.COMPLETED:
        job.record_summary("S.", Usage(), T0)
        job.record_checklist(("Do.",), Usage(), T0)
    elif status is JobStatus.FAILED:
        job.fail(JobError(ErrorCode.LLM_TIMEOUT, "t"), T0)
    else:
        job.cancel(T0)
    before = job.copy()
    assert job.claim(T0, LEASE, max_deliveries=5) is False
    assert job == before


def test_claim_leaves_a_live_lease_alone_and_takes_over_an_expired_one() -> None:
    job = new_job()
    job.start(T0, LEASE)
    assert job.claim(T0 + LEASE - timedelta(seconds=1), LEASE, max_deliveries=5) is False
    assert job.attempts == 1

    later = T0 + LEASE
    assert job.claim(later, LEASE, max_deliveries=5) is True
    assert (job.status, job.attempts, job.lease_expires_at) == (
        JobStatus.PROCESSING,
        2,
        later + LEASE,
    )
    targets = [e.target for e in job.pull_events() if isinstance(e, StatusChanged)]
    assert targets[-2:] == [JobStatus.PENDING, JobStatus.PROCESSING]  # handed back, then taken


def test_claim_fails_a_job_delivered_too_often() -> None:
    job = new_job()
    job.deliveries = 3
    assert job.claim(T0, LEASE, max_deliveries=3) is True
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code is ErrorCode.INTERNAL
    assert job.deliveries == 4


def test_recover_hands_back_a_processing_job_and_notes_a_pending_one() -> None:
    processing = new_job()
    processing.start(T0, LEASE)
    processing.recover(T0 + timedelta(seconds=5))
    assert (processing.status, processing.step, processing.lease_expires_at) == (
        JobStatus.PENDING,
        None,
        None,
    )

    pending = new_job()
    pending.recover(T0 + timedelta(seconds=5))
    assert pending.status is JobStatus.PENDING
    assert pending.updated_at == T0 + timedelta(seconds=5)


def test_recover_refuses_a_finished_job() -> None:
    job = new_job()
    job.cancel(T0)
    with pytest.raises(IllegalTransition):
        job.recover(T0)
