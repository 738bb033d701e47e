"""The dispatcher's messages against kombu's own, on a real Redis.

`CeleryDispatcher` pushes Celery task messages with its own asyncio Redis client
(batched LPUSH) instead of `send_task`: what it stores in the queue must be what
`send_task` stores, up to the ids, so a Celery worker reads it the same. (Every
production-mode test also runs its jobs through it, with a real worker.)
"""

from __future__ import annotations

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest
import redis
import structlog

from adapters.queue.celery_app import QueueName, TaskName, create_celery_app
from adapters.queue.celery_dispatcher import BrokerUnavailable, CeleryDispatcher

EVENT_ID = "6b7f7c9e-0000-4000-8000-000000000001"
# Per message: made fresh each time, by either sender.
RANDOM_HEADERS = {"id", "root_id", "origin"}
RANDOM_PROPERTIES = {"correlation_id", "reply_to", "delivery_tag"}


def _queued(client: redis.Redis) -> list[dict[str, Any]]:
    # LPUSH puts the newest at the head: the list read backwards is the queue's order.
    return [json.loads(raw) for raw in reversed(client.lrange(QueueName.JOBS, 0, -1))]


def _comparable(message: dict[str, Any]) -> dict[str, Any]:
    headers = {k: v for k, v in message["headers"].items() if k not in RANDOM_HEADERS}
    properties = {k: v for k, v in message["properties"].items() if k not in RANDOM_PROPERTIES}
    body = json.loads(base64.b64decode(message["body"]))
    return {**message, "headers": headers, "properties": properties, "body": body}


def test_a_dispatched_message_is_the_one_send_task_would_store(broker_url: str) -> None:
    app = create_celery_app(broker_url, 3600)
    client = redis.Redis.from_url(broker_url)
    app.send_task(
        TaskName.PROCESS_JOB,
        args=[EVENT_ID],
        kwargs={"request_id": "r-1"},
        retry=False,
        serializer="json",
        ignore_result=True,
    )
    (theirs,) = _queued(client)
    client.delete(QueueName.JOBS)

    async def dispatch() -> None:
        dispatcher = CeleryDispatcher(app, broker_url, TaskName.PROCESS_JOB)
        structlog.contextvars.bind_contextvars(request_id="r-1")
        try:
            await dispatcher.dispatch(uuid.UUID(EVENT_ID))
        finally:
            structlog.contextvars.clear_contextvars()
            await dispatcher.aclose()

    asyncio.run(dispatch())
    (ours,) = _queued(client)
    assert _comparable(ours) == _comparable(theirs)
    task_id = ours["headers"]["id"]
    assert ours["properties"]["correlation_id"] == ours["headers"]["root_id"] == task_id
    assert ours["properties"]["delivery_tag"] != theirs["properties"]["delivery_tag"]


def test_dispatches_made_together_go_out_in_one_push_in_their_order(broker_url: str) -> None:
    app = create_celery_app(broker_url, 3600)
    client = redis.Redis.from_url(broker_url)
    ids = [f"6b7f7c9e-0000-4000-8000-{n:012d}" for n in range(50)]

    async def dispatch_all() -> None:
        dispatcher = CeleryDispatcher(app, broker_url, TaskName.PROCESS_JOB)
        try:
            await asyncio.gather(*(dispatcher.dispatch(uuid.UUID(event_id)) for event_id in ids))
        finally:
            await dispatcher.aclose()

    before = client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    asyncio.run(dispatch_all())
    after = client.info("commandstats").get("cmdstat_lpush", {}).get("calls", 0)
    queued = _queued(client)
    assert [json.loads(base64.b64decode(m["body"]))[0][0] for m in queued] == ids
    assert len({m["properties"]["delivery_tag"] for m in queued}) == 50
    assert after - before == 1  # fifty messages, one LPUSH


def test_a_dead_broker_is_an_os_error_within_the_timeout() -> None:
    app = create_celery_app("redis://127.0.0.1:1/0", 3600)

    async def dispatch() -> float:
        dispatcher = CeleryDispatcher(
            app, "redis://127.0.0.1:1/0", TaskName.PROCESS_JOB, publish_timeout_s=1.0
        )
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            with pytest.raises(BrokerUnavailable) as caught:
                await dispatcher.dispatch(uuid.UUID(EVENT_ID))
            assert "127.0.0.1" not in str(caught.value)  # no broker address in the error
            return loop.time() - started
        finally:
            await dispatcher.aclose()

    assert asyncio.run(dispatch()) < 1.5


def test_a_push_cancelled_before_it_ran_does_not_stop_later_dispatches(broker_url: str) -> None:
    app = create_celery_app(broker_url, 3600)
    client = redis.Redis.from_url(broker_url)

    async def dispatch_twice() -> None:
        dispatcher = CeleryDispatcher(app, broker_url, TaskName.PROCESS_JOB, publish_timeout_s=1.0)
        try:
            first = asyncio.ensure_future(dispatcher.dispatch(uuid.UUID(EVENT_ID)))
            await asyncio.sleep(0)  # the first dispatch has started its push ...
            assert dispatcher._pusher is not None
            dispatcher._pusher.cancel()  # ... which is cancelled (a loop shutting down)
            with pytest.raises(TimeoutError):  # its push never ran
                await first
            await dispatcher.dispatch(uuid.UUID(EVENT_ID))  # the next one still goes out
        finally:
            await dispatcher.aclose()

    asyncio.run(dispatch_twice())
    # The next push took the first message too (it was still waiting in the batch).
    assert len(_queued(client)) == 2
