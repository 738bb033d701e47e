"""ProcessJob: the two-step chain, its retries, and every way a run can end early."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID

import pytest
from builders import LEASE, a_job, seed, stored
from fakes import FakeClock, FakeUnitOfWork, FakeUnitOfWorkFactory
from tests.support.fake_llm import DEFAULT_USAGE, FakeLLM

from application.errors import PermanentLLMError, TransientLLMError
from application.llm_retry import LLMRetryPolicy, RetrySettings
from application.null_metrics import NoMetrics
from application.ports import LLMGateway, Metrics
from application.use_cases.cancel_job import CancelJob
from application.use_cases.delete_job import DeleteJob
from application.use_cases.process_job import Outcome, ProcessJob, ProcessSettings
from domain import ErrorCode, JobResult, JobStatus, Step, Usage

JOB_ID = UUID(int=7)
TEXT = "Wash hands before every patient contact."
SETTINGS = ProcessSettings(lease_s=60, max_deliveries=5)
RETRY = RetrySettings(max_attempts=4, retry_after_max_s=20, backoff_base_s=1, backoff_max_s=3)


class Sleeps:
    """A recording `sleep`: no real waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class Beats:
    """A `sleep` for the lease keeper that returns only when the test lets a beat through."""

    def __init__(self) -> None:
        self._beats: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        await self._beats.get()

    def beat(self) -> None:
        self._beats.put_nowait(None)


def build(
    uow: FakeUnitOfWorkFactory,
    llm: LLMGateway,
    clock: FakeClock,
    settings: ProcessSettings = SETTINGS,
    *,
    sleeps: Sleeps | None = None,
    beats: Beats | None = None,
    rng: random.Random | None = None,
    metrics: Metrics | None = None,
) -> ProcessJob:
    """ProcessJob with retry waits recorded by `sleeps` and heartbeats let through by `beats`
    (without `beats`, no heartbeat comes during a test)."""
    metrics = metrics or NoMetrics()
    retry = LLMRetryPolicy(RETRY, metrics, sleeps or Sleeps(), rng)
    return ProcessJob(uow, llm, clock, retry, metrics, settings, sleep=beats or Beats())


@pytest.fixture
def llm() -> FakeLLM:
    return FakeLLM(summary="Hands must be washed.", checklist=["Wash hands.", "Dry hands."])


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def process(
    uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock, sleeps: Sleeps
) -> ProcessJob:
    return build(uow, llm, clock, sleeps=sleeps, rng=random.Random(1))


@pytest.fixture
def pending(uow: FakeUnitOfWorkFactory, clock: FakeClock) -> None:
    seed(uow, a_job(event_id=JOB_ID, now=clock.now(), input_text=TEXT))


# -- the happy path -------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_both_steps_run_and_the_job_completes(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    outcome = await process.execute(JOB_ID)

    assert outcome is Outcome.COMPLETED
    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.COMPLETED
    assert job.summary == "Hands must be washed."
    assert job.checklist == ("Wash hands.", "Dry hands.")
    assert job.result == JobResult("Hands must be washed.", ("Wash hands.", "Dry hands."))
    assert job.usage == DEFAULT_USAGE + DEFAULT_USAGE
    assert (job.attempts, job.deliveries, job.step, job.error) == (1, 1, None, None)
    assert job.started_at == job.finished_at == clock.now()
    assert llm.calls == [
        ("summarize", TEXT),
        ("checklist", "Hands must be washed.", TEXT),
    ]


@pytest.mark.usefixtures("pending")
async def test_the_summary_is_saved_before_the_checklist_runs(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM
) -> None:
    llm.hold(Step.CHECKLIST)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.CHECKLIST)

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.PROCESSING
    assert job.step is Step.CHECKLIST
    assert job.summary == "Hands must be washed."
    assert job.usage == DEFAULT_USAGE

    llm.release(Step.CHECKLIST)
    assert await task is Outcome.COMPLETED


