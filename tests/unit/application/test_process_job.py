"""ProcessJob: the two-step chain, its retries, and every way a run can end early."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from uuid import UUID

import pytest
from builders import (
    LEASE,
    Interleaved,
    Storage,
    a_job,
    eventually,
    found,
    rival_update,
    seed,
    stored,
    update,
)
from fakes import FakeClock, RecordingDispatcher
from tests.support.fake_llm import DEFAULT_USAGE, FakeLLM

from adapters.notify.local import LocalRevocationFeed
from application.errors import PermanentLLMError, TransientLLMError
from application.events import announce_revocations, publishing
from application.llm_retry import LLMRetryPolicy, RetrySettings
from application.null_metrics import NoMetrics
from application.ports import (
    LLMGateway,
    Metrics,
    Revocation,
    Summary,
    UnitOfWork,
    UnitOfWorkFactory,
)
from application.use_cases.cancel_job import CancelJob
from application.use_cases.delete_job import DeleteJob
from application.use_cases.process_job import Outcome, ProcessJob, ProcessSettings
from application.use_cases.recover_stuck_jobs import RecoverStuckJobs
from application.use_cases.relay_outbox import RelayOutbox
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


async def held_in(
    process: ProcessJob, llm: FakeLLM, step: Step = Step.SUMMARIZE
) -> asyncio.Task[Outcome]:
    """A run of the job, started and waited for until it is in `step`'s (held) LLM call."""
    llm.hold(step)
    task = asyncio.create_task(process.execute(JOB_ID))
    await llm.wait_entered(step)
    return task


def build(
    uow: Storage,
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
def process(uow: Storage, llm: FakeLLM, clock: FakeClock, sleeps: Sleeps) -> ProcessJob:
    return build(uow, llm, clock, sleeps=sleeps, rng=random.Random(1))


@pytest.fixture
async def pending(uow: Storage, clock: FakeClock) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now(), input_text=TEXT))


# -- the happy path -------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_both_steps_run_and_the_job_completes(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    outcome = await process.execute(JOB_ID)

    assert outcome is Outcome.COMPLETED
    job = await stored(uow, JOB_ID)
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
    process: ProcessJob, uow: Storage, llm: FakeLLM
) -> None:
    task = await held_in(process, llm, Step.CHECKLIST)

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.PROCESSING
    assert job.step is Step.CHECKLIST
    assert job.summary == "Hands must be washed."
    assert job.usage == DEFAULT_USAGE

    llm.release(Step.CHECKLIST)
    assert await task is Outcome.COMPLETED


async def test_a_saved_summary_is_not_paid_for_twice(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    await seed(
        uow, a_job(event_id=JOB_ID, now=clock.now(), input_text=TEXT, summary="Old summary.")
    )

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    assert llm.calls == [("checklist", "Old summary.", TEXT)]
    job = await stored(uow, JOB_ID)
    assert job.summary == "Old summary."
    assert job.usage == Usage(10, 5, 15) + DEFAULT_USAGE
    assert job.attempts == 2


# -- who gets to run it ------------------------------------------------------------


async def test_a_duplicate_delivery_of_a_held_job_is_skipped(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now()))
    before = await stored(uow, JOB_ID)
    clock.advance(59)  # the lease still has a second to go

    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    assert await stored(uow, JOB_ID) == before


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.CANCELLED])
async def test_a_finished_job_is_skipped(
    process: ProcessJob,
    uow: Storage,
    llm: FakeLLM,
    clock: FakeClock,
    status: JobStatus,
) -> None:
    await seed(uow, a_job(status, event_id=JOB_ID, now=clock.now()))
    before = await stored(uow, JOB_ID)

    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    assert await stored(uow, JOB_ID) == before


async def test_a_missing_job_is_skipped(process: ProcessJob, llm: FakeLLM) -> None:
    assert await process.execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []


