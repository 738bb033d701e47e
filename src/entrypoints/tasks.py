"""The Celery task of production mode: thin — parse the message, bind log context, run.

`JobTask` is the one base task; it holds the process's `JobRunner` (the worker
runtime, set by `entrypoints.worker`). Routing, acks and retries are configuration
(`adapters.queue.celery_app`), except the storage-outage retry, which is per message.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol
from uuid import UUID

import structlog
from celery import Celery, Task
from celery.exceptions import Reject

from adapters.queue.celery_app import TaskName
from application.errors import StorageUnavailable
from application.use_cases.process_job import Outcome

log = structlog.get_logger(__name__)

STORAGE_RETRY_MAX_S = 60


class ShuttingDown(Exception):
    """The worker is stopping: the job was handed back, or was never started."""


class JobRunner(Protocol):
    def run_job(self, event_id: UUID, request_id: str | None) -> Outcome:
        """Run the job on the process's event loop and wait for its outcome.
        Raises ShuttingDown when the worker stops meanwhile."""


class JobTask(Task[Any, Any]):
    """Base of the job task: owns the process's `JobRunner` (one per process)."""

    runner: ClassVar[JobRunner | None] = None

    @classmethod
    def current_runner(cls) -> JobRunner:
        if JobTask.runner is None:
            raise RuntimeError("the job task runs only inside `guideline-ingest worker`")
        return JobTask.runner


def process_job(self: JobTask, event_id: str, request_id: str | None = None) -> str:
    """Parse the message, bind log context, run `ProcessJob` on the process's loop."""
    structlog.contextvars.clear_contextvars()
    try:
        try:
            job_id = UUID(event_id)
        except (ValueError, TypeError, AttributeError):
            log.error("task message without a valid event id: dropped")
            return "malformed"
        structlog.contextvars.bind_contextvars(event_id=str(job_id))
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            return str(self.current_runner().run_job(job_id, request_id))
        except StorageUnavailable as exc:
            # The job is still recoverable (lease / pending redispatch), but don't wait
            # for that: try this message again once the database may be back.
            delay = min(STORAGE_RETRY_MAX_S, 2 ** min(self.request.retries, 6))
            log.warning(
                "database unavailable: task will be retried",
                retry_in_s=delay,
                cause=type(exc.__cause__).__name__,  # never the message: it may hold SQL
            )
            raise self.retry(exc=exc, countdown=delay) from exc
        except ShuttingDown:
            # The job is pending again (or never started): put the message back.
            raise Reject("worker shutting down", requeue=True) from None
    finally:
        structlog.contextvars.clear_contextvars()


def register_tasks(app: Celery) -> None:
    """Register the job task on `app` (max_retries=None: a database outage is
    retried for as long as it lasts)."""
    app.task(bind=True, base=JobTask, name=TaskName.PROCESS_JOB, max_retries=None)(process_job)
