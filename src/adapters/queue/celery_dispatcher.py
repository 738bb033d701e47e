"""The production dispatcher: one Celery task message per dispatch, pushed to Redis in batches.

The message is Celery's own (protocol 2, built by `app.amqp.as_task_v2`) in kombu's
Redis envelope, pushed to the queue's list as kombu's Redis transport does (LPUSH;
the worker BRPOPs the other end). What sets it apart from `send_task` is the
transport: an asyncio Redis client on the event loop, no thread hop, and every
dispatch made while a push is on its way goes out in the next single LPUSH (the
profile showed kombu's per-message publish, a new Redis client object and a thread
hop each, as the API's largest cost; README "Benchmarks"). One push is in flight
at a time. A dead broker costs the caller at most `publish_timeout_s` and an
`OSError`/`TimeoutError` (the outbox relay tries again later).
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import uuid
from typing import Any
from uuid import UUID

import msgspec
import structlog
from celery import Celery
from redis import asyncio as aioredis

from adapters.queue.celery_app import QueueName


class BrokerUnavailable(OSError):
    """The broker did not take the message (whatever the client raised, by type only)."""


class CeleryDispatcher:
    """`JobDispatcher`: sends `task_name` with args `[str(event_id)]` to `queue`.

    The current structlog `request_id` (bound by the HTTP layer) travels in the
    task's kwargs, so the worker logs the job under the request that made it.
    Calling it twice sends two messages; the worker's compare-and-set claim
    makes the second a no-op.
    """

    def __init__(
        self,
        celery_app: Celery,
        broker_url: str,
        task_name: str,
        queue: str = QueueName.JOBS,
        publish_timeout_s: float = 2.0,
    ) -> None:
        self._app = celery_app
        self._task_name = task_name
        self._queue = queue
        self._timeout_s = publish_timeout_s
        self._origin = f"{os.getpid()}@{socket.gethostname()}"
        self._redis = aioredis.Redis.from_url(
            broker_url,
            socket_timeout=publish_timeout_s,
            socket_connect_timeout=publish_timeout_s,
        )
        self._encoder = msgspec.json.Encoder()
        self._batch: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._pusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Nothing to start: the Celery workers run the jobs."""

    async def stop(self, grace_s: float) -> None:
        """Nothing to stop: `aclose` (a container resource) closes the client."""

    async def aclose(self) -> None:
        if self._pusher is not None:
            await asyncio.wait([self._pusher], timeout=self._timeout_s)
        await self._redis.aclose()

    async def dispatch(self, event_id: UUID) -> None:
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        kwargs = {"request_id": str(request_id)} if request_id else {}
        loop = asyncio.get_running_loop()
        pushed: asyncio.Future[None] = loop.create_future()
        self._batch.append(self.message(str(event_id), kwargs))
        self._waiters.append(pushed)
        # One push at a time; it takes what queued meanwhile. (A task cancelled before
        # it ran never reaches its `finally`: hence `done()`.)
        if self._pusher is None or self._pusher.done():
            self._pusher = loop.create_task(self._push_all())
        try:
            async with asyncio.timeout(self._timeout_s):
                await pushed  # cancelled on timeout: its push then leaves it alone
        except TimeoutError:
            raise TimeoutError(
                f"the broker did not take the message in {self._timeout_s}s"
            ) from None

    async def _push_all(self) -> None:
        try:
            await asyncio.sleep(0)  # let the dispatches of this loop turn join the batch
            while self._batch:
                batch, waiters = self._batch, self._waiters
                self._batch, self._waiters = [], []
                await self._push(batch, waiters)
        finally:
            self._pusher = None

    async def _push(self, batch: list[bytes], waiters: list[asyncio.Future[None]]) -> None:
        failure: str | None = None
        try:
            # LPUSH a b c leaves c at the head: BRPOP takes a first, in dispatch order.
            await self._redis.lpush(self._queue, *batch)
        except Exception as exc:  # any failure: the outbox relay tries again later
            # The error may carry the broker URL (and its password): keep the type only.
            failure = f"the broker refused the message ({type(exc).__name__})"
        except BaseException:  # cancelled at shutdown: the outbox still has them
            failure = "the message was not sent (shutting down)"
            raise
        finally:
            for waiter in waiters:
                if waiter.done():
                    continue
                if failure is None:
                    waiter.set_result(None)
                else:
                    waiter.set_exception(BrokerUnavailable(failure))

    def message(self, event_id: str, kwargs: dict[str, str]) -> bytes:
        """The task message as kombu's Redis transport stores it in the queue's list."""
        task_id = str(uuid.uuid4())
        sent = self._app.amqp.as_task_v2(
            task_id,
            self._task_name,
            args=(event_id,),
            kwargs=kwargs,
            origin=self._origin,
            ignore_result=True,
            argsrepr=repr([event_id]),
            kwargsrepr=repr(kwargs),
        )
        body = self._encoder.encode(list(sent.body))
        properties: dict[str, Any] = {
            **sent.properties,
            "delivery_mode": 2,  # persistent
            "delivery_info": {"exchange": "", "routing_key": self._queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": str(uuid.uuid4()),
        }
        return self._encoder.encode(
            {
                "body": base64.b64encode(body).decode("ascii"),
                "content-encoding": "utf-8",
                "content-type": "application/json",
                "headers": sent.headers,
                "properties": properties,
            }
        )
