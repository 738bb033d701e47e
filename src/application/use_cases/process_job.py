"""ProcessJob: the two-step chain (summarize, then a checklist from the summary)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from application.errors import ConcurrencyConflict, LLMError, TransientLLMError
from application.ports import (
    Checklist,
    Clock,
    LLMGateway,
    Metrics,
    NoMetrics,
    Summary,
    UnitOfWorkFactory,
)
from domain import ErrorCode, InvalidOutput, Job, JobError, JobStatus, Step

log = logging.getLogger(__name__)
T = TypeVar("T", Summary, Checklist)


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    lease_s: float = 60.0
    llm_max_attempts: int = 4
    retry_after_max_s: float = 60.0
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    max_deliveries: int = 5


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to run: missing, terminal, or held by a live worker
    STOPPED = "stopped"  # cancelled, deleted or taken over while we worked
    REQUEUED = "requeued"  # handed back (shutdown)


class _Lost(Exception):
    """The job is no longer ours: cancelled, deleted, or requeued to another worker."""


class ProcessJob:
    """Rules:
    - the job is claimed with a compare-and-set (status + version): a duplicate
      delivery of a job another worker holds is a no-op;
    - a step whose output is already saved is skipped (a retry or redelivery
      never pays for it twice); each output is saved as soon as it exists;
    - before saving a step the job is read again: a cancelled, deleted or
      taken-over job is left as it is (never overwritten);
    - transient LLM errors are retried with exponential backoff and full
      jitter, honouring the provider's Retry-After (capped), up to
      `llm_max_attempts` per step; permanent ones fail the job at once;
    - a job delivered more than `max_deliveries` times fails with `internal`;
    - while a step runs the lease is renewed every lease/4;
    - if the run itself is cancelled (shutdown), the job is handed back to pending.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        llm: LLMGateway,
        clock: Clock,
        settings: ProcessSettings | None = None,
        metrics: Metrics | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._uow_factory = uow_factory
        self._llm = llm
        self._clock = clock
        self._settings = settings or ProcessSettings()
        self._metrics = metrics or NoMetrics()
        self._sleep = sleep
        self._rng = rng or random.Random()

    @property
    def _lease(self) -> timedelta:
        return timedelta(seconds=self._settings.lease_s)

    async def execute(self, event_id: UUID) -> Outcome:
        job = await self._claim(event_id)
        if job is None:
            return Outcome.SKIPPED
        if job.status is JobStatus.FAILED:
            return Outcome.FAILED
        try:
            return await self._run(job)
        except _Lost:
            log.info("job left alone: no longer ours", extra={"event_id": str(event_id)})
            return Outcome.STOPPED
        except asyncio.CancelledError:
            await asyncio.shield(self._hand_back(job))
            raise

    async def _run(self, job: Job) -> Outcome:
        try:
            if job.summary is None:
                summary = await self._step(
                    job, Step.SUMMARIZE, lambda: self._llm.summarize(job.input_text)
                )
                job = await self._update(
                    job, lambda j: j.record_summary(summary.text, summary.usage, self._clock.now())
                )
            assert job.summary is not None
            summary_text = job.summary
            checklist = await self._step(
                job, Step.CHECKLIST, lambda: self._llm.write_checklist(summary_text, job.input_text)
            )
            await self._update(
                job,
                lambda j: j.record_checklist(checklist.items, checklist.usage, self._clock.now()),
            )
        except (LLMError, InvalidOutput) as exc:
            # InvalidOutput: the entity refused the output (blank summary, empty checklist).
            error = (
                JobError(exc.code, exc.message)
                if isinstance(exc, LLMError)
                else JobError(ErrorCode.LLM_BAD_OUTPUT, "The LLM returned an empty output.")
            )
            await self._update(job, lambda j: j.fail(error, self._clock.now()))
            self._metrics.job_reached(JobStatus.FAILED)
            log.info("job failed", extra={"event_id": str(job.event_id), "error_code": error.code})
            return Outcome.FAILED
        self._metrics.job_reached(JobStatus.COMPLETED)
        return Outcome.COMPLETED

    # -- claiming ------------------------------------------------------------

    async def _claim(self, event_id: UUID) -> Job | None:
        now = self._clock.now()
        try:
            async with self._uow_factory() as uow:
                job = await uow.jobs.get(event_id)
                if job is None:
                    return None
                if job.lease_expired(now):
                    job.requeue(now)  # its worker died; take it over
                if job.status is not JobStatus.PENDING:
                    return None
                job.start(now, self._lease)
                if job.deliveries > self._settings.max_deliveries:
                    job.fail(
                        JobError(
                            ErrorCode.INTERNAL, "The job was delivered more times than allowed."
                        ),
                        now,
                    )
                await uow.jobs.save(job)
                await uow.commit()
        except ConcurrencyConflict:
            return None  # another worker claimed it first
        self._metrics.job_reached(job.status)
        log.info(
            "job claimed",
            extra={"event_id": str(event_id), "attempt": job.attempts, "status": str(job.status)},
        )
        return job

    async def _hand_back(self, job: Job) -> None:
        with contextlib.suppress(_Lost, Exception):
            await self._update(job, lambda j: j.requeue(self._clock.now()))
            self._metrics.job_reached(JobStatus.PENDING)
            log.info("job handed back", extra={"event_id": str(job.event_id)})

    # -- saving --------------------------------------------------------------

    async def _update(self, mine: Job, change: Callable[[Job], None]) -> Job:
        """Apply `change` to the job if it is still ours, and save it.

        The first try writes our own copy, guarded by its version (one
        statement); if anyone changed the job since (a cancel, a heartbeat), the
        job is read again and checked before `change` is applied to it.
        """
        guess: Job | None = mine.copy()
        for _ in range(5):
            async with self._uow_factory() as uow:
                job = guess or await uow.jobs.get(mine.event_id)
                guess = None
                if (
                    job is None
                    or job.status is not JobStatus.PROCESSING
                    or job.attempts != mine.attempts
                ):
                    raise _Lost
                change(job)
                try:
                    await uow.jobs.save(job)
                except ConcurrencyConflict:
                    continue  # a heartbeat or a cancel raced us: read again
                await uow.commit()
                return job
        raise _Lost

    # -- steps ---------------------------------------------------------------

    async def _step(self, job: Job, step: Step, call: Callable[[], Awaitable[T]]) -> T:
        started = time.monotonic()
        async with self._heartbeat(job):
            result = await self._with_retries(job, step, call)
        self._metrics.step_finished(step, time.monotonic() - started)
        return result

    async def _with_retries(self, job: Job, step: Step, call: Callable[[], Awaitable[T]]) -> T:
        attempts = self._settings.llm_max_attempts
        for attempt in range(1, attempts + 1):
            started = time.monotonic()
            try:
                result = await call()
            except TransientLLMError as exc:
                self._metrics.llm_call(exc.code, None)
                if attempt == attempts:
                    raise
                delay = self._backoff(attempt, exc.retry_after)
                log.info(
                    "llm call will be retried",
                    extra={
                        "event_id": str(job.event_id),
                        "step": str(step),
                        "llm_attempt": attempt,
                        "error_code": exc.code,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await self._sleep(delay)
                continue
            except LLMError as exc:
                self._metrics.llm_call(exc.code, None)
                raise
            self._metrics.llm_call("ok", result.usage)
            log.debug(
                "llm step done",
                extra={
                    "event_id": str(job.event_id),
                    "step": str(step),
                    "llm_attempt": attempt,
                    "latency_ms": round((time.monotonic() - started) * 1000, 1),
                    "total_tokens": result.usage.total_tokens,
                },
            )
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._settings.retry_after_max_s)
        ceiling = min(
            self._settings.backoff_max_s, self._settings.backoff_base_s * 2 ** (attempt - 1)
        )
        return self._rng.uniform(0, ceiling)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, job: Job) -> AsyncIterator[None]:
        task = asyncio.create_task(self._renew_lease_forever(job))
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _renew_lease_forever(self, job: Job) -> None:
        interval = self._settings.lease_s / 4
        while True:
            await asyncio.sleep(interval)
            try:
                job = await self._update(
                    job, lambda j: j.renew_lease(self._clock.now(), self._lease)
                )
            except _Lost:
                return
            except Exception:  # a database hiccup: try again at the next beat
                log.warning("lease renewal failed", extra={"event_id": str(job.event_id)})
