"""The job's status machine: every allowed move works, every other one is refused.

The tables below restate API.md ("Allowed transitions") independently of
`ALLOWED_TRANSITIONS`, so a change to the domain's table is caught too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from domain import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    ErrorCode,
    IllegalTransition,
    InvalidOutput,
    Job,
    JobError,
    JobResult,
    JobStatus,
    Step,
    Usage,
)

T0 = datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)
P, R, C, F, X = (
    JobStatus.PENDING,
    JobStatus.PROCESSING,
    JobStatus.COMPLETED,
    JobStatus.FAILED,
    JobStatus.CANCELLED,
)
CONTRACT = {(P, R), (P, X), (R, C), (R, F), (R, X), (R, P), (F, P), (X, P)}
ERROR = JobError(ErrorCode.LLM_TIMEOUT, "timed out")


def new_job() -> Job:
    return Job.submit(event_id=UUID(int=1), owner="alice", input_text="Wash hands.", now=T0)


def job_in(status: JobStatus, *, summary: str | None = "S") -> Job:
    """A job brought to `status` through the entity's own methods."""
    job = new_job()
    if status is P:
        return job
    job.start(T0, LEASE)
    if summary is not None:
        job.record_summary(summary, Usage(1, 1, 2), T0)
    if status is C:
        job.record_checklist(("Do it",), Usage(1, 1, 2), T0)
    elif status is F:
        job.fail(ERROR, T0)
    elif status is X:
        job.cancel(T0)
    return job


T1 = T0 + timedelta(seconds=5)

# The method that performs each (from, to) move.
MOVE_BY: dict[JobStatus, Callable[[Job], None]] = {
    R: lambda j: j.start(T1, LEASE),
    C: lambda j: j.record_checklist(("Do it",), Usage(), T1),
    F: lambda j: j.fail(ERROR, T1),
    X: lambda j: j.cancel(T1),
}


def move(job: Job, target: JobStatus) -> None:
    if target is P:
        (job.requeue if job.status is R else job.retry)(T1)
    else:
        MOVE_BY[target](job)


def test_domain_table_is_the_contract() -> None:
    assert set(ALLOWED_TRANSITIONS) == CONTRACT
    assert frozenset({C, F, X}) == TERMINAL_STATUSES
    assert all(s.is_terminal == (s in {C, F, X}) for s in JobStatus)


@pytest.mark.parametrize(("source", "target"), sorted(CONTRACT))
def test_every_allowed_transition_works(source: JobStatus, target: JobStatus) -> None:
    job = job_in(source)
    move(job, target)
    assert job.status is target
    assert job.updated_at == T1


ALL_PAIRS = [(a, b) for a, b in itertools.product(JobStatus, JobStatus) if (a, b) not in CONTRACT]

# Every method that can lead to `target`; each must refuse from a wrong source.
METHODS_TO: dict[JobStatus, list[Callable[[Job], None]]] = {
    P: [lambda j: j.requeue(T1), lambda j: j.retry(T1)],
    R: [MOVE_BY[R]],
    C: [MOVE_BY[C]],
    F: [MOVE_BY[F]],
    X: [MOVE_BY[X]],
}


@pytest.mark.parametrize(("source", "target"), ALL_PAIRS)
def test_every_other_transition_is_refused_and_changes_nothing(
    source: JobStatus, target: JobStatus
) -> None:
    for method in METHODS_TO[target]:
        job = job_in(source)
        before = job.copy()
        with pytest.raises(IllegalTransition):
            method(job)
        assert job == before, f"{source}->{target}: a refused move must leave the job as it was"


@pytest.mark.parametrize(
    ("source", "method"),
    [
        (P, lambda j: j.requeue(T1)),  # only a processing job is handed back
        (R, lambda j: j.retry(T1)),  # only failed/cancelled jobs are retried
        (C, lambda j: j.retry(T1)),
        (F, lambda j: j.requeue(T1)),
        (X, lambda j: j.requeue(T1)),
    ],
)
def test_methods_to_pending_accept_only_their_own_sources(
    source: JobStatus, method: Callable[[Job], None]
) -> None:
    job = job_in(source)
    before = job.copy()
    with pytest.raises(IllegalTransition):
        method(job)
    assert job == before


@pytest.mark.parametrize("status", [P, C, F, X])
def test_step_calls_need_a_processing_job(status: JobStatus) -> None:
    for call in (
        lambda j: j.record_summary("S2", Usage(), T1),
        lambda j: j.record_checklist(("x",), Usage(), T1),
        lambda j: j.renew_lease(T1, LEASE),
    ):
        job = job_in(status)
        before = job.copy()
        with pytest.raises(IllegalTransition):
            call(job)
        assert job == before


@pytest.mark.parametrize("status", [R, C, F, X])
def test_note_redispatch_needs_a_pending_job(status: JobStatus) -> None:
    job = job_in(status)
    before = job.copy()
    with pytest.raises(IllegalTransition):
        job.note_redispatch(T1)
    assert job == before


