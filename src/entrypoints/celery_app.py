"""The Celery side of production mode: app factory, the one task, the worker process.

Concurrency (ARCHITECTURE.md): a worker process keeps ONE asyncio event loop, in
a background thread, and runs every `ProcessJob` on it. The `threads` pool's
threads only hand a message to that loop and wait for its outcome, so each
message is still acknowledged on its own (late, after the job ran) while one
process holds `--concurrency` jobs, and their LLM calls, in flight.

Periodic work runs on the same loop in every worker process: the outbox relay's
catch-up and stuck-job recovery. Running them in several workers at once is
harmless by design rather than guarded by a lock: the relay takes rows with
`FOR UPDATE SKIP LOCKED`, recovery changes a job only with a compare-and-set on
its version, and a duplicate dispatch is a no-op at the claim.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import logging
import os
import socket
import sys
import threading
from collections.abc import Coroutine
from enum import StrEnum
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import structlog
from celery import Celery, Task, signals
from celery.exceptions import Reject

from adapters.queue.celery_dispatcher import CeleryDispatcher
from application.errors import StorageUnavailable
from application.use_cases.process_job import Outcome
from entrypoints.container import Container, build_container, close_resources
from entrypoints.periodic import every
from entrypoints.settings import Settings

log = structlog.get_logger(__name__)
_T = TypeVar("_T")


class QueueName(StrEnum):
    JOBS = "guideline-ingest.jobs"


class TaskName(StrEnum):
    PROCESS_JOB = "guideline_ingest.process_job"


PUBLISH_TIMEOUT_S = 2.0
BROKER_CONNECT_TIMEOUT_S = 2.0
# Above kombu's BRPOP timeout (1 s), so an idle consumer is not mistaken for a dead one.
BROKER_SOCKET_TIMEOUT_S = 5.0
BROKER_PING_TIMEOUT_S = 2.0
RELAY_INTERVAL_S = 2.0
STORAGE_RETRY_MAX_S = 60
WORKER_POOL_TIMEOUT_S = 120.0
PURGE_INTERVAL_S = 3600.0


def visibility_timeout_s(settings: Settings) -> int:
    """Longer than the longest possible job, so Redis never hands a running job's
    message to a second worker: two steps, each up to `llm_max_attempts` calls that
    may time out and wait out a capped Retry-After; doubled, and at least an hour."""
    per_step = settings.llm_max_attempts * (settings.llm_timeout_s + settings.llm_retry_after_max_s)
    return int(max(3600.0, 2 * 2 * per_step))


def create_celery_app(settings: Settings) -> Celery:
    """A Celery app for `settings`: every routing, ack and retry choice is here."""
    app = Celery("guideline_ingest", broker=settings.celery_broker_url, set_as_current=False)
    app.conf.update(
        # At-least-once: ack after the job ran; a lost worker's message is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s(settings),
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
            "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
            # Publishing fails at once on a refused connection instead of retrying
            # (the outbox relay retries); the consumer has its own retry policy below.
            "max_retries": 0,
        },
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=QueueName.JOBS,
        task_routes={TaskName.PROCESS_JOB: {"queue": QueueName.JOBS}},
        task_create_missing_queues=True,
        task_publish_retry=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    # max_retries=None: a database outage is retried for as long as it lasts.
    app.task(bind=True, base=JobTask, name=TaskName.PROCESS_JOB, max_retries=None)(_process_job)
    return app


def celery_dispatcher(settings: Settings) -> CeleryDispatcher:
    """The `JobDispatcher` of production mode (the container's `dispatcher`)."""
    return CeleryDispatcher(
        create_celery_app(settings), TaskName.PROCESS_JOB, publish_timeout_s=PUBLISH_TIMEOUT_S
    )


async def broker_ready(settings: Settings) -> bool:
    """Whether the broker answers a PING within ~2 s. Never raises."""
    url = settings.celery_broker_url
    if url is None:
        return True
    if not url.startswith(("redis:", "rediss:")):
        return await _kombu_ready(url)
    from redis.asyncio import Redis

    try:
        client = Redis.from_url(
            url,
            socket_connect_timeout=BROKER_PING_TIMEOUT_S,
            socket_timeout=BROKER_PING_TIMEOUT_S,
        )
    except Exception:  # a URL redis-py cannot use: not ready
        return False
    try:
        async with asyncio.timeout(BROKER_PING_TIMEOUT_S + 0.5):
            return bool(await client.ping())
    except Exception:  # down, refused, timed out, bad password: not ready
        return False
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _kombu_ready(url: str) -> bool:
    from kombu import Connection

    def connect() -> None:
        with Connection(url, connect_timeout=BROKER_PING_TIMEOUT_S) as conn:
            conn.ensure_connection(max_retries=1)

    try:
        async with asyncio.timeout(BROKER_PING_TIMEOUT_S + 0.5):
            await asyncio.to_thread(connect)
    except Exception:
        return False
    return True


# -- the worker process -------------------------------------------------------


class ShuttingDown(Exception):
    """The worker is stopping: the job was handed back, or was never started."""


class WorkerRuntime:
    """The worker process's event loop (in its own thread), container and chores.

    `run_job` is called from the pool's threads; everything else happens on the
    loop. Shutdown: `begin_shutdown` starts the grace period (running jobs may
    finish for `shutdown_grace_s`, then are cancelled, and `ProcessJob` hands
    them back to pending); `stop` ends the chores, disposes the engine and stops
    the loop.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        # A worker's jobs answer no one: a step waits for a database connection
        # rather than failing when the pool is busy (the API keeps failing fast).
        settings = dataclasses.replace(
            settings, db_pool_timeout_s=max(settings.db_pool_timeout_s, WORKER_POOL_TIMEOUT_S)
        )
        self.container: Container = build_container(settings)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="job-loop", daemon=True)
        self._jobs: set[asyncio.Task[Any]] = set()
        self._chores: list[asyncio.Task[None]] = []
        self._stopping = False

    def start(self) -> None:
        self._thread.start()
        self._call(self._start_chores())

    def run_job(self, event_id: UUID, request_id: str | None) -> Outcome:
        """Run the job on the loop and wait for its outcome (called by pool threads)."""
        if self._stopping:
            raise ShuttingDown
        future = asyncio.run_coroutine_threadsafe(self._run_job(event_id, request_id), self._loop)
        try:
            return future.result()
        except concurrent.futures.CancelledError:
            raise ShuttingDown from None

    def begin_shutdown(self) -> None:
        """Refuse new jobs; cancel running ones after the grace period. Signal-safe."""
        if self._stopping:
            return
        self._stopping = True
        self._loop.call_soon_threadsafe(
            self._loop.call_later, self.settings.shutdown_grace_s, self._cancel_jobs
        )

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.begin_shutdown()
        with contextlib.suppress(Exception):
            self._call(self._close(), timeout=self.settings.shutdown_grace_s + 15)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    # -- on the loop ----------------------------------------------------------

    async def _run_job(self, event_id: UUID, request_id: str | None) -> Outcome:
        # Each asyncio task has its own context: bind the log context here, on the loop.
        structlog.contextvars.bind_contextvars(event_id=str(event_id))
        if request_id:
            structlog.contextvars.bind_contextvars(request_id=request_id)
        task = asyncio.current_task()
        assert task is not None
        self._jobs.add(task)
        try:
            return await self.container.process_job().execute(event_id)
        finally:
            self._jobs.discard(task)

    def _cancel_jobs(self) -> None:
        if self._jobs:
            log.warning("grace period over: handing running jobs back", jobs=len(self._jobs))
        for task in self._jobs:
            task.cancel()

    async def _start_chores(self) -> None:
        if self.settings.worker_metrics_port:
            self.container.metrics().serve(self.settings.worker_metrics_port)
        relay = self.container.relay_outbox()
        recover = self.container.recover_stuck_jobs()
        purge = self.container.purge_expired_jobs()
        self._chores = [
            asyncio.create_task(every(RELAY_INTERVAL_S, relay.catch_up, "relay")),
            asyncio.create_task(
                every(self.settings.recovery_interval_s, recover.execute, "recover")
            ),
            # Erasing the same old jobs twice is harmless: a delete finds them gone.
            asyncio.create_task(every(PURGE_INTERVAL_S, purge.execute, "purge")),
            asyncio.create_task(
                every(PURGE_INTERVAL_S, self.container.prune_outbox().execute, "prune-outbox")
            ),
        ]

    async def _close(self) -> None:
        for chore in self._chores:
            chore.cancel()
        self._cancel_jobs()
        pending = [*self._chores, *self._jobs]
        if pending:
            await asyncio.wait(pending, timeout=10)
        await self.container.relay_outbox().flush()
        dispatcher = self.container.dispatcher()
        if isinstance(dispatcher, CeleryDispatcher):
            dispatcher.close()
        with contextlib.suppress(Exception):
            await close_resources(self.container)
        log.info("worker stopped")

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


class JobTask(Task[Any, Any]):
    """Base of the job task: owns the process's `WorkerRuntime` (one per process)."""

    runtime: ClassVar[WorkerRuntime | None] = None

    @classmethod
    def current_runtime(cls) -> WorkerRuntime:
        if JobTask.runtime is None:
            raise RuntimeError("the job task runs only inside `guideline-ingest worker`")
        return JobTask.runtime


def _process_job(self: JobTask, event_id: str, request_id: str | None = None) -> str:
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
            return str(self.current_runtime().run_job(job_id, request_id))
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


def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    """Run a worker (threads pool, one event loop) until it is told to stop."""
    from adapters.observability.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    # A line per message received / finished adds CPU and noise, not facts: the use
    # case logs each job's claim, steps and end. Failures still come through.
    for chatty in ("celery.worker.strategy", "celery.app.trace", "httpx2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if settings.celery_broker_url is None:
        print("guideline-ingest: the worker needs CELERY_BROKER_URL", file=sys.stderr)
        return 2
    slots = concurrency or settings.worker_concurrency
    app = create_celery_app(settings)
    runtime = WorkerRuntime(settings)
    JobTask.runtime = runtime

    def on_shutting_down(**_: Any) -> None:
        runtime.begin_shutdown()

    def on_ready(**_: Any) -> None:
        log.info("worker ready", concurrency=slots, queue=str(QueueName.JOBS))

    signals.worker_shutting_down.connect(on_shutting_down, weak=False)
    signals.worker_ready.connect(on_ready, weak=False)
    worker = app.Worker(
        hostname=f"guideline-ingest-{os.getpid()}@{socket.gethostname()}",
        pool="threads",
        concurrency=slots,
        queues=[str(QueueName.JOBS)],
        loglevel=settings.log_level,
        quiet=True,
        without_gossip=True,
        without_mingle=True,
        without_heartbeat=True,
    )
    log.info("worker starting", concurrency=slots, queue=str(QueueName.JOBS))
    runtime.start()
    try:
        worker.start()
    finally:
        runtime.stop()
        signals.worker_shutting_down.disconnect(on_shutting_down)
        signals.worker_ready.disconnect(on_ready)
        JobTask.runtime = None
    return int(worker.exitcode or 0)
