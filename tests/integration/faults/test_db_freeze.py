"""The database freezes: every process of the private PostgreSQL is stopped (SIGSTOP)
while jobs run. Connections stay open and new ones are accepted by the kernel, but
nothing answers, as in a stuck failover or a partition that drops no connection.
The API must still answer every request within 10 s (503 problem details or success),
and once the server runs again (SIGCONT) the service recovers by itself: every job
it accepted, before or during the freeze, completes."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from tests.integration.celery.celery_stack import GUIDELINE, Stack, StubControl
from tests.integration.faults.fault_support import (
    PrivatePostgres,
    db_scalar,
    get_job,
    submit,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(240)]

PROBLEM_JSON = "application/problem+json"
ANSWER_WITHIN_S = 10.0
FROZEN_FOR_S = 8.0  # longer than the fast lease: workers lose their jobs' leases meanwhile


def _timed(call: Callable[[], httpx.Response]) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = call()
    return response, time.monotonic() - started


def _check_answer(response: httpx.Response, elapsed: float, *, success: int) -> None:
    """Within the bound, and either the call's success status or 503 problem details."""
    what = f"{response.request.method} {response.request.url.path}"
    assert elapsed < ANSWER_WITHIN_S, f"{what} took {elapsed:.1f}s"
    assert response.status_code in (success, 503), f"{what}: {response.text}"
    if response.status_code == 503:
        assert response.headers["content-type"].startswith(PROBLEM_JSON), response.headers
        assert response.json()["status"] == 503
        assert "Traceback" not in response.text


@pytest.mark.parametrize("mode", ["production", "embedded"])
def test_frozen_database_answers_within_10s_then_recovers_by_itself(
    mode: str, make_stack: Callable[..., Stack], stub: StubControl, private_pg: PrivatePostgres
) -> None:
    """Production mode: an API process and a Celery worker. Embedded mode: the API alone,
    running its jobs in-process on the same PostgreSQL (no broker)."""
    stack = make_stack(**({"CELERY_BROKER_URL": ""} if mode == "embedded" else {}))
    api = stack.start_api()
    if mode == "production":
        stack.start_worker()
    stub.configure(latency_ms=400)
    accepted: list[str] = []
    try:
        with stack.client(timeout=60) as client:
            accepted += [submit(client, f"Before {n}. {GUIDELINE}")["event_id"] for n in range(8)]
            wait_for(lambda: stub.stats()["in_flight"] >= 1, 15, "jobs running")
            for event_id in accepted:  # the API's pool now holds idle connections
                get_job(client, event_id)

            private_pg.freeze()
            frozen_at = time.monotonic()

            post = functools.partial(client.post, "/jobs", json={"input_text": GUIDELINE})
            calls: list[tuple[Callable[[], httpx.Response], int]] = [
                (post, 202),
                (functools.partial(client.get, f"/jobs/{accepted[0]}"), 200),
                (functools.partial(client.get, "/health/ready"), 200),
            ]
            statuses: list[int] = []
            for call, success in calls:
                response, elapsed = _timed(call)
                _check_answer(response, elapsed, success=success)
                statuses.append(response.status_code)
                if response.status_code == 202:
                    accepted.append(response.json()["event_id"])
            # Then a burst at once, each on its own connection, meeting what the first
            # round left (pooled connections stuck on the frozen server): none waits.
            with ThreadPoolExecutor(9) as pool:
                burst = list(pool.map(lambda c: (*_timed(c[0]), c[1]), calls * 3))
            for response, elapsed, success in burst:
                _check_answer(response, elapsed, success=success)
                statuses.append(response.status_code)
                if response.status_code == 202:
                    accepted.append(response.json()["event_id"])
            assert 503 in statuses  # the database did not answer: some call must say so
            assert client.get("/health/live").status_code == 200
            time.sleep(max(0.0, FROZEN_FOR_S - (time.monotonic() - frozen_at)))

            private_pg.thaw()
            wait_for(
                lambda: client.get("/health/ready").status_code == 200,
                30,
                "the API ready again",
                interval=0.25,
            )
            accepted.append(submit(client, f"After. {GUIDELINE}")["event_id"])
            jobs = wait_terminal(client, set(accepted), timeout=90)
            # A submit cut short by the deadline may have committed all the same: it runs too.
            unfinished = "SELECT count(*) FROM jobs WHERE status <> 'completed'"
            wait_for(lambda: db_scalar(stack.database_url, unfinished) == 0, 60, "all jobs done")
    finally:
        private_pg.thaw()

    assert {job["status"] for job in jobs.values()} == {"completed"}, jobs
    assert api.alive()
    assert stack.procs[0] is api