def test_checklist_needs_the_summary_first() -> None:
    job = job_in(R, summary=None)
    before = job.copy()
    with pytest.raises(IllegalTransition):
        job.record_checklist(("x",), Usage(), T1)
    assert job == before


def test_blank_outputs_are_refused() -> None:
    job = job_in(R, summary=None)
    with pytest.raises(InvalidOutput, match="blank"):
        job.record_summary("  \n", Usage(), T1)
    job.record_summary("S", Usage(), T1)
    with pytest.raises(InvalidOutput, match="at least one"):
        job.record_checklist((), Usage(), T1)
    assert job.status is R
    assert job.checklist is None


# -- invariants, explicitly ---------------------------------------------------


def test_a_new_job_is_pending_and_empty() -> None:
    job = new_job()
    assert (job.status, job.step, job.attempts, job.deliveries) == (P, None, 0, 0)
    assert job.result is None
    assert job.usage == Usage(0, 0, 0)
    assert job.created_at == job.updated_at == T0


def test_start_counts_attempts_and_deliveries_and_takes_a_lease() -> None:
    job = new_job()
    job.start(T1, LEASE)
    assert (job.attempts, job.deliveries) == (1, 1)
    assert job.step is Step.SUMMARIZE
    assert job.started_at == T1
    assert job.lease_expires_at == T1 + LEASE
    job.requeue(T1)
    later = T1 + timedelta(seconds=1)
    job.start(later, LEASE)
    assert (job.attempts, job.deliveries) == (2, 2)
    assert job.started_at == T1  # the first start is kept


def test_start_goes_to_the_checklist_when_the_summary_exists() -> None:
    job = job_in(R)
    job.requeue(T1)
    assert job.step is None
    job.start(T1, LEASE)
    assert job.step is Step.CHECKLIST


def test_record_summary_moves_the_step_on() -> None:
    job = job_in(R, summary=None)
    job.record_summary("S", Usage(3, 4, 7), T1)
    assert job.step is Step.CHECKLIST
    assert job.summary == "S"
    assert job.usage == Usage(3, 4, 7)


def test_usage_sums_over_both_steps() -> None:
    job = job_in(R, summary=None)
    job.record_summary("S", Usage(10, 2, 12), T1)
    job.record_checklist(("a", "b"), Usage(5, 3, 8), T1)
    assert job.usage == Usage(15, 5, 20)


def test_result_only_when_completed() -> None:
    for status in JobStatus:
        job = job_in(status)
        if status is P:  # a retried job: pending, with its summary kept
            job = job_in(F)
            job.retry(T1)
        assert job.summary == "S"
        if status is C:
            assert job.result == JobResult("S", ("Do it",))
        else:
            assert job.result is None, status


def test_step_only_while_processing() -> None:
    for status in JobStatus:
        job = job_in(status)
        assert (job.step is not None) == (status is R), status
        assert (job.lease_expires_at is not None) == (status is R), status


def test_terminal_moves_finish_the_job() -> None:
    for status in (C, F, X):
        job = job_in(status)
        assert job.finished_at == T0
        assert job.step is None
        assert job.lease_expires_at is None
    assert job_in(F).error == ERROR


@pytest.mark.parametrize("source", [F, X])
def test_retry_resets_the_run_and_keeps_the_outputs(source: JobStatus) -> None:
    job = job_in(source)
    job.retry(T1)
    assert job.status is P
    assert (job.error, job.finished_at, job.deliveries, job.step) == (None, None, 0, None)
    assert job.summary == "S"
    assert job.usage == Usage(1, 1, 2)
    assert job.attempts == 1  # attempts keep counting across retries
    job.start(T1, LEASE)
    assert job.step is Step.CHECKLIST
    assert (job.attempts, job.deliveries) == (2, 1)


def test_retry_keeps_a_saved_checklist_too() -> None:
    job = job_in(R)
    job.checklist = ("kept",)  # as a row could hold it after a crash between steps
    job.cancel(T1)
    job.retry(T1)
    assert job.checklist == ("kept",)


def test_lease_expiry() -> None:
    job = job_in(R)
    assert not job.lease_expired(T0 + LEASE - timedelta(microseconds=1))
    assert job.lease_expired(T0 + LEASE)
    job.renew_lease(T0 + LEASE, LEASE)
    assert not job.lease_expired(T0 + LEASE)
    assert not job_in(P).lease_expired(T0 + LEASE * 10)


def test_copy_is_detached() -> None:
    job = Job.submit(event_id=UUID(int=1), owner="a", input_text="t", now=T0, metadata={"k": "v"})
    twin = job.copy()
    twin.metadata["k"] = "changed"
    twin.start(T1, LEASE)
    assert job.metadata == {"k": "v"}
    assert job.status is P


# -- random sequences ------------------------------------------------------------

