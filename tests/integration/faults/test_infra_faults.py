"""Infrastructure faults through the real processes, on a PostgreSQL and a Redis this
suite owns: the database stopped and started, the broker killed and started, and
racing duplicate submits."""

from __future__ import annotations

import functools
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.integration.celery.celery_stack import GUIDELINE, PrivateRedis, Stack, StubControl
from tests.integration.faults.fault_support import (
    PrivatePostgres,
    db_scalar,
    get_job,
    submit,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]

PROBLEM_JSON = "application/problem+json"
# "Within seconds": a refused connection is answered at once; a request that waited on a
# dead database would hang for a TCP timeout. Generous for a loaded 2-core machine.
FAST_ANSWER_S = 15.0


def assert_problem(response: httpx.Response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
    body: dict[str, object] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    return body


def timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def test_database_down_gives_503_then_recovers_without_a_restart(
    make_stack: Callable[..., Stack], stub: StubControl, private_pg: PrivatePostgres
) -> None:
    """The database crashes (`pg_ctl -m immediate`) while a worker holds a job in its
    summary step. The API answers 503 problem details within seconds and comes back by
    itself; the held job completes. Its in-flight summary answer arrived while the
    database was down, so it could not be saved: that one call is made again, and
    nothing else is."""
    stack = make_stack()
    stack.start_api()
    stack.start_worker()
    api = stack.procs[0]
    stub.configure(latency_ms=2500)
    try:
        with stack.client(timeout=30) as client:
            held_id = submit(client, GUIDELINE)["event_id"]
            wait_for(lambda: stub.stats()["in_flight"] == 1, 10, "the summary call starting")
            assert get_job(client, held_id)["status"] == "processing"

            private_pg.stop("immediate")

            response, elapsed = timed(lambda: client.post("/jobs", json={"input_text": "x"}))
            assert_problem(response, 503)
            assert elapsed < FAST_ANSWER_S, elapsed
            response, elapsed = timed(lambda: client.get(f"/jobs/{held_id}"))
            assert_problem(response, 503)
            assert elapsed < FAST_ANSWER_S, elapsed
            response, elapsed = timed(lambda: client.get("/health/ready"))
            detail = str(assert_problem(response, 503)["detail"])
            assert "database" in detail, detail
            assert "broker" not in detail, detail
            assert elapsed < FAST_ANSWER_S, elapsed
            assert client.get("/health/live").status_code == 200

            # The summary answer comes back while the database is down: the worker
            # cannot save it, and hands the delivery back to be retried.
            wait_for(lambda: stub.stats()["in_flight"] == 0, 10, "the summary call ending")
            worker = stack.procs[1]
            wait_for(
                lambda: "database unavailable: task will be retried" in worker.log(),
                10,
                "the worker noticing the outage",
            )
            time.sleep(1.0)
        private_pg.start()
        with stack.client(timeout=30) as client:
            new_job = wait_for(
                lambda: client.post("/jobs", json={"input_text": GUIDELINE}).status_code == 202,
                20,
                "the API accepting jobs again",
                interval=0.25,
            )
            assert new_job
            assert client.get("/health/ready").status_code == 200
            event_ids = set(_all_ids(stack))
            assert held_id in event_ids
            assert len(event_ids) == 2
            jobs = wait_terminal(client, event_ids, timeout=40)
    finally:
        private_pg.start()

    assert api.alive()
    assert stack.procs[0] is api
    assert {job["status"] for job in jobs.values()} == {"completed"}, jobs
    held = jobs[held_id]
    assert held["attempts"] == 2, held  # claimed again once after the outage
    assert stub.stats()["by_kind"] == {"summary": 2 + 1, "checklist": 1 + 1}
    assert db_scalar(stack.database_url, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0


def _all_ids(stack: Stack) -> list[str]:
    rows = db_scalar(stack.database_url, "SELECT array_agg(event_id::text) FROM jobs")
    return list(rows or [])


def test_redis_down_submits_still_succeed_and_all_complete_once_it_is_back(
    make_stack: Callable[..., Stack], stub: StubControl, private_redis: PrivateRedis
) -> None:
    """Redis (no persistence) is killed with two jobs running, two queued and so lost
    with it; three more are submitted while it is down. Once it is back every job
    completes: the worker reconnects, the outbox relay publishes what the API could
    not, recovery redispatches the lost messages, and no step is paid for twice."""
    stack = make_stack(WORKER_CONCURRENCY="2")
    stack.start_api()
    stack.start_worker()
    stub.configure(latency_ms=1000)
    with stack.client(timeout=30) as client:
        before = [submit(client, f"Before {n}. {GUIDELINE}")["event_id"] for n in range(4)]
        wait_for(lambda: stub.stats()["in_flight"] == 2, 10, "two summary calls starting")
        queued = int(
            db_scalar(stack.database_url, "SELECT count(*) FROM jobs WHERE status = 'pending'")
        )
        assert queued == 2  # two messages wait in Redis

        private_redis.stop()

        during = []
        for n in range(3):
            body = {"input_text": f"During {n}. {GUIDELINE}"}
            response, elapsed = timed(functools.partial(client.post, "/jobs", json=body))
            assert response.status_code == 202, response.text
            # The publish gives up (2 s) rather than hang; the outbox keeps the job.
            assert elapsed < FAST_ANSWER_S, elapsed
            during.append(response.json()["event_id"])
        response = client.get("/health/ready")
        detail = str(assert_problem(response, 503)["detail"])
        assert "broker" in detail, detail
        assert "database" not in detail, detail
        unsent = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
        assert db_scalar(stack.database_url, unsent) >= 3
        time.sleep(1.5)

        private_redis.start()
        wait_for(lambda: client.get("/health/ready").status_code == 200, 10, "ready again")
        jobs = wait_terminal(client, {*before, *during}, timeout=45)

    assert Counter(job["status"] for job in jobs.values()) == {"completed": 7}, jobs
    stats = stub.stats()
    assert stats["by_kind"] == {"summary": 7, "checklist": 7}, stats
    assert db_scalar(stack.database_url, unsent) == 0
    assert stack.procs[1].alive()  # the same worker reconnected


def test_20_concurrent_posts_with_one_idempotency_key_make_one_job(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    """Twenty requests released at once into two API processes: one job, one outbox
    row, one set of LLM calls; every answer names the same job."""
    stack = make_stack()
    stack.start_api(workers=2)
    stack.start_worker()
    body = {"input_text": GUIDELINE, "metadata": {"source": "race"}}
    start = threading.Barrier(20)

    def post(_: int) -> httpx.Response:
        with stack.client() as client:
            client.get("/health/live")  # connect before the race starts
            start.wait(10)
            return client.post("/jobs", json=body, headers={"Idempotency-Key": "race-1"})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(post, range(20)))

    statuses = Counter(r.status_code for r in responses)
    assert statuses == {202: 1, 200: 19}, [r.text for r in responses if r.status_code >= 300]
    event_ids = {r.json()["event_id"] for r in responses}
    assert len(event_ids) == 1
    assert {r.headers["location"] for r in responses} == {f"/jobs/{next(iter(event_ids))}"}
    with stack.client() as client:
        jobs = wait_terminal(client, event_ids, timeout=20)
    assert [job["status"] for job in jobs.values()] == ["completed"]
    assert db_scalar(stack.database_url, "SELECT count(*) FROM jobs") == 1
    assert db_scalar(stack.database_url, "SELECT count(*) FROM outbox") == 1
    assert stub.stats()["by_kind"] == {"summary": 1, "checklist": 1}
