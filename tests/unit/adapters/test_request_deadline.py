"""The request deadline (adapters/http/deadline.py) on bare ASGI apps: no server, no I/O."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest

from adapters.http.deadline import deadline_middleware

Messages = list[dict[str, Any]]


async def _call(app: Any, timeout_s: float, body_chunks: list[tuple[float, bytes]]) -> Messages:
    """Run `app` under the deadline; the client sends each chunk after its delay."""
    sent: Messages = []
    chunks = list(body_chunks)

    async def receive() -> dict[str, Any]:
        if not chunks:
            await asyncio.Event().wait()  # the client sends nothing more
        delay, chunk = chunks.pop(0)
        await asyncio.sleep(delay)
        return {"type": "http.request", "body": chunk, "more_body": bool(chunks)}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/jobs", "headers": []}
    await deadline_middleware(timeout_s)(app)(scope, receive, send)
    return sent


async def _answer(send: Any, status: int, body: bytes = b"") -> None:
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def test_a_stuck_request_gets_503_problem_details_at_the_deadline() -> None:
    """The app is stuck and, like psycopg mid-query, takes 2 s more to honour a cancel:
    the client still gets its answer at the deadline, and the app's late answer is dropped."""
    ended = asyncio.Event()

    async def stuck(scope: Any, receive: Any, send: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            await asyncio.shield(asyncio.sleep(2.0))
            await _answer(send, 200)  # too late: dropped
            ended.set()
            raise

    started = time.monotonic()
    sent = await _call(stuck, 0.3, [])
    elapsed = time.monotonic() - started

    assert 0.3 <= elapsed < 1.5, elapsed
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    assert sent[0]["status"] == 503
    headers = dict(sent[0]["headers"])
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"retry-after"] == b"5"
    body = json.loads(sent[1]["body"])
    assert body["status"] == 503
    assert body["title"] == "Service Unavailable"
    assert int(headers[b"content-length"]) == len(sent[1]["body"])
    await asyncio.wait_for(ended.wait(), 5)  # the abandoned request ran to its end
    assert len(sent) == 2


async def test_a_request_within_the_deadline_is_untouched() -> None:
    async def quick(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.05)
        await _answer(send, 202, b"{}")

    sent = await _call(quick, 1.0, [])
    assert sent[0]["status"] == 202
    assert sent[1]["body"] == b"{}"


async def test_time_spent_waiting_for_a_slow_body_does_not_count() -> None:
    """A body arriving over 1.2 s in three chunks, under a 0.5 s deadline: not cut off."""

    async def reads_body(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message["body"]
            if not message["more_body"]:
                break
        await asyncio.sleep(0.1)  # the server's own work
        await _answer(send, 202, body)

    sent = await _call(reads_body, 0.5, [(0.4, b"a"), (0.4, b"b"), (0.4, b"c")])
    assert sent[0]["status"] == 202
    assert sent[1]["body"] == b"abc"


async def test_the_servers_own_work_after_a_slow_body_still_has_its_deadline() -> None:
    async def reads_then_hangs(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await asyncio.Event().wait()

    started = time.monotonic()
    sent = await _call(reads_then_hangs, 0.3, [(0.6, b"x")])
    elapsed = time.monotonic() - started
    assert sent[0]["status"] == 503
    assert 0.9 <= elapsed < 2.0, elapsed


async def test_an_answer_already_started_runs_on_past_the_deadline() -> None:
    """An event stream starts at once and lasts: the deadline bounds the start only."""

    async def stream(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await asyncio.sleep(0.6)  # three deadlines later
        await send({"type": "http.response.body", "body": b"data: done", "more_body": False})

    sent = await _call(stream, 0.2, [])
    assert [m.get("status") for m in sent] == [200, None]
    assert sent[-1]["body"] == b"data: done"


async def _get(app: Any, timeout_s: float, query: bytes) -> Messages:
    sent: Messages = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/jobs/x", "headers": [],
             "query_string": query}  # fmt: skip
    await deadline_middleware(timeout_s)(app)(scope, receive, send)
    return sent


@pytest.mark.parametrize(("query", "status"), [(b"wait=1", 200), (b"", 503), (b"wait=x", 503)])
async def test_a_long_poll_gets_its_wait_on_top_of_the_deadline(query: bytes, status: int) -> None:
    async def slow(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.6)
        await _answer(send, 200)

    sent = await _get(slow, 0.2, query)
    assert sent[0]["status"] == status


async def test_an_error_of_the_request_goes_up_unchanged() -> None:
    async def broken(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await _call(broken, 1.0, [])


async def test_other_scopes_pass_straight_through() -> None:
    seen: list[str] = []

    async def lifespan_app(scope: Any, receive: Any, send: Any) -> None:
        await asyncio.sleep(0.3)
        seen.append(scope["type"])

    await deadline_middleware(0.05)(lifespan_app)({"type": "lifespan"}, None, None)  # type: ignore[arg-type]
    assert seen == ["lifespan"]
