"""The change feed of production mode: Redis pub/sub, one subscription per process.

Whichever process commits a change (a worker, or an API process for a cancel)
publishes it on one channel; each API process holds one subscription and fans
the messages out to its own waiters. Redis down: changes are not announced
(waiters still end at their deadline or keep-alive read), nothing fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from uuid import UUID

import msgspec
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from adapters.notify.local import LocalFanOut, _Stream
from application.ports import JobChange
from domain import JobStatus, Step

log = logging.getLogger(__name__)

CHANNEL = "guideline:jobs:changes"
RESUBSCRIBE_S = 1.0


class _Message(msgspec.Struct, array_like=True):
    event_id: str
    version: int
    status: str
    step: str | None
    document: msgspec.Raw


class RedisChangeFeed:
    """Implements `ChangeFeed` across processes."""

    def __init__(self, url: str) -> None:
        self._redis = aioredis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=2)
        self._local = LocalFanOut()
        self._listener: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._unsent: list[bytes] = []
        self._encoder = msgspec.json.Encoder()
        self._decoder = msgspec.json.Decoder(_Message)

    def publish(self, changes: Sequence[JobChange]) -> None:
        if not changes:
            return
        payloads = [
            self._encoder.encode(
                _Message(
                    str(c.event_id),
                    c.version,
                    c.status.value,
                    c.step.value if c.step else None,
                    msgspec.Raw(c.document),
                )
            )
            for c in changes
        ]
        # One sender at a time, in commit order; what is committed while it sends
        # goes out in its next pipeline (one per loop turn, not one per commit).
        self._unsent.extend(payloads)
        if self._sender is None or self._sender.done():  # done: cancelled before it ran
            self._sender = asyncio.get_running_loop().create_task(self._send_all())

    async def _send_all(self) -> None:
        try:
            await asyncio.sleep(0)  # let the rest of this loop turn's changes join
            while self._unsent:
                payloads, self._unsent = self._unsent, []
                await self._send(payloads)
        finally:
            self._sender = None

    async def _send(self, payloads: list[bytes]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for payload in payloads:
                    pipe.publish(CHANNEL, payload)
                await pipe.execute()
        except (RedisError, OSError) as exc:
            log.warning("change not announced", extra={"error": type(exc).__name__})

    @contextlib.asynccontextmanager
    async def watch(self, event_id: UUID) -> AsyncIterator[_Stream]:
        if self._listener is None or self._listener.done():
            self._listener = asyncio.get_running_loop().create_task(self._listen())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):  # subscribed before the caller's first read
                await self._subscribed.wait()
        async with self._local.watch(event_id) as stream:
            yield stream

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    self._subscribed.set()
                    async for message in pubsub.listen():
                        if message.get("type") == "message":
                            self._deliver(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reconnect; waiters fall back on their deadlines
                self._subscribed.clear()
                log.warning("change feed reconnecting", extra={"error": type(exc).__name__})
                await asyncio.sleep(RESUBSCRIBE_S)

    def _deliver(self, data: bytes) -> None:
        try:
            message = self._decoder.decode(data)
            change = JobChange(
                UUID(message.event_id),
                message.version,
                JobStatus(message.status),
                Step(message.step) if message.step else None,
                bytes(message.document),
            )
        except (msgspec.DecodeError, ValueError):
            return
        self._local.deliver([change])

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._listener
        if self._sender is not None:
            await asyncio.wait([self._sender], timeout=2)
        await self._redis.aclose()