usages = st.builds(
    Usage,
    st.integers(0, 10_000),
    st.integers(0, 10_000),
    st.integers(0, 20_000),
)
texts = st.text(min_size=1, max_size=20).filter(lambda s: bool(s.strip()))
items = st.lists(st.text(min_size=1, max_size=10), min_size=1, max_size=4).map(tuple)
errors = st.builds(JobError, st.sampled_from(ErrorCode), st.text(max_size=20))


class JobMachine(RuleBasedStateMachine):
    """Drives random method calls and checks each against an independent model."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.job = new_job()
        self.usage = Usage()
        self.starts = 0
        self.deliveries = 0

    def _tick(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now

    def _call(self, legal: bool, target: JobStatus | None, call: Callable[[], None]) -> bool:
        """Run `call`; a legal one must land on `target`, an illegal one must
        raise IllegalTransition and leave the job exactly as it was."""
        before = self.job.copy()
        if not legal:
            with pytest.raises(IllegalTransition):
                call()
            assert self.job == before, "a refused call changed the job"
            return False
        call()
        after = self.job.status
        assert after is (target or before.status)
        if after is not before.status:
            assert (before.status, after) in ALLOWED_TRANSITIONS
            assert (before.status, after) in CONTRACT
        assert self.job.updated_at == self.now
        assert self.job.version == before.version  # only storage bumps it
        return True

    @rule()
    def start(self) -> None:
        now = self._tick()
        had_summary = self.job.summary is not None
        if self._call(self.job.status is P, R, lambda: self.job.start(now, LEASE)):
            self.starts += 1
            self.deliveries += 1
            assert self.job.step is (Step.CHECKLIST if had_summary else Step.SUMMARIZE)
            assert self.job.lease_expires_at == now + LEASE

    @rule(text=texts, usage=usages)
    def record_summary(self, text: str, usage: Usage) -> None:
        now = self._tick()
        legal = self.job.status is R
        if self._call(legal, R, lambda: self.job.record_summary(text, usage, now)):
            self.usage += usage
            assert self.job.summary == text
            assert self.job.step is Step.CHECKLIST

    @rule(checklist=items, usage=usages)
    def record_checklist(self, checklist: tuple[str, ...], usage: Usage) -> None:
        now = self._tick()
        legal = self.job.status is R and self.job.summary is not None
        if self._call(legal, C, lambda: self.job.record_checklist(checklist, usage, now)):
            self.usage += usage
            assert self.job.checklist == checklist
            assert self.job.finished_at == now

    @rule(blank=st.sampled_from(["", " ", "\n\t"]), empty=st.just(()))
    def record_bad_output(self, blank: str, empty: tuple[str, ...]) -> None:
        """Blank outputs are refused before anything changes, whatever the status."""
        now = self._tick()
        before = self.job.copy()
        expected = InvalidOutput if self.job.status is R else IllegalTransition
        with pytest.raises(expected):
            self.job.record_summary(blank, Usage(1, 1, 2), now)
        assert self.job == before
        if self.job.summary is not None or self.job.status is not R:
            with pytest.raises(expected):
                self.job.record_checklist(empty, Usage(1, 1, 2), now)
            assert self.job == before

    @rule(error=errors)
    def fail(self, error: JobError) -> None:
        now = self._tick()
        if self._call(self.job.status is R, F, lambda: self.job.fail(error, now)):
            assert self.job.error == error
            assert self.job.finished_at == now

    @rule()
    def cancel(self) -> None:
        now = self._tick()
        if self._call(self.job.status in {P, R}, X, lambda: self.job.cancel(now)):
            assert self.job.finished_at == now

    @rule()
    def requeue(self) -> None:
        now = self._tick()
        self._call(self.job.status is R, P, lambda: self.job.requeue(now))

    @rule()
    def retry(self) -> None:
        now = self._tick()
        before = self.job.copy()
        if self._call(self.job.status in {F, X}, P, lambda: self.job.retry(now)):
            self.deliveries = 0
            assert (self.job.summary, self.job.checklist) == (before.summary, before.checklist)

    @rule()
    def renew_lease(self) -> None:
        now = self._tick()
        if self._call(self.job.status is R, R, lambda: self.job.renew_lease(now, LEASE)):
            assert self.job.lease_expires_at == now + LEASE

    @rule()
    def note_redispatch(self) -> None:
        now = self._tick()
        self._call(self.job.status is P, P, lambda: self.job.note_redispatch(now))

    @invariant()
    def consistent(self) -> None:
        job = self.job
        assert (job.result is not None) == (job.status is C)
        assert (job.step is not None) == (job.status is R)
        assert (job.lease_expires_at is not None) == (job.status is R)
        assert (job.error is not None) == (job.status is F)
        assert (job.finished_at is not None) == job.status.is_terminal
        assert job.attempts == self.starts
        assert job.deliveries == self.deliveries
        assert job.usage == self.usage
        if job.checklist is not None:
            assert job.summary is not None


JobMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestJobMachine = JobMachine.TestCase
