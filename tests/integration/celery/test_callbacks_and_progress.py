"""Callbacks and live progress in production mode: API and Celery worker processes,
PostgreSQL, Redis (the broker and the change feed), a real HTTP receiver."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook
from tests.integration.celery.celery_stack import PrivateRedis, Stack, StubControl
from tests.integration.celery.test_celery_worker import completed, submit, wait_job
from tests.support.webhook_receiver import WebhookReceiver

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]
SECRET = "whsec_" + base64.b64encode(b"p" * 32).decode()
CALLBACKS = {
    "WEBHOOK_SIGNING_SECRET": SECRET,
    "CALLBACKS_ALLOW_HTTP": "true",
    "CALLBACKS_ALLOW_PRIVATE": "true",
    "CALLBACK_INTERVAL_S": "0.2",
    "WEBHOOK_TIMEOUT_S": "2",
    "WEBHOOK_BACKOFF_BASE_S": "0.2",
}


@pytest.fixture
def hooked(make_stack: Callable[..., Stack]) -> Stack:
    stack = make_stack(**CALLBACKS)
    stack.start_api()
    return stack


def test_a_worker_killed_mid_delivery_still_delivers(
    hooked: Stack, stub: StubControl, receiver: WebhookReceiver
) -> None:
    receiver.script((200, 1.5))  # the first try is still waiting when its worker dies
    worker = hooked.start_worker()
    with hooked.client() as client:
        response = client.post(
            "/jobs", json={"input_text": "Wash hands.", "callback_url": receiver.url}
        )
        event_id = response.json()["event_id"]
        receiver.wait_for(1, timeout=30)
        worker.kill9()
        hooked.start_worker()
        requests = receiver.wait_for(2, timeout=40)
        job = wait_job(
            client, event_id, lambda j: (j["callback"] or {}).get("status") == "delivered", 30
        )
    assert requests[0].headers["webhook-id"] == requests[1].headers["webhook-id"]
    payload = Webhook(SECRET).verify(requests[1].body, requests[1].headers)
    assert payload["type"] == "job.completed"
    assert payload["data"]["event_id"] == event_id
    assert job["status"] == "completed"


def test_a_cancel_in_the_api_process_is_called_back_by_a_worker(
    hooked: Stack, stub: StubControl, receiver: WebhookReceiver
) -> None:
    stub.configure(latency_ms=3000)
    hooked.start_worker()
    with hooked.client() as client:
        event_id = client.post(
            "/jobs", json={"input_text": "Wash hands.", "callback_url": receiver.url}
        ).json()["event_id"]
        wait_job(client, event_id, lambda j: j["status"] == "processing")
        assert client.post(f"/jobs/{event_id}/cancel").status_code == 200
        (request,) = receiver.wait_for(1, timeout=20)
    assert json.loads(request.body)["type"] == "job.cancelled"


def _events(response: httpx.Response) -> list[dict[str, Any]]:
    events, current = [], {}
    for line in response.iter_lines():
        if line == "":
            if current:
                events.append(current)
            current = {}
        elif not line.startswith(":"):
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return events


def test_event_stream_and_long_poll_follow_a_job_run_by_a_worker(
    stack: Stack, stub: StubControl
) -> None:
    stub.configure(latency_ms=800)
    with stack.client(timeout=30) as client:
        streamed = submit(client).json()["event_id"]
        with client.stream("GET", f"/jobs/{streamed}/events") as response:
            assert response.status_code == 200
            events = _events(response)
        polled = submit(client).json()["event_id"]
        started = time.monotonic()
        answer = client.get(f"/jobs/{polled}?wait=30").json()
        waited = time.monotonic() - started

    stages = [
        (job["status"], job["step"])
        for job in (json.loads(e["data"]) for e in events if e.get("event") == "job")
    ]
    assert stages[-1] == ("completed", None)
    assert ("processing", "checklist") in stages  # a change made in the worker process
    assert answer["status"] == "completed"
    assert waited < 25  # answered when the job finished, not at the deadline
    completed(answer)


def _started_call(stub: StubControl) -> None:
    deadline = time.monotonic() + 30
    while stub.stats()["in_flight"] == 0:
        assert time.monotonic() < deadline, "the LLM call never started"
        time.sleep(0.02)


def _seconds_until_the_call_stops(stub: StubControl, limit_s: float) -> float:
    """Seconds until the stub sees its one call in flight aborted by the worker."""
    started = time.monotonic()
    while stub.stats()["in_flight"] > 0:
        elapsed = time.monotonic() - started
        assert elapsed < limit_s, f"the LLM call ran on {elapsed:.1f}s after the cancel"
        time.sleep(0.02)
    return time.monotonic() - started


def test_a_cancel_in_the_api_stops_the_workers_llm_call(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    """Production mode: the cancel is committed by the API process, which announces it
    on the revocation channel; the worker drops its call in flight within about a
    second. The lease is long (60 s: the first heartbeat comes 15 s into the step), so
    only the notice can stop the call that soon."""
    stack = make_stack(JOB_LEASE_S="60")
    stack.start_api()
    worker = stack.start_worker()
    stub.configure(latency_ms=60_000)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        _started_call(stub)
        cancelled_at = time.monotonic()
        assert client.post(f"/jobs/{event_id}/cancel").status_code == 200
        _seconds_until_the_call_stops(stub, limit_s=2.0)
        stopped_after = time.monotonic() - cancelled_at
        assert client.get(f"/jobs/{event_id}").json()["status"] == "cancelled"
    assert stopped_after < 2.0
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 0}
    assert "job left alone: no longer ours" in worker.log()


def test_with_redis_down_a_cancel_still_stops_the_call_at_the_next_heartbeat(
    make_stack: Callable[..., Stack], stub: StubControl, private_redis: PrivateRedis
) -> None:
    """Redis (broker and notices) dies while the step's call runs: the cancel still
    answers 200, nothing announces it, and the worker's next heartbeat (JOB_LEASE_S/4:
    1 s here) finds the job cancelled and drops the call."""
    stack = make_stack(broker=private_redis.url)
    api = stack.start_api()
    worker = stack.start_worker()
    stub.configure(latency_ms=60_000)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        _started_call(stub)
        private_redis.stop()
        assert client.post(f"/jobs/{event_id}/cancel").status_code == 200
        _seconds_until_the_call_stops(stub, limit_s=4.0)
        assert client.get(f"/jobs/{event_id}").json()["status"] == "cancelled"
    assert worker.alive()
    assert "revocation not announced" in api.log()  # the API's publish failed