async def test_a_saved_summary_is_not_paid_for_twice(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    seed(uow, a_job(event_id=JOB_ID, now=clock.now(), input_text=TEXT, summary="Old summary."))

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    assert llm.calls == [("checklist", "Old summary.", TEXT)]
    job = stored(uow, JOB_ID)
    assert job.summary == "Old summary."
    assert job.usage == Usage(10, 5, 15) + DEFAULT_USAGE
    assert job.attempts == 2


# -- who gets to run it ------------------------------------------------------------


async def test_a_duplicate_delivery_of_a_held_job_is_skipped(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    seed(uow, a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now()))
    before = stored(uow, JOB_ID).copy()
    clock.advance(59)  # the lease still has a second to go

    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    assert stored(uow, JOB_ID) == before


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_a_finished_job_is_skipped(
    process: ProcessJob,
    uow: FakeUnitOfWorkFactory,
    llm: FakeLLM,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    before = stored(uow, JOB_ID).copy()

    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    assert stored(uow, JOB_ID) == before


async def test_a_missing_job_is_skipped(process: ProcessJob, llm: FakeLLM) -> None:
    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []


async def test_an_expired_lease_is_taken_over(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    seed(uow, a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now(), summary="S1."))
    clock.advance(LEASE.total_seconds())

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.COMPLETED
    assert (job.attempts, job.deliveries) == (2, 2)
    assert llm.calls == [("checklist", "S1.", job.input_text)]


@pytest.mark.usefixtures("pending")
async def test_a_worker_whose_job_was_taken_over_never_overwrites_it(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, sleeps: Sleeps
) -> None:
    slow_llm = FakeLLM(summary="Slow summary.")
    slow = build(uow, slow_llm, clock, sleeps=sleeps)
    fast = build(uow, FakeLLM(summary="Fast summary."), clock, sleeps=sleeps)
    slow_llm.hold(Step.SUMMARIZE)
    first = asyncio.create_task(slow.execute(JOB_ID))
    await slow_llm.wait_entered(Step.SUMMARIZE)
    clock.advance(61)  # the slow worker missed its heartbeats

    assert await fast.execute(JOB_ID) is Outcome.COMPLETED
    slow_llm.release(Step.SUMMARIZE)
    assert await first is Outcome.STOPPED

    job = stored(uow, JOB_ID)
    assert job.summary == "Fast summary."
    assert job.status is JobStatus.COMPLETED
    assert slow_llm.calls_of(Step.CHECKLIST) == []


class RivalClaimFactory(FakeUnitOfWorkFactory):
    """Another worker claims the job while our claim's transaction is open."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock
        self._raced = False

    def __call__(self) -> FakeUnitOfWork:
        unit = super().__call__()
        if not self._raced:
            self._raced = True
            rival = self.store.jobs[JOB_ID]
            rival.start(self._clock.now(), LEASE)
            rival.version += 1
        return unit


async def test_losing_the_claim_race_is_a_skip(clock: FakeClock, llm: FakeLLM) -> None:
    uow = RivalClaimFactory(clock)
    seed(uow, a_job(event_id=JOB_ID, now=clock.now()))

    assert await build(uow, llm, clock).execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    assert stored(uow, JOB_ID).attempts == 1  # the rival's claim only


async def test_too_many_deliveries_fail_the_job_without_a_call(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    job = a_job(event_id=JOB_ID, now=clock.now())
    job.deliveries = SETTINGS.max_deliveries
    seed(uow, job)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code is ErrorCode.INTERNAL
    assert job.finished_at == clock.now()
    assert llm.calls == []


async def test_the_last_allowed_delivery_still_runs(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    job = a_job(event_id=JOB_ID, now=clock.now())
    job.deliveries = SETTINGS.max_deliveries - 1
    seed(uow, job)

    assert await process.execute(JOB_ID) is Outcome.COMPLETED


# -- ending early ----------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_a_cancel_during_step_one_is_never_overwritten(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.hold(Step.SUMMARIZE)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.SUMMARIZE)

    await CancelJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.summary is None
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_a_cancel_during_step_two_keeps_the_summary(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.hold(Step.CHECKLIST)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.CHECKLIST)

    await CancelJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.CHECKLIST)

    assert await task is Outcome.STOPPED
    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.summary == "Hands must be washed."
    assert job.checklist is None
    assert job.result is None


@pytest.mark.usefixtures("pending")
async def test_a_job_deleted_mid_run_is_not_recreated(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.hold(Step.SUMMARIZE)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.SUMMARIZE)

    await DeleteJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    assert JOB_ID not in uow.store.jobs
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_a_job_deleted_while_failing_is_not_recreated(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.fail_next(Step.SUMMARIZE, PermanentLLMError(ErrorCode.LLM_REJECTED, "no"))
    llm.hold(Step.SUMMARIZE)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.SUMMARIZE)

    await DeleteJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    assert JOB_ID not in uow.store.jobs


@pytest.mark.parametrize("step", list(Step))
@pytest.mark.usefixtures("pending")
async def test_a_cancelled_run_hands_the_job_back(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, step: Step
) -> None:
    llm.hold(step)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(step)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.PENDING
    assert (job.step, job.lease_expires_at) == (None, None)
    assert (job.summary is not None) == (step is Step.CHECKLIST)

    llm.release(step)  # the next worker finishes it, without redoing a saved step
    assert await process.execute(JOB_ID) is Outcome.COMPLETED
    assert len(llm.calls_of(Step.SUMMARIZE)) == (1 if step is Step.CHECKLIST else 2)
    assert stored(uow, JOB_ID).attempts == 2


# -- LLM errors ------------------------------------------------------------------

TRANSIENT_CODES = [ErrorCode.LLM_RATE_LIMITED, ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_TIMEOUT]


@pytest.mark.usefixtures("pending")
async def test_transient_errors_are_retried_with_capped_jittered_backoff(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, sleeps: Sleeps
) -> None:
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(ErrorCode.LLM_UNAVAILABLE, "503"), times=3)

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    assert len(llm.calls_of(Step.SUMMARIZE)) == 4
    assert len(sleeps.delays) == 3
    ceilings = [1, 2, 3]  # base * 2**(n-1), capped at backoff_max_s
    assert all(0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))
    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.COMPLETED
    assert job.attempts == 1  # call retries inside a step are not attempts


@pytest.mark.usefixtures("pending")
async def test_retry_after_is_honoured_and_capped(
    process: ProcessJob, llm: FakeLLM, sleeps: Sleeps
) -> None:
    for retry_after in (7.5, 500.0, -3.0):
        llm.fail_next(
            Step.SUMMARIZE,
            TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429", retry_after=retry_after),
        )

    assert await process.execute(JOB_ID) is Outcome.COMPLETED
    assert sleeps.delays == [7.5, RETRY.retry_after_max_s, 0.0]


@pytest.mark.parametrize("code", TRANSIENT_CODES)
@pytest.mark.usefixtures("pending")
async def test_transient_errors_until_the_attempts_run_out_fail_the_job(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, sleeps: Sleeps, code: ErrorCode
) -> None:
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(code, f"boom {code}"), times=10)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.message) == (code, f"boom {code}")
    assert (job.step, job.lease_expires_at, job.result) == (None, None, None)
    assert len(llm.calls) == RETRY.max_attempts
    assert len(sleeps.delays) == RETRY.max_attempts - 1


@pytest.mark.usefixtures("pending")
async def test_the_last_error_names_the_failure(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM
) -> None:
    for code in (ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_TIMEOUT):
        llm.fail_next(Step.SUMMARIZE, TransientLLMError(code, "x"))
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429"))

    assert await process.execute(JOB_ID) is Outcome.FAILED
    error = stored(uow, JOB_ID).error
    assert error is not None
    assert error.code is ErrorCode.LLM_RATE_LIMITED


@pytest.mark.usefixtures("pending")
async def test_a_checklist_step_failure_keeps_the_summary(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM
) -> None:
    llm.fail_next(Step.CHECKLIST, TransientLLMError(ErrorCode.LLM_TIMEOUT, "slow"), times=10)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.summary == "Hands must be washed."
    assert job.usage == DEFAULT_USAGE
    assert len(llm.calls_of(Step.SUMMARIZE)) == 1


@pytest.mark.parametrize("code", [ErrorCode.LLM_REJECTED, ErrorCode.LLM_BAD_OUTPUT])
@pytest.mark.usefixtures("pending")
async def test_a_permanent_error_fails_at_once(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, sleeps: Sleeps, code: ErrorCode
) -> None:
    llm.fail_next(Step.SUMMARIZE, PermanentLLMError(code, "content filter"))

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code is code
    assert len(llm.calls) == 1
    assert sleeps.delays == []


@pytest.mark.usefixtures("pending")
async def test_a_failed_job_retried_later_completes_from_the_saved_step(
    process: ProcessJob, uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.fail_next(Step.CHECKLIST, PermanentLLMError(ErrorCode.LLM_REJECTED, "no"))
    assert await process.execute(JOB_ID) is Outcome.FAILED
    job = stored(uow, JOB_ID)
    job.retry(clock.now())  # as RetryJob would
    job.version += 1

    assert await process.execute(JOB_ID) is Outcome.COMPLETED
    assert len(llm.calls_of(Step.SUMMARIZE)) == 1
    assert stored(uow, JOB_ID).attempts == 2


# -- the backstops ---------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_a_blank_summary_fails_the_job_as_bad_output(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, sleeps: Sleeps
) -> None:
    broken = FakeLLM(summary="   ")  # the gateway broke its promise: a blank summary
    process = build(uow, broken, clock, sleeps=sleeps)
    assert await process.execute(JOB_ID) is Outcome.FAILED
    job = stored(uow, JOB_ID)
    assert job.error is not None
    assert job.error.code is ErrorCode.LLM_BAD_OUTPUT
    assert job.summary is None
    assert len(broken.calls) == 1


@pytest.mark.usefixtures("pending")
async def test_an_unexpected_error_ends_as_internal_after_max_deliveries(
    uow: FakeUnitOfWorkFactory, clock: FakeClock, sleeps: Sleeps
) -> None:
    broken = FakeLLM()
    broken.fail_next(Step.SUMMARIZE, RuntimeError("a bug"), times=SETTINGS.max_deliveries)
    process = build(uow, broken, clock, sleeps=sleeps)
    for delivery in range(1, SETTINGS.max_deliveries + 1):
        with pytest.raises(RuntimeError, match="a bug"):
            await process.execute(JOB_ID)
        job = stored(uow, JOB_ID)
        assert (job.status, job.deliveries) == (JobStatus.PROCESSING, delivery)
        clock.advance(LEASE.total_seconds())  # the lease runs out; it is delivered again

    assert await process.execute(JOB_ID) is Outcome.FAILED
    job = stored(uow, JOB_ID)
    assert job.error is not None
    assert job.error.code is ErrorCode.INTERNAL
    assert len(broken.calls) == SETTINGS.max_deliveries


@pytest.mark.usefixtures("pending")
async def test_the_lease_is_renewed_while_a_step_runs(
    uow: FakeUnitOfWorkFactory, llm: FakeLLM, clock: FakeClock
) -> None:
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)
    llm.hold(Step.SUMMARIZE)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(Step.SUMMARIZE)
    claimed = stored(uow, JOB_ID).copy()
    clock.advance(30)

    for _ in range(2):  # the second renewal writes over the first (its own newer version)
        beats.beat()
        for _ in range(100):
            await asyncio.sleep(0)
            if stored(uow, JOB_ID).lease_expires_at == clock.now() + LEASE:
                break
        clock.advance(15)
    clock.advance(-15)

    renewed = stored(uow, JOB_ID)
    assert renewed.version == claimed.version + 2
    assert renewed.lease_expires_at == clock.now() + LEASE
    assert renewed.status is JobStatus.PROCESSING
    llm.release(Step.SUMMARIZE)
    assert await task is Outcome.COMPLETED
