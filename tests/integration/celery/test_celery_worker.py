"""Production mode end to end: HTTP API → PostgreSQL + outbox → Redis → Celery worker
process → the OpenAI gateway → the stub server. Every part is a real process."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from tests.integration.celery.celery_stack import GUIDELINE, PrivateRedis, Stack, StubControl

from adapters.queue.celery_app import TaskName, create_celery_app

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(90)]
Job = dict[str, Any]


def submit(client: httpx.Client, text: str = GUIDELINE) -> httpx.Response:
    response = client.post("/jobs", json={"input_text": text})
    assert response.status_code == 202, response.text
    return response


def wait_job(
    client: httpx.Client,
    event_id: str,
    predicate: Callable[[Job], bool],
    timeout: float = 20.0,
    interval: float = 0.05,
) -> Job:
    deadline = time.monotonic() + timeout
    job: Job = {}
    while time.monotonic() < deadline:
        response = client.get(f"/jobs/{event_id}")
        assert response.status_code == 200, response.text
        job = response.json()
        if predicate(job):
            return job
        time.sleep(interval)
    pytest.fail(f"job {event_id} never matched within {timeout}s; last seen: {job}")


def completed(job: Job) -> bool:
    assert job["status"] not in ("failed", "cancelled"), job
    return job["status"] == "completed"


def log_events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def test_the_api_metrics_show_jobs_the_worker_completed(stack: Stack, stub: StubControl) -> None:
    """The worker counts its own moves in its process; the API's /metrics still shows
    every job by status, read from the database (`guideline_jobs{status}`)."""
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        wait_job(client, event_id, completed)
        text = ""
        deadline = time.monotonic() + 15  # the gauge is cached for a few seconds
        while time.monotonic() < deadline:
            text = client.get("/metrics").text
            if 'guideline_jobs{status="completed"} 1.0' in text:
                break
            time.sleep(0.5)
    assert 'guideline_jobs{status="completed"} 1.0' in text, text
    assert 'guideline_jobs{status="pending"} 0.0' in text
    # The API process itself only saw the submit among the moves it counts.
    assert 'guideline_jobs_total{status="pending"} 1.0' in text


def test_a_submitted_job_completes_with_the_llm_outputs(stack: Stack, stub: StubControl) -> None:
    with stack.client() as client:
        response = submit(client)
        event_id = response.json()["event_id"]
        request_id = response.headers["x-request-id"]
        job = wait_job(client, event_id, completed)

    assert job["summary"].startswith("Adults with type 2 diabetes")
    assert job["checklist"]
    assert all(isinstance(item, str) and item for item in job["checklist"])
    assert job["result"] == {"summary": job["summary"], "checklist": job["checklist"]}
    assert job["usage"]["total_tokens"] > 0
    assert (
        job["usage"]["prompt_tokens"] + job["usage"]["completion_tokens"]
        == (job["usage"]["total_tokens"])
    )
    assert job["attempts"] == 1
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 1}
    # The request id travels from the HTTP request into the worker's log lines.
    worker_events = log_events(stack.procs[-1].log())
    claimed = [e for e in worker_events if e.get("event") == "job claimed"]
    assert claimed
    assert claimed[0]["event_id"] == event_id
    assert claimed[0]["request_id"] == request_id
    assert GUIDELINE not in stack.procs[-1].log()  # never the input text in the logs


def test_the_summary_is_visible_before_the_checklist(stack: Stack, stub: StubControl) -> None:
    stub.configure(latency_ms=1500)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        midway = wait_job(
            client, event_id, lambda j: j["summary"] is not None or j["status"] == "completed"
        )
        assert midway["status"] == "processing"
        assert midway["step"] == "checklist"
        assert midway["checklist"] is None
        assert midway["result"] is None
        job = wait_job(client, event_id, completed)
    assert job["summary"] == midway["summary"]


def test_a_cancel_during_processing_is_honoured_at_the_step_boundary(
    stack: Stack, stub: StubControl
) -> None:
    stub.configure(latency_ms=1500)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        wait_job(client, event_id, lambda j: j["status"] == "processing")
        wait_until_in_flight(stub, 1)
        cancelled = client.post(f"/jobs/{event_id}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        # The summary call ends ~1.5 s after it started; give the worker time to see it.
        time.sleep(2.5)
        job = client.get(f"/jobs/{event_id}").json()
    assert job["status"] == "cancelled"
    assert job["checklist"] is None
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 0}


def test_a_job_survives_kill_9_of_its_worker_without_paying_twice_for_the_summary(
    stack: Stack, stub: StubControl
) -> None:
    stub.configure(latency_ms=2000)
    first_worker = stack.procs[-1]
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        wait_job(client, event_id, lambda j: j["step"] == "checklist", timeout=10)
        wait_until_in_flight(stub, 1)  # the checklist call is under way
        first_worker.kill9()
        stack.start_worker()
        # The lease (4 s) runs out, recovery (every 1 s) hands the job to the new worker.
        job = wait_job(client, event_id, completed, timeout=30)
    assert job["attempts"] == 2
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 2}


def test_a_job_submitted_while_redis_is_down_completes_once_it_is_back(
    make_stack: Callable[..., Stack], private_redis: PrivateRedis
) -> None:
    stack = make_stack(broker=private_redis.url)
    stack.start_api()
    stack.start_worker()
    private_redis.stop()
    with stack.client() as client:
        started = time.monotonic()
        response = submit(client)
        assert time.monotonic() - started < 3.0
        event_id = response.json()["event_id"]
        assert client.get("/health/ready").status_code == 503
        time.sleep(1.0)
        assert client.get(f"/jobs/{event_id}").json()["status"] == "pending"
        private_redis.start()
        job = wait_job(client, event_id, completed, timeout=45)
    assert job["attempts"] == 1


def test_a_duplicate_task_message_costs_one_set_of_llm_calls(
    stack: Stack, stub: StubControl
) -> None:
    stub.configure(latency_ms=500)
    celery_app = create_celery_app(stack.broker_url, visibility_timeout_s=3600)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        for _ in range(2):
            celery_app.send_task(TaskName.PROCESS_JOB, args=[event_id])
        job = wait_job(client, event_id, completed)
        time.sleep(1.0)  # any late duplicate would have called the stub by now
        again = client.get(f"/jobs/{event_id}").json()
    assert job["attempts"] == 1
    assert again == job
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 1}


def test_one_worker_process_holds_over_100_llm_calls_in_flight(
    stack: Stack, stub: StubControl
) -> None:
    stub.configure(latency_ms=2000)
    with stack.client(timeout=30) as client, ThreadPoolExecutor(16) as pool:
        event_ids = {r.json()["event_id"] for r in pool.map(lambda _: submit(client), range(150))}
        deadline = time.monotonic() + 40
        while not event_ids <= all_jobs(client, "completed"):
            assert time.monotonic() < deadline, stub.stats()
            time.sleep(0.5)
    stats = stub.stats()
    assert stats["max_in_flight"] >= 100, stats
    assert stats["by_kind"] == {"summary": 150, "checklist": 150}


def all_jobs(client: httpx.Client, status: str) -> set[str]:
    found: set[str] = set()
    cursor = None
    while True:
        params: dict[str, Any] = {"status": status, "limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/jobs", params=params).json()
        found |= {job["event_id"] for job in page["items"]}
        cursor = page["next_cursor"]
        if not cursor:
            return found


def wait_until_in_flight(stub: StubControl, count: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while stub.stats()["in_flight"] < count:
        if time.monotonic() > deadline:
            pytest.fail(f"the stub never had {count} calls in flight")
        time.sleep(0.02)


def test_malformed_id_messages_are_dropped_not_retried(stack: Stack) -> None:
    celery_app = create_celery_app(stack.broker_url, visibility_timeout_s=3600)
    celery_app.send_task(TaskName.PROCESS_JOB, args=["not-a-uuid"])
    celery_app.send_task(TaskName.PROCESS_JOB, args=[str(uuid.uuid4())])  # unknown job
    deadline = time.monotonic() + 10
    worker = stack.procs[-1]
    while "task message without a valid event id" not in worker.log():
        assert time.monotonic() < deadline, worker.log()[-2000:]
        time.sleep(0.1)
    assert worker.alive()


def test_sigterm_hands_a_long_job_back_after_the_grace_period(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    stack = make_stack(SHUTDOWN_GRACE_S="1")
    stack.start_api()
    worker = stack.start_worker()
    stub.configure(latency_ms=6000)
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]
        wait_job(client, event_id, lambda j: j["status"] == "processing")
        wait_until_in_flight(stub, 1)
        stopping = time.monotonic()
        assert worker.stop(timeout=15) == 0
        assert time.monotonic() - stopping < 6.0  # the grace period, not the LLM call
        assert client.get(f"/jobs/{event_id}").json()["status"] == "pending"
        stub.configure(latency_ms=0)
        stack.start_worker()
        job = wait_job(client, event_id, completed, timeout=20)
    assert job["attempts"] == 2


def test_a_task_that_meets_a_database_outage_is_retried_not_lost(
    make_stack: Callable[..., Stack], pg_admin_url: str
) -> None:
    stack = make_stack(JOB_PENDING_REDISPATCH_S="600")  # recovery must not be what saves it
    stack.start_api()
    with stack.client() as client:
        event_id = submit(client).json()["event_id"]  # queued: no worker yet
    database = stack.database_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_admin_url, autocommit=True) as admin:
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(sql.Identifier(database))
        )
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
            (database,),
        )
        worker = stack.start_worker()
        deadline = time.monotonic() + 15
        while "database unavailable: task will be retried" not in worker.log():
            assert time.monotonic() < deadline, worker.log()[-3000:]
            time.sleep(0.1)
        admin.execute(
            sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(database))
        )
    with stack.client() as client:
        job = wait_job(client, event_id, completed, timeout=30)
    assert job["attempts"] == 1
