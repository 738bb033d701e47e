"""Revocation notices of production mode: a small Redis channel that workers listen to.

Whoever commits a change that takes a running job from its worker (a cancel or a
delete in an API process, a hand-back or a takeover in a worker) publishes
`[event_id, attempt, status]` on CHANNEL: a few dozen bytes, and only for those
changes, not the live-progress firehose with its documents. Each worker process
holds ONE subscription, on a connection of its own with no read timeout (silence
is the normal state: a ping after `ping_s` of it shows a dead connection), started
by its first watch, reconnected with capped exponential backoff; it hands each
notice to the runs of that job in the process. Entering a watch never waits for
the subscription. Redis down, or a notice lost: nothing fails, the step's next
heartbeat (JOB_LEASE_S/4) finds the job taken away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Iterator, Sequence
from typing import Any
from uuid import UUID

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from adapters.notify.local import RevocationFanOut
from application.ports import Revocation, RevocationHandler
from domain import JobStatus

log = logging.getLogger(__name__)

CHANNEL = "guideline:jobs:revoked"
PING_S = 15.0
RECONNECT_MIN_S = 0.5
RECONNECT_MAX_S = 30.0
SEND_TIMEOUT_S = 5.0


class _Notice(msgspec.Struct, array_like=True):
    event_id: str
    attempt: int
    status: str


class RedisRevocationFeed:
    """Implements `RevocationFeed` across processes."""

    def __init__(
        self,
        url: str,
        *,
        ping_s: float = PING_S,
        reconnect_min_s: float = RECONNECT_MIN_S,
        reconnect_max_s: float = RECONNECT_MAX_S,
    ) -> None:
        # Publishes go through a pool of their own, bounded by timeouts; the
        # subscription has its own client, so nothing else ever waits behind it.
        self._publisher = aioredis.Redis.from_url(
            url, socket_timeout=SEND_TIMEOUT_S, socket_connect_timeout=2
        )
        self._subscriber = aioredis.Redis.from_url(
            url, socket_timeout=None, socket_connect_timeout=2, socket_keepalive=True
        )
        self._ping_s = ping_s
        self._reconnect_min_s = reconnect_min_s
        self._reconnect_max_s = reconnect_max_s
        self._delay = reconnect_min_s
        self._fanout = RevocationFanOut()
        self._listener: asyncio.Task[None] | None = None
        self._sending: set[asyncio.Task[None]] = set()
        self._closed = False
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Notice)
        self.subscribed = asyncio.Event()  # set while the subscription is up

    # -- announcing ---------------------------------------------------------------

    def publish(self, revocations: Sequence[Revocation]) -> None:
        if not revocations or self._closed:
            return
        payloads = [
            self._encoder.encode(_Notice(str(r.event_id), r.attempt, r.status.value))
            for r in revocations
        ]
        task = asyncio.get_running_loop().create_task(self._send(payloads))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, payloads: list[bytes]) -> None:
        try:
            async with self._publisher.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(CHANNEL, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # the worker's heartbeat will find out
            log.warning("revocation not announced", extra={"error": type(exc).__name__})

    # -- listening ----------------------------------------------------------------

    @property
    def watching(self) -> int:
        return self._fanout.watching

    @contextlib.contextmanager
    def watch(self, event_id: UUID, heard: RevocationHandler) -> Iterator[None]:
        self._ensure_listening()
        with self._fanout.watch(event_id, heard):
            yield

    def _ensure_listening(self) -> None:
        if self._closed or (self._listener is not None and not self._listener.done()):
            return
        self._listener = asyncio.get_running_loop().create_task(
            self._listen(), name="revocation-feed"
        )

    async def _listen(self) -> None:
        while True:
            try:
                async with self._subscriber.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    await self._read(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; running steps fall back on heartbeats
                self.subscribed.clear()
                wait = random.uniform(self._delay / 2, self._delay)
                self._delay = min(self._delay * 2, self._reconnect_max_s)
                log.warning(
                    "revocation feed reconnecting",
                    extra={"error": type(exc).__name__, "retry_in_s": round(wait, 2)},
                )
                await asyncio.sleep(wait)

    async def _read(self, pubsub: Any) -> None:
        """Hand every notice to the fan-out until the connection fails (a ping that
        gets no answer within `ping_s` counts as failed)."""
        pinged = False
        while True:
            message = await pubsub.get_message(timeout=self._ping_s)
            if message is None:
                if pinged:
                    raise RedisConnectionError("no answer to a ping")
                await pubsub.ping()
                pinged = True
                continue
            pinged = False
            kind = message.get("type")
            if kind == "message":
                self._deliver(message["data"])
            elif kind == "subscribe":
                self.subscribed.set()
                self._delay = self._reconnect_min_s

    def _deliver(self, data: bytes) -> None:
        try:
            notice = self._decoder.decode(data)
            revocation = Revocation(UUID(notice.event_id), notice.attempt, JobStatus(notice.status))
        except (msgspec.DecodeError, ValueError):
            return
        self._fanout.deliver([revocation])

    async def aclose(self) -> None:
        self._closed = True
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._sending:
            await asyncio.wait(list(self._sending), timeout=2)
        await self._subscriber.aclose()
        await self._publisher.aclose()