async def test_an_expired_lease_is_taken_over(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    await seed(uow, a_job(JobStatus.PROCESSING, event_id=JOB_ID, now=clock.now(), summary="S1."))
    clock.advance(LEASE.total_seconds())

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.COMPLETED
    assert (job.attempts, job.deliveries) == (2, 2)
    assert llm.calls == [("checklist", "S1.", job.input_text)]


@pytest.mark.usefixtures("pending")
async def test_a_worker_whose_job_was_taken_over_never_overwrites_it(
    uow: Storage, clock: FakeClock, sleeps: Sleeps
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

    job = await stored(uow, JOB_ID)
    assert job.summary == "Fast summary."
    assert job.status is JobStatus.COMPLETED
    assert slow_llm.calls_of(Step.CHECKLIST) == []


async def test_losing_the_claim_race_is_a_skip(
    uow: Storage, clock: FakeClock, llm: FakeLLM
) -> None:
    await seed(uow, a_job(event_id=JOB_ID, now=clock.now()))
    # Another worker claims the job between our claim's read and its save.
    rival_claim = rival_update(uow, JOB_ID, lambda job: job.claim(clock.now(), LEASE, 5))
    racing = Interleaved(uow, after_read={1: rival_claim})

    assert await build(racing, llm, clock).execute(JOB_ID) is Outcome.SKIPPED
    assert llm.calls == []
    job = await stored(uow, JOB_ID)
    assert (job.attempts, job.version) == (1, 1)  # the rival's claim only


async def test_too_many_deliveries_fail_the_job_without_a_call(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    job = a_job(event_id=JOB_ID, now=clock.now())
    job.deliveries = SETTINGS.max_deliveries
    await seed(uow, job)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code is ErrorCode.INTERNAL
    assert job.finished_at == clock.now()
    assert llm.calls == []


async def test_the_last_allowed_delivery_still_runs(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    job = a_job(event_id=JOB_ID, now=clock.now())
    job.deliveries = SETTINGS.max_deliveries - 1
    await seed(uow, job)

    assert await process.execute(JOB_ID) is Outcome.COMPLETED


# -- ending early ----------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_a_cancel_during_step_one_is_never_overwritten(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    task = await held_in(process, llm, Step.SUMMARIZE)

    await CancelJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.summary is None
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_a_cancel_during_step_two_keeps_the_summary(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    task = await held_in(process, llm, Step.CHECKLIST)

    await CancelJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.CHECKLIST)

    assert await task is Outcome.STOPPED
    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert job.summary == "Hands must be washed."
    assert job.checklist is None
    assert job.result is None


@pytest.mark.usefixtures("pending")
async def test_a_job_deleted_mid_run_is_not_recreated(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    task = await held_in(process, llm, Step.SUMMARIZE)

    await DeleteJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    assert await found(uow, JOB_ID) is None
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_a_job_deleted_while_failing_is_not_recreated(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.fail_next(Step.SUMMARIZE, PermanentLLMError(ErrorCode.LLM_REJECTED, "no"))
    task = await held_in(process, llm, Step.SUMMARIZE)

    await DeleteJob(uow, clock).execute("alice", JOB_ID)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    assert await found(uow, JOB_ID) is None


@pytest.mark.parametrize("step", list(Step))
@pytest.mark.usefixtures("pending")
async def test_a_cancelled_run_hands_the_job_back(
    process: ProcessJob, uow: Storage, llm: FakeLLM, step: Step
) -> None:
    task = await held_in(process, llm, step)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.PENDING
    assert (job.step, job.lease_expires_at) == (None, None)
    assert (job.summary is not None) == (step is Step.CHECKLIST)

    llm.release(step)  # the next worker finishes it, without redoing a saved step
    assert await process.execute(JOB_ID) is Outcome.COMPLETED
    assert len(llm.calls_of(Step.SUMMARIZE)) == (1 if step is Step.CHECKLIST else 2)
    assert (await stored(uow, JOB_ID)).attempts == 2


# -- LLM errors ------------------------------------------------------------------

TRANSIENT_CODES = [ErrorCode.LLM_RATE_LIMITED, ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_TIMEOUT]


@pytest.mark.usefixtures("pending")
async def test_transient_errors_are_retried_with_capped_jittered_backoff(
    process: ProcessJob, uow: Storage, llm: FakeLLM, sleeps: Sleeps
) -> None:
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(ErrorCode.LLM_UNAVAILABLE, "503"), times=3)

    assert await process.execute(JOB_ID) is Outcome.COMPLETED

    assert len(llm.calls_of(Step.SUMMARIZE)) == 4
    assert len(sleeps.delays) == 3
    ceilings = [1, 2, 3]  # base * 2**(n-1), capped at backoff_max_s
    assert all(0 <= d <= c for d, c in zip(sleeps.delays, ceilings, strict=True))
    job = await stored(uow, JOB_ID)
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
    process: ProcessJob, uow: Storage, llm: FakeLLM, sleeps: Sleeps, code: ErrorCode
) -> None:
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(code, f"boom {code}"), times=10)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert (job.error.code, job.error.message) == (code, f"boom {code}")
    assert (job.step, job.lease_expires_at, job.result) == (None, None, None)
    assert len(llm.calls) == RETRY.max_attempts
    assert len(sleeps.delays) == RETRY.max_attempts - 1


@pytest.mark.usefixtures("pending")
async def test_the_last_error_names_the_failure(
    process: ProcessJob, uow: Storage, llm: FakeLLM
) -> None:
    for code in (ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_UNAVAILABLE, ErrorCode.LLM_TIMEOUT):
        llm.fail_next(Step.SUMMARIZE, TransientLLMError(code, "x"))
    llm.fail_next(Step.SUMMARIZE, TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429"))

    assert await process.execute(JOB_ID) is Outcome.FAILED
    error = (await stored(uow, JOB_ID)).error
    assert error is not None
    assert error.code is ErrorCode.LLM_RATE_LIMITED


@pytest.mark.usefixtures("pending")
async def test_a_checklist_step_failure_keeps_the_summary(
    process: ProcessJob, uow: Storage, llm: FakeLLM
) -> None:
    llm.fail_next(Step.CHECKLIST, TransientLLMError(ErrorCode.LLM_TIMEOUT, "slow"), times=10)

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.summary == "Hands must be washed."
    assert job.usage == DEFAULT_USAGE
    assert len(llm.calls_of(Step.SUMMARIZE)) == 1


@pytest.mark.parametrize("code", [ErrorCode.LLM_REJECTED, ErrorCode.LLM_BAD_OUTPUT])
@pytest.mark.usefixtures("pending")
async def test_a_permanent_error_fails_at_once(
    process: ProcessJob, uow: Storage, llm: FakeLLM, sleeps: Sleeps, code: ErrorCode
) -> None:
    llm.fail_next(Step.SUMMARIZE, PermanentLLMError(code, "content filter"))

    assert await process.execute(JOB_ID) is Outcome.FAILED

    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.FAILED
    assert job.error is not None
    assert job.error.code is code
    assert len(llm.calls) == 1
    assert sleeps.delays == []


@pytest.mark.usefixtures("pending")
async def test_a_failed_job_retried_later_completes_from_the_saved_step(
    process: ProcessJob, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    llm.fail_next(Step.CHECKLIST, PermanentLLMError(ErrorCode.LLM_REJECTED, "no"))
    assert await process.execute(JOB_ID) is Outcome.FAILED
    await update(uow, JOB_ID, lambda job: job.retry(clock.now()))  # as RetryJob would

    assert await process.execute(JOB_ID) is Outcome.COMPLETED
    assert len(llm.calls_of(Step.SUMMARIZE)) == 1
    assert (await stored(uow, JOB_ID)).attempts == 2


# -- the backstops ---------------------------------------------------------------


@pytest.mark.usefixtures("pending")
async def test_a_blank_summary_fails_the_job_as_bad_output(
    uow: Storage, clock: FakeClock, sleeps: Sleeps
) -> None:
    broken = FakeLLM(summary="   ")  # the gateway broke its promise: a blank summary
    process = build(uow, broken, clock, sleeps=sleeps)
    assert await process.execute(JOB_ID) is Outcome.FAILED
    job = await stored(uow, JOB_ID)
    assert job.error is not None
    assert job.error.code is ErrorCode.LLM_BAD_OUTPUT
    assert job.summary is None
    assert len(broken.calls) == 1


@pytest.mark.usefixtures("pending")
async def test_an_unexpected_error_ends_as_internal_after_max_deliveries(
    uow: Storage, clock: FakeClock, sleeps: Sleeps
) -> None:
    broken = FakeLLM()
    broken.fail_next(Step.SUMMARIZE, RuntimeError("a bug"), times=SETTINGS.max_deliveries)
    process = build(uow, broken, clock, sleeps=sleeps)
    for delivery in range(1, SETTINGS.max_deliveries + 1):
        with pytest.raises(RuntimeError, match="a bug"):
            await process.execute(JOB_ID)
        job = await stored(uow, JOB_ID)
        assert (job.status, job.deliveries) == (JobStatus.PROCESSING, delivery)
        clock.advance(LEASE.total_seconds())  # the lease runs out; it is delivered again

    assert await process.execute(JOB_ID) is Outcome.FAILED
    job = await stored(uow, JOB_ID)
    assert job.error is not None
    assert job.error.code is ErrorCode.INTERNAL
    assert len(broken.calls) == SETTINGS.max_deliveries


@pytest.mark.usefixtures("pending")
async def test_the_lease_is_renewed_while_a_step_runs(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)
    task = await held_in(process, llm, Step.SUMMARIZE)
    claimed = await stored(uow, JOB_ID)
    clock.advance(30)

    async def renewed_now() -> bool:
        return (await stored(uow, JOB_ID)).lease_expires_at == clock.now() + LEASE

    for _ in range(2):  # the second renewal writes over the first (its own newer version)
        beats.beat()
        await eventually(renewed_now)
        clock.advance(15)
    clock.advance(-15)

    renewed = await stored(uow, JOB_ID)
    assert renewed.version == claimed.version + 2
    assert renewed.lease_expires_at == clock.now() + LEASE
    assert renewed.status is JobStatus.PROCESSING
    llm.release(Step.SUMMARIZE)
    assert await task is Outcome.COMPLETED


# -- races (on PostgreSQL these are real transactions racing) ------------------------


@pytest.mark.usefixtures("pending")
async def test_a_heartbeat_during_a_step_does_not_lose_the_steps_save(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)
    task = await held_in(process, llm, Step.SUMMARIZE)
    claimed = await stored(uow, JOB_ID)

    beats.beat()  # the renewal commits: the step's own copy is now one version behind

    async def renewed() -> bool:
        return (await stored(uow, JOB_ID)).version == claimed.version + 1

    await eventually(renewed)
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.COMPLETED
    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.COMPLETED
    assert job.summary == "Hands must be washed."
    assert job.version == claimed.version + 3  # renewal, summary, checklist
    assert (job.attempts, job.lease_expires_at) == (1, None)


@pytest.mark.usefixtures("pending")
async def test_a_heartbeat_stopped_mid_save_by_the_end_of_a_step_leaves_the_job_sound(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)
    task = await held_in(process, llm, Step.CHECKLIST)

    async with uow() as blocker:  # another transaction holds the job's row
        held = await blocker.jobs.get(JOB_ID)
        assert held is not None
        await blocker.jobs.save(held)
        beats.beat()  # the renewal's save now waits for the row
        await asyncio.sleep(0.1)
        llm.release(Step.CHECKLIST)  # the step ends: the keeper is stopped mid-save
        await asyncio.sleep(0.1)
    # The blocker rolled back: the step's own save goes through.

    assert await task is Outcome.COMPLETED
    job = await stored(uow, JOB_ID)
    assert (job.status, job.step, job.lease_expires_at) == (JobStatus.COMPLETED, None, None)
    assert job.checklist == ("Wash hands.", "Dry hands.")
    assert job.version == 3  # claim, summary, checklist: the stopped renewal wrote nothing
    # Nothing is left holding the row: another writer can still change the job.
    await update(uow, JOB_ID, lambda j: None)


@pytest.mark.usefixtures("pending")
async def test_a_cancel_racing_a_heartbeat_wins_and_stops_the_run(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)
    task = await held_in(process, llm, Step.SUMMARIZE)

    beats.beat()
    await CancelJob(uow, clock).execute("alice", JOB_ID)  # races the renewal's save
    beats.beat()  # a later renewal finds the job no longer ours
    llm.release(Step.SUMMARIZE)

    assert await task is Outcome.STOPPED
    job = await stored(uow, JOB_ID)
    assert (job.status, job.lease_expires_at, job.summary) == (JobStatus.CANCELLED, None, None)
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_a_cancel_committed_after_the_step_and_before_its_save_is_kept(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    cancel = CancelJob(uow, clock)

    class CancelOnReturn(FakeLLM):
        async def summarize(self, text: str) -> Summary:
            summary = await super().summarize(text)
            await cancel.execute("alice", JOB_ID)  # lands just before the summary's save
            return summary

    racing_llm = CancelOnReturn(summary="Late summary.")

    assert await build(uow, racing_llm, clock).execute(JOB_ID) is Outcome.STOPPED
    job = await stored(uow, JOB_ID)
    assert (job.status, job.summary) == (JobStatus.CANCELLED, None)
    assert racing_llm.calls_of(Step.CHECKLIST) == []


# -- revocation notices: a change that takes the job away stops the call at once --------


class Notified:
    """`uow` with revocations announced after each commit (as the container wires it),
    on an in-process feed; `published` records every notice."""

    def __init__(self, uow: Storage) -> None:
        self.published: list[Revocation] = []
        self.feed = LocalRevocationFeed()
        self.units = publishing(uow, [announce_revocations(self)])

    def publish(self, revocations: Sequence[Revocation]) -> None:
        self.published.extend(revocations)
        self.feed.publish(revocations)

    def process(self, llm: LLMGateway, clock: FakeClock) -> ProcessJob:
        """A worker that hears the notices (and gets no heartbeat during the test)."""
        retry = LLMRetryPolicy(RETRY, NoMetrics(), Sleeps())
        return ProcessJob(
            self.units,
            llm,
            clock,
            retry,
            NoMetrics(),
            SETTINGS,
            sleep=Beats(),
            revocations=self.feed,
        )


@pytest.fixture
def notified(uow: Storage) -> Notified:
    return Notified(uow)


@pytest.mark.parametrize("step", list(Step))
@pytest.mark.usefixtures("pending")
async def test_a_cancel_stops_the_running_llm_call_at_once(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock, step: Step
) -> None:
    run = await held_in(notified.process(llm, clock), llm, step)

    await CancelJob(notified.units, clock).execute("alice", JOB_ID)

    assert await asyncio.wait_for(run, timeout=5) is Outcome.STOPPED  # no release needed
    job = await stored(uow, JOB_ID)
    assert job.status is JobStatus.CANCELLED
    assert (job.summary is not None) == (step is Step.CHECKLIST)
    assert job.checklist is None
    assert notified.published == [Revocation(JOB_ID, 1, JobStatus.CANCELLED)]
    assert notified.feed.watching == 0  # the run's watch ended with it


@pytest.mark.usefixtures("pending")
async def test_a_delete_stops_the_running_llm_call_at_once(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    run = await held_in(notified.process(llm, clock), llm)

    await DeleteJob(notified.units, clock).execute("alice", JOB_ID)

    assert await asyncio.wait_for(run, timeout=5) is Outcome.STOPPED
    assert await found(uow, JOB_ID) is None
    assert llm.calls_of(Step.CHECKLIST) == []


@pytest.mark.usefixtures("pending")
async def test_recovery_of_an_expired_lease_stops_the_call_at_once(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    run = await held_in(notified.process(llm, clock), llm)
    clock.advance(61)  # the worker missed its heartbeats: the lease ran out

    recover = RecoverStuckJobs(
        notified.units, RelayOutbox(notified.units, RecordingDispatcher(), clock), clock
    )
    assert await recover.execute() == 1

    assert await asyncio.wait_for(run, timeout=5) is Outcome.STOPPED
    job = await stored(uow, JOB_ID)
    assert (job.status, job.attempts) == (JobStatus.PENDING, 1)  # left for the next worker
    assert notified.published == [Revocation(JOB_ID, 1, JobStatus.PENDING)]


@pytest.mark.usefixtures("pending")
async def test_a_takeover_stops_the_old_workers_call_and_not_the_new_ones(
    notified: Notified, uow: Storage, clock: FakeClock
) -> None:
    slow_llm = FakeLLM(summary="Slow summary.")
    first = await held_in(notified.process(slow_llm, clock), slow_llm)
    clock.advance(61)

    # The new worker hears its own takeover too (while its claim commits): not its loss.
    fast = notified.process(FakeLLM(summary="Fast summary.", checklist=["Dry hands."]), clock)
    assert await fast.execute(JOB_ID) is Outcome.COMPLETED

    assert await asyncio.wait_for(first, timeout=5) is Outcome.STOPPED  # never released
    job = await stored(uow, JOB_ID)
    assert (job.status, job.summary, job.attempts) == (JobStatus.COMPLETED, "Fast summary.", 2)
    assert notified.published == [Revocation(JOB_ID, 2, JobStatus.PROCESSING)]


async def test_a_late_notice_about_an_earlier_attempt_leaves_the_run_alone(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    """Notices cross processes and may arrive late: the first attempt's cancel, heard
    while the retried job's second attempt runs, is not a cancel of that attempt."""
    job = a_job(JobStatus.CANCELLED, event_id=JOB_ID, now=clock.now(), input_text=TEXT)
    job.retry(clock.now())
    await seed(uow, job)
    run = await held_in(notified.process(llm, clock), llm)

    notified.feed.publish([Revocation(JOB_ID, 1, JobStatus.CANCELLED)])
    await asyncio.sleep(0.01)
    assert not run.done()
    llm.release(Step.SUMMARIZE)

    assert await run is Outcome.COMPLETED
    assert (await stored(uow, JOB_ID)).attempts == 2


@pytest.mark.usefixtures("pending")
async def test_notices_of_other_jobs_leave_the_run_alone(
    notified: Notified, llm: FakeLLM, clock: FakeClock
) -> None:
    run = await held_in(notified.process(llm, clock), llm)

    notified.feed.publish([Revocation(UUID(int=8), 1, JobStatus.CANCELLED)])
    await asyncio.sleep(0.01)
    assert not run.done()
    llm.release(Step.SUMMARIZE)

    assert await run is Outcome.COMPLETED


class _CancelRightAfterFirstCommit:
    """Units of `base`; the first one to commit (the claim) is followed at once, before
    the claimer goes on, by the owner's cancel (its notice comes mid-claim)."""

    def __init__(self, base: UnitOfWorkFactory, cancel: CancelJob) -> None:
        self._base = base
        self._cancel = cancel
        self._first = True

    def __call__(self) -> UnitOfWork:
        unit = self._base()
        if self._first:
            self._first = False
            commit = unit.commit

            async def commit_then_cancel() -> None:
                await commit()
                await self._cancel.execute("alice", JOB_ID)

            unit.commit = commit_then_cancel  # type: ignore[method-assign]
        return unit


@pytest.mark.usefixtures("pending")
async def test_a_notice_heard_while_the_claim_commits_still_stops_the_run(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    racing = _CancelRightAfterFirstCommit(notified.units, CancelJob(notified.units, clock))
    retry = LLMRetryPolicy(RETRY, NoMetrics(), Sleeps())
    process = ProcessJob(
        racing, llm, clock, retry, NoMetrics(), SETTINGS, sleep=Beats(), revocations=notified.feed
    )
    llm.hold(Step.SUMMARIZE)

    assert await asyncio.wait_for(process.execute(JOB_ID), timeout=5) is Outcome.STOPPED
    assert (await stored(uow, JOB_ID)).status is JobStatus.CANCELLED


@pytest.mark.usefixtures("pending")
async def test_a_shutdown_hand_back_is_announced(
    notified: Notified, uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    run = await held_in(notified.process(llm, clock), llm)

    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run

    assert (await stored(uow, JOB_ID)).status is JobStatus.PENDING
    assert notified.published == [Revocation(JOB_ID, 1, JobStatus.PENDING)]


@pytest.mark.usefixtures("pending")
async def test_without_a_notice_the_heartbeat_still_stops_the_call(
    uow: Storage, llm: FakeLLM, clock: FakeClock
) -> None:
    """The notice lost (Redis down, say): the next heartbeat finds the job cancelled."""
    beats = Beats()
    process = build(uow, llm, clock, beats=beats)  # no revocation feed at all
    run = await held_in(process, llm)

    await CancelJob(uow, clock).execute("alice", JOB_ID)
    await asyncio.sleep(0.01)
    assert not run.done()  # nothing told it yet
    beats.beat()

    assert await asyncio.wait_for(run, timeout=5) is Outcome.STOPPED  # never released
    assert (await stored(uow, JOB_ID)).status is JobStatus.CANCELLED


@pytest.mark.usefixtures("pending")
async def test_a_whole_run_announces_no_revocation(
    notified: Notified, llm: FakeLLM, clock: FakeClock
) -> None:
    assert await notified.process(llm, clock).execute(JOB_ID) is Outcome.COMPLETED
    assert notified.published == []
    assert notified.feed.watching == 0


@pytest.mark.usefixtures("pending")
async def test_a_cancel_of_a_job_no_worker_runs_announces_no_revocation(
    notified: Notified, clock: FakeClock
) -> None:
    await CancelJob(notified.units, clock).execute("alice", JOB_ID)
    assert notified.published == []


@pytest.mark.parametrize(
    ("attempt", "status", "takes"),
    [
        (1, JobStatus.CANCELLED, True),  # our attempt cancelled (or deleted)
        (1, JobStatus.PENDING, True),  # our attempt handed back
        (2, JobStatus.PROCESSING, True),  # taken over by a later attempt
        (3, JobStatus.PENDING, True),  # ... and handed back since
        (1, JobStatus.PROCESSING, False),  # our own claim (a takeover we made)
        (0, JobStatus.CANCELLED, False),  # an earlier attempt's cancel, heard late
        (0, JobStatus.PENDING, False),
    ],
)
def test_which_notices_take_attempt_one(attempt: int, status: JobStatus, takes: bool) -> None:
    assert Revocation(JOB_ID, attempt, status).takes(1) is takes
