"""A deadline per request: an answer within a bound, whatever the work waits on.

A database that freezes (it accepts connections and never answers) holds a
request on any statement (or a new connection's handshake), with no limit
of its own; and cancelling psycopg mid-query waits up to ~10 s more for the
server to acknowledge the cancel. So the request runs in its own task and is
waited for at most `timeout_s`; past that the client gets 503 problem details
at once, and the task is cancelled without being waited for (it ends, and
gives its connection back, in the background).

Time spent waiting for the client's body does not count: the deadline bounds
the server's own work, not a slow upload. It bounds the time to the answer's
start: an event stream, once started, runs as long as it runs; and a long poll
(`?wait=S`, at most 60) gets S seconds more, since waiting is what it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from urllib.parse import parse_qs

import structlog
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Message,
    Receive,
    ReceiveMessage,
    Scope,
    Send,
)

log = structlog.get_logger(__name__)

RETRY_AFTER_S = 5
_BODY = json.dumps(
    {
        "type": "about:blank",
        "title": "Service Unavailable",
        "status": 503,
        "detail": "The service did not answer in time (the database may be unavailable); "
        "try again shortly.",
    }
).encode()
_START: HTTPResponseStartEvent = {
    "type": "http.response.start",
    "status": 503,
    "headers": [
        (b"content-type", b"application/problem+json"),
        (b"content-length", str(len(_BODY)).encode()),
        (b"retry-after", str(RETRY_AFTER_S).encode()),
    ],
}
_END: HTTPResponseBodyEvent = {"type": "http.response.body", "body": _BODY, "more_body": False}


def _forget(task: asyncio.Task[None]) -> None:
    # An abandoned request ends in the background; what it raised then is of no use.
    if not task.cancelled():
        with contextlib.suppress(BaseException):
            task.exception()


MAX_WAIT_S = 60.0


def _long_poll_s(scope: Scope) -> float:
    """The `wait` a GET asks for (0 when none or not a number; at most 60)."""
    if scope.get("method") != "GET":
        return 0.0
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        wait = float(query.get("wait", ["0"])[-1])
    except ValueError:
        return 0.0
    return min(max(wait, 0.0), MAX_WAIT_S) if wait == wait else 0.0


def deadline_middleware(timeout_s: float) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware answering 503 (with `Retry-After`) when a request's own work
    takes longer than `timeout_s`."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            loop = asyncio.get_running_loop()
            waited_on_client = 0.0
            receiving_since: float | None = None
            answered = False  # the deadline answered: the request's own answer is dropped
            started = False

            async def timed_receive() -> ReceiveMessage:
                nonlocal waited_on_client, receiving_since
                receiving_since = loop.time()
                try:
                    return await receive()
                finally:
                    waited_on_client += loop.time() - receiving_since
                    receiving_since = None

            async def guarded_send(message: Message) -> None:
                nonlocal started
                if answered:
                    return
                if message["type"] == "http.response.start":
                    started = True
                await send(message)

            def work_time() -> float:
                now = loop.time()
                on_client = waited_on_client + (
                    now - receiving_since if receiving_since is not None else 0.0
                )
                return now - begun - on_client

            begun = loop.time()
            limit = timeout_s + _long_poll_s(scope)
            task = asyncio.ensure_future(app(scope, timed_receive, guarded_send))
            try:
                while not task.done() and not started and (left := limit - work_time()) > 0:
                    await asyncio.wait({task}, timeout=min(left, 0.5))
                if started and not task.done():
                    await task  # the answer has started (a stream): no deadline now
            except asyncio.CancelledError:
                task.cancel()
                raise
            if task.done():
                task.result()  # the request's own outcome, exceptions included
                return
            answered = True
            task.add_done_callback(_forget)
            task.cancel()
            log.warning(
                "request deadline exceeded",
                method=scope.get("method"),
                path=scope.get("path"),
                timeout_s=limit,
            )
            await send(_START)
            await send(_END)

        return handle

    return middleware
