"""The production dispatcher: one Celery task message per dispatch, over the broker.

Publishing with kombu is synchronous, so it runs on a small thread pool (the
container's `publisher_pool` resource) and never blocks the event loop; a dead
broker costs the caller at most `publish_timeout_s` and an
`OSError`/`TimeoutError` (the outbox relay tries again later). The Celery app
must be configured with short broker socket timeouts so that the publishing
threads themselves do not hang either.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import Executor
from uuid import UUID

import structlog
from celery import Celery
from kombu.exceptions import KombuError, OperationalError
from redis.exceptions import RedisError

PUBLISH_THREADS = 8

# What a failed publish may raise, by library; all of it means "the broker is not
# taking messages now".
_BROKER_ERRORS: tuple[type[BaseException], ...] = (
    KombuError,
    OperationalError,
    RedisError,
    ConnectionError,
)


class BrokerUnavailable(OSError):
    """The broker did not take the message (translated from kombu/redis errors)."""


class CeleryDispatcher:
    """`JobDispatcher`: sends `task_name` with args `[str(event_id)]`.

    The current structlog `request_id` (bound by the HTTP layer) travels in the
    task's kwargs, so the worker logs the job under the request that made it.
    Calling it twice sends two messages; the worker's compare-and-set claim
    makes the second a no-op.
    """

    def __init__(
        self,
        celery_app: Celery,
        publisher_pool: Executor,
        task_name: str,
        publish_timeout_s: float = 2.0,
    ) -> None:
        self._app = celery_app
        self._executor = publisher_pool
        self._task_name = task_name
        self._timeout_s = publish_timeout_s

    async def start(self) -> None:
        """Nothing to start: the Celery workers run the jobs."""

    async def stop(self, grace_s: float) -> None:
        """Nothing to stop: the publisher pool is a container resource."""

    async def dispatch(self, event_id: UUID) -> None:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        kwargs = {"request_id": str(request_id)} if request_id else {}
        loop = asyncio.get_running_loop()
        publish = functools.partial(self._publish, str(event_id), kwargs)
        try:
            async with asyncio.timeout(self._timeout_s):
                await loop.run_in_executor(self._executor, publish)
        except TimeoutError:
            raise TimeoutError(
                f"the broker did not take the message in {self._timeout_s}s"
            ) from None

    def _publish(self, event_id: str, kwargs: dict[str, str]) -> None:
        try:
            self._app.send_task(
                self._task_name,
                args=[event_id],
                kwargs=kwargs,
                retry=False,
                serializer="json",
                ignore_result=True,
            )
        except _BROKER_ERRORS as exc:
            # The message may carry the broker URL (and its password): keep the type only.
            raise BrokerUnavailable(
                f"the broker refused the message ({type(exc).__name__})"
            ) from None
