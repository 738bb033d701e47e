"""Several API processes of one production-mode deployment share their state through
Redis and PostgreSQL, not their memory: here, the per-key rate limits."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from tests.integration.celery.celery_stack import GUIDELINE, Stack
from tests.support.ratelimit import in_one_window

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(90)]

SUBMITS_PER_MIN = 3
READS_PER_MIN = 4


def test_two_api_processes_count_one_rate_limit_in_redis(
    make_stack: Callable[..., Stack],
) -> None:
    """Two `serve` processes on one Redis (no worker: the jobs simply wait). A key's
    requests alternate between them; the limit is reached after SUBMITS_PER_MIN
    submits in all, not per process, and likewise for reads."""
    stack = make_stack(
        RATE_LIMIT_SUBMIT_PER_MIN=str(SUBMITS_PER_MIN), RATE_LIMIT_READ_PER_MIN=str(READS_PER_MIN)
    )
    stack.start_api()
    first = stack.api_url
    stack.start_api()
    second = stack.api_url
    assert first != second
    auth = {"Authorization": f"Bearer {stack.api_key}"}
    with httpx.Client(headers=auth, timeout=10) as a, httpx.Client(headers=auth, timeout=10) as b:
        apis = [(a, first), (b, second)]

        def submits(_: int) -> list[httpx.Response]:
            return [
                client.post(f"{url}/jobs", json={"input_text": f"{n}. {GUIDELINE}"})
                for n, (client, url) in enumerate(apis * 2)
            ]

        def reads(_: int) -> list[httpx.Response]:
            return [client.get(f"{url}/jobs") for client, url in (apis * 3)[:5]]

        posted = in_one_window(submits)
        listed = in_one_window(reads)

    assert [r.status_code for r in posted] == [202, 202, 202, 429], [r.text for r in posted]
    assert [r.headers["ratelimit-remaining"] for r in posted] == ["2", "1", "0", "0"]
    assert [r.status_code for r in listed] == [200, 200, 200, 200, 429]
    assert [r.headers["ratelimit-remaining"] for r in listed] == ["3", "2", "1", "0", "0"]
    assert all(stack.procs[i].alive() for i in (0, 1))
