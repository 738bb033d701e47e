"""The Celery worker process of production mode.

Concurrency (ARCHITECTURE.md): a worker process keeps ONE asyncio event loop, in
a background thread, and runs every `ProcessJob` on it. The `threads` pool's
threads only hand a message to that loop and wait for its outcome, so each
message is still acknowledged on its own (late, after the job ran) while one
process holds `--concurrency` jobs, and their LLM calls, in flight. The chores
(`entrypoints.chores`) run on the same loop.
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
from typing import Any, TypeVar
from uuid import UUID

import structlog
import uvloop
from celery import signals

from adapters.observability.logging import configure_logging
from adapters.queue.celery_app import QueueName
from application.use_cases.process_job import Outcome
from entrypoints.chores import JOB_HOST_CHORES, ChoreHost
from entrypoints.container import Container, build_container, shutdown
from entrypoints.settings import Settings
from entrypoints.tasks import JobTask, ShuttingDown, register_tasks

log = structlog.get_logger(__name__)
_T = TypeVar("_T")

# A worker's jobs answer no one: a step waits for a database connection rather
# than failing when the pool is busy (the API keeps failing fast).
WORKER_POOL_TIMEOUT_S = 120.0


class WorkerRuntime:
    """The worker process's event loop (in its own thread), container and chores.

    `run_job` is called from the pool's threads; everything else happens on the
    loop. Shutdown: `begin_shutdown` starts the grace period (running jobs may
    finish for `shutdown_grace_s`, then are cancelled, and `ProcessJob` hands
    them back to pending); `stop` ends the chores, closes the container's
    resources and stops the loop.
    """

    def __init__(self, container: Container, settings: Settings) -> None:
        self.settings = settings
        self.container = container
        # uvloop (as the API's uvicorn uses): a cheaper loop for hundreds of steps in flight.
        self._loop = uvloop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="job-loop", daemon=True)
        self._jobs: set[asyncio.Task[Any]] = set()
        self._chores = ChoreHost(c for c in container.chores() if c.name in JOB_HOST_CHORES)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()
        self._call(self._start())

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

    async def _start(self) -> None:
        # Built before the first message, not by it: the job use case with its LLM
        # client (the `openai` import, TLS context, connection pool) and engine.
        self.container.process_job()
        if self.settings.worker_metrics_port:
            self.container.metrics().serve(self.settings.worker_metrics_port)
        await self._chores.start()

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

    async def _close(self) -> None:
        await self._chores.stop(grace_s=10)
        self._cancel_jobs()
        if self._jobs:
            await asyncio.wait(list(self._jobs), timeout=10)
        await shutdown(self.container)
        log.info("worker stopped")

    def _call(self, coro: Coroutine[Any, Any, _T], timeout: float = 30.0) -> _T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)


def run_worker(settings: Settings, concurrency: int | None = None) -> int:
    """Run a worker (threads pool, one event loop) until it is told to stop."""
    configure_logging(settings.log_format, settings.log_level)
    # A line per message received / finished adds CPU and noise, not facts: the use
    # case logs each job's claim, steps and end. Failures still come through.
    for chatty in ("celery.worker.strategy", "celery.app.trace", "httpx2"):
        logging.getLogger(chatty).setLevel(logging.WARNING)
    if settings.celery_broker_url is None:
        print("guideline-ingest: the worker needs CELERY_BROKER_URL", file=sys.stderr)
        return 2
    slots = concurrency or settings.worker_concurrency
    settings = dataclasses.replace(
        settings, db_pool_timeout_s=max(settings.db_pool_timeout_s, WORKER_POOL_TIMEOUT_S)
    )
    container = build_container(settings)
    app = container.celery_app()  # the process's one Celery app
    register_tasks(app)
    runtime = WorkerRuntime(container, settings)
    JobTask.runner = runtime

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
        JobTask.runner = None
    return int(worker.exitcode or 0)
