"""No secret in what production mode answers or logs: the database password, the
broker password, the OpenAI key and the API key never appear in a health or error
response, nor in the API's or the Celery worker's logs (at DEBUG), through a run with
a completed job, a failed job, refused requests, a broker outage and a database outage.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
from psycopg import sql
from tests.integration.celery.celery_stack import (
    GUIDELINE,
    PrivateRedis,
    Stack,
    StubControl,
    wait_until,
)
from tests.integration.celery.conftest import FAST_RECOVERY
from tests.support.served import key_parts

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(150)]

DB_PASSWORD = "Db-Pa55word-c41e"  # trust auth ignores it; it still travels in DATABASE_URL
BROKER_PASSWORD = "Br0ker-Pa55-9d2b"
OPENAI_KEY = "sk-test-77f0b3c2-never-echo-me"
TERMINAL = {"completed", "failed", "cancelled"}


def with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{DB_PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
def locked_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path, password=BROKER_PASSWORD)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _terminal(client: httpx.Client, event_id: str) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        job: dict[str, object] = client.get(f"/jobs/{event_id}").json()
        return job if job["status"] in TERMINAL else None

    result: dict[str, object] = wait_until(done, 30, f"job {event_id} ending", interval=0.1)
    return result


def test_no_secret_in_responses_or_in_the_api_and_worker_logs(
    tmp_path: Path,
    pg_url: str,
    pg_admin_url: str,
    locked_redis: PrivateRedis,
    stub: StubControl,
) -> None:
    stack = Stack(
        log_dir=tmp_path,
        database_url=with_password(pg_url),
        broker_url=locked_redis.url,
        llm_base_url=stub.url,
        extra_env={**FAST_RECOVERY, "OPENAI_API_KEY": OPENAI_KEY, "LOG_LEVEL": "DEBUG"},
    )
    responses: list[httpx.Response] = []
    try:
        stack.prepare()
        api = stack.start_api()
        worker = stack.start_worker()
        with stack.client() as client:
            responses.append(client.get("/health/ready"))
            assert responses[-1].status_code == 200, responses[-1].text
            done = client.post("/jobs", json={"input_text": GUIDELINE})
            assert _terminal(client, done.json()["event_id"])["status"] == "completed"
            stub.configure(script=["ok", "400"])  # the second job's checklist is refused
            refused = client.post("/jobs", json={"input_text": GUIDELINE})
            assert _terminal(client, refused.json()["event_id"])["status"] == "failed"
            responses += [done, refused]
            responses += [client.get(f"/jobs/{r.json()['event_id']}") for r in (done, refused)]
            responses += [
                client.get("/metrics"),
                client.get(f"/jobs/{uuid.uuid4()}"),  # 404
                client.post("/jobs", json={"input_text": ""}),  # 422
                client.post("/jobs", content=b"{", headers={"Content-Type": "application/json"}),
                client.get("/jobs", headers={"Authorization": "Bearer gi_0_wrong"}),  # 401
            ]

            # The broker goes away: readiness names it, submits still succeed.
            locked_redis.stop()
            responses.append(client.get("/health/ready"))
            assert responses[-1].status_code == 503, responses[-1].text
            during = client.post("/jobs", json={"input_text": GUIDELINE})
            assert during.status_code == 202, during.text
            responses.append(during)
            wait_until(
                lambda: "Connection to broker lost" in worker.log(), 20, "the worker noticing"
            )
            locked_redis.start()
            wait_until(
                lambda: client.get("/health/ready").status_code == 200, 30, "the broker back"
            )
            assert _terminal(client, during.json()["event_id"])["status"] == "completed"

            # The database goes away: 503s, and the worker's chores fail meanwhile.
            database = pg_url.rsplit("/", 1)[1]
            with psycopg.connect(pg_admin_url, autocommit=True) as admin:
                allow = "ALTER DATABASE {} ALLOW_CONNECTIONS {}"
                admin.execute(sql.SQL(allow.format("{}", "false")).format(sql.Identifier(database)))
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                    (database,),
                )
                try:
                    for request in (
                        lambda: client.get("/health/ready"),
                        lambda: client.get("/jobs"),
                        lambda: client.post("/jobs", json={"input_text": GUIDELINE}),
                    ):
                        responses.append(request())
                        assert responses[-1].status_code == 503, responses[-1].text
                    wait_until(
                        lambda: '"periodic task failed"' in worker.log(), 20, "a chore failing"
                    )
                finally:
                    admin.execute(
                        sql.SQL(allow.format("{}", "true")).format(sql.Identifier(database))
                    )
            wait_until(
                lambda: client.get("/health/ready").status_code == 200, 30, "the database back"
            )
        logs = {"api": api.log(), "worker": worker.log()}
    finally:
        stack.close()

    _, key_secret = key_parts(stack.api_key)
    secrets = {
        "the database password": DB_PASSWORD,
        "the broker password": BROKER_PASSWORD,
        "the OpenAI key": OPENAI_KEY,
        "the API key": stack.api_key,
        "the API key's secret": key_secret,
    }
    answered = "\n".join(f"{r.status_code} {dict(r.headers)} {r.text}" for r in responses)
    assert {r.status_code for r in responses} >= {200, 202, 400, 401, 404, 422, 503}
    for what, secret in secrets.items():
        assert secret not in answered, f"{what} was in a response"
        for process, text in logs.items():
            assert secret not in text, f"{what} was in the {process}'s log"
    # The run was logged at DEBUG, outages included (so the scan saw them).
    assert '"level": "debug"' in logs["worker"]
    assert "Connection to broker lost" in logs["worker"]
    assert '"database unavailable"' in logs["api"]
