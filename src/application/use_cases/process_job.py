"""ProcessJob: the two-step chain (summarize, then a checklist from the summary)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TypeVar
from uuid import UUID

from application.errors import ConcurrencyConflict, LLMError
from application.job_changes import change_job
from application.lease_keeper import LeaseKeeper
from application.llm_retry import LLMRetryPolicy
from application.ports import (
    Checklist,
    Clock,
    LLMGateway,
    Metrics,
    Revocation,
    RevocationFeed,
    Summary,
    UnitOfWork,
    UnitOfWorkFactory,
)
from domain import ErrorCode, InvalidOutput, Job, JobError, JobStatus, Step

log = logging.getLogger(__name__)
T = TypeVar("T", Summary, Checklist)


@dataclass(frozen=True, slots=True)
class ProcessSettings:
    lease_s: float = 60.0
    max_deliveries: int = 5


class Outcome(StrEnum):
    COMPLETED = "completed"
    FAILED = "failed"
    SKIPPED = "skipped"  # not ours to run: missing, terminal, or held by a live worker
    STOPPED = "stopped"  # cancelled, deleted or taken over while we worked
    REQUEUED = "requeued"  # handed back (shutdown)


class _Lost(Exception):
    """The job is no longer ours: cancelled, deleted, or requeued to another worker."""


class _Fate:
    """Whether a run's job was taken from it: `lost` is set by a revocation notice of
    the run's attempt, or by a heartbeat that finds the job no longer ours.

    The watch starts before the claim, so a notice that comes while the claim commits
    is kept until the run knows its attempt; notices about earlier attempts (late
    ones) are ignored (`Revocation.takes`).
    """

    def __init__(self) -> None:
        self.lost = asyncio.Event()
        self._attempt: int | None = None
        self._early: list[Revocation] = []

    def heard(self, revocation: Revocation) -> None:
        if self._attempt is None:
            self._early.append(revocation)
        elif revocation.takes(self._attempt):
            self.lost.set()

    def claimed(self, attempt: int) -> None:
        self._attempt = attempt
        early, self._early = self._early, []
        for revocation in early:
            self.heard(revocation)


class ProcessJob:
    """Rules:
    - the job is claimed with a compare-and-set (status + version), by
      `Job.claim`: a duplicate delivery of a job another worker holds is a no-op,
      an expired lease is taken over, too many deliveries fail the job;
    - a step whose output is already saved is skipped (a retry or redelivery
      never pays for it twice); each output is saved as soon as it exists;
    - a cancelled, deleted or taken-over job is left as it is (never overwritten);
    - LLM faults follow the `LLMRetryPolicy`; a permanent one fails the job;
    - while a step runs, the `LeaseKeeper` renews the lease every lease/4;
    - a cancel (or delete, or takeover) committed while a step runs stops its LLM
      call at once: a revocation notice tells, or at the latest the next heartbeat;
    - if the run itself is cancelled (shutdown), the job is handed back to pending.
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        llm: LLMGateway,
        clock: Clock,
        retry: LLMRetryPolicy,
        metrics: Metrics,
        settings: ProcessSettings | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        revocations: RevocationFeed | None = None,
    ) -> None:
        self._revocations = revocations
        self._uow_factory = uow_factory
        self._llm = llm
        self._clock = clock
        self._retry = retry
        self._metrics = metrics
        self._settings = settings or ProcessSettings()
        self._lease = timedelta(seconds=self._settings.lease_s)
        self._keeper = LeaseKeeper(self._settings.lease_s / 4, sleep)

    async def execute(self, event_id: UUID) -> Outcome:
        fate = _Fate()
        with self._watching(event_id, fate):
            job = await self._claim(event_id)
            if job is None:
                return Outcome.SKIPPED
            if job.status is JobStatus.FAILED:
                return Outcome.FAILED
            fate.claimed(job.attempts)
            try:
                return await self._run(job, fate.lost)
            except _Lost:
                log.info("job left alone: no longer ours", extra={"event_id": str(event_id)})
                return Outcome.STOPPED
            except asyncio.CancelledError:
                await asyncio.shield(self._hand_back(job))
                raise

    def _watching(self, event_id: UUID, fate: _Fate) -> contextlib.AbstractContextManager[None]:
        """Revocation notices of the job go to `fate` while the run lasts; without a
        feed, the heartbeat alone finds out."""
        if self._revocations is None:
            return contextlib.nullcontext()
        return self._revocations.watch(event_id, fate.heard)

    async def _run(self, job: Job, lost: asyncio.Event) -> Outcome:
        try:
            if job.summary is None:
                summary = await self._step(
                    job, Step.SUMMARIZE, lambda: self._llm.summarize(job.input_text), lost
                )
                job = await self._update(
                    job, lambda j: j.record_summary(summary.text, summary.usage, self._clock.now())
                )
            summary_text = job.summary
            assert summary_text is not None
            checklist = await self._step(
                job,
                Step.CHECKLIST,
                lambda: self._llm.write_checklist(summary_text, job.input_text),
                lost,
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
            log.info("job failed", extra={"event_id": str(job.event_id), "error_code": error.code})
            return Outcome.FAILED
        return Outcome.COMPLETED

    async def _claim(self, event_id: UUID) -> Job | None:
        now = self._clock.now()
        try:
            async with self._uow_factory() as uow:
                job = await uow.jobs.get(event_id)
                if job is None or not job.claim(now, self._lease, self._settings.max_deliveries):
                    return None
                await uow.jobs.save(job)
                await uow.commit()
        except ConcurrencyConflict:
            return None  # another worker claimed it first
        log.info(
            "job claimed",
            extra={"event_id": str(event_id), "attempt": job.attempts, "status": str(job.status)},
        )
        return job

    async def _hand_back(self, job: Job) -> None:
        with contextlib.suppress(_Lost, Exception):
            await self._update(job, lambda j: j.requeue(self._clock.now()))
            log.info("job handed back", extra={"event_id": str(job.event_id)})

    async def _update(self, mine: Job, apply: Callable[[Job], None]) -> Job:
        """Apply `apply` to the job if it is still ours (the same attempt, processing).

        The first try writes our own copy, guarded by its version (one statement);
        after a conflict the job is read again and checked before `apply` runs.
        """

        async def change(job: Job, _: UnitOfWork) -> None:
            if job.status is not JobStatus.PROCESSING or job.attempts != mine.attempts:
                raise _Lost
            apply(job)

        try:
            job = await change_job(self._uow_factory, mine.event_id, change, first_guess=mine)
        except ConcurrencyConflict:
            raise _Lost from None
        if job is None:
            raise _Lost
        return job

    async def _step(
        self, job: Job, step: Step, call: Callable[[], Awaitable[T]], lost: asyncio.Event
    ) -> T:
        """Run one step's LLM call (with its retries) under the heartbeat; `lost` (a
        revocation notice, or a heartbeat) stops it at once."""
        started = time.monotonic()
        extra = {"event_id": str(job.event_id), "step": str(step)}
        async with self._keeper.kept(self._renewal(job, lost), extra):
            result = await self._unless_lost(self._retry.call(call, extra), lost)
        self._metrics.step_finished(step, time.monotonic() - started)
        log.debug(
            "llm step done",
            extra={**extra, "total_tokens": result.usage.total_tokens},
        )
        return result

    def _renewal(self, job: Job, lost: asyncio.Event) -> Callable[[], Awaitable[bool]]:
        """One heartbeat: renew the lease; False (and `lost` set) once the job is no
        longer ours."""
        latest = job

        async def renew() -> bool:
            nonlocal latest
            try:
                latest = await self._update(
                    latest, lambda j: j.renew_lease(self._clock.now(), self._lease)
                )
            except _Lost:
                lost.set()
                return False
            return True

        return renew

    @staticmethod
    async def _unless_lost(work: Awaitable[T], lost: asyncio.Event) -> T:
        """`work`'s result, or _Lost (and `work` cancelled: its LLM call stops) as
        soon as `lost` is set."""
        task = asyncio.ensure_future(work)
        stop = asyncio.create_task(lost.wait())
        try:
            await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            stop.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise _Lost
