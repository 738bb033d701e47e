"""Live progress in embedded mode: long-poll (`?wait=`) and Server-Sent Events.

Long-poll through the in-process app (the fake LLM holds steps at will); the
event stream through a served process and a streaming HTTP client, with the
local OpenAI-compatible stub slowing each step so every change can be seen.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_support import Client, assert_problem, in_app
from tests.support.fake_llm import FakeLLM
from tests.support.openai_stub import StubServer
from tests.support.served import clean_env, make_key, served

Headers = dict[str, str]


async def submit(client: Client, headers: Headers) -> str:
    response = await client.post("/jobs", json={"input_text": "Wash hands."}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["event_id"])


async def test_a_finished_job_answers_a_long_poll_at_once(client: Client, alice: Headers) -> None:
    event_id = await submit(client, alice)
    deadline = time.monotonic() + 10
    while (await client.get(f"/jobs/{event_id}", headers=alice)).json()["status"] != "completed":
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    started = time.monotonic()
    response = await client.get(f"/jobs/{event_id}?wait=30", headers=alice)
    assert response.status_code == 200
    assert response.json()["status"] == "completed"
    assert time.monotonic() - started < 5


async def test_a_long_poll_is_answered_when_the_job_finishes(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    in_app(client, fake_llm.hold, "checklist")
    event_id = await submit(client, alice)

    # From another thread: the test client's request holds this loop while it waits.
    releasing = threading.Timer(1.0, in_app, (client, fake_llm.release, "checklist"))
    releasing.start()
    started = time.monotonic()
    response = await client.get(f"/jobs/{event_id}?wait=30", headers=alice)
    releasing.join()
    assert response.json()["status"] == "completed"
    assert 0.9 <= time.monotonic() - started < 15
    assert response.json()["input_text"] == "Wash hands."


async def test_a_long_poll_ends_at_its_deadline_with_the_job_as_it_is(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    in_app(client, fake_llm.hold, "summarize")
    event_id = await submit(client, alice)
    started = time.monotonic()
    response = await client.get(f"/jobs/{event_id}?wait=1", headers=alice)
    elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert response.json()["status"] in ("pending", "processing")
    assert 0.9 <= elapsed < 10


@pytest.mark.parametrize("wait", ["-1", "61", "soon", "1e9"])
async def test_a_wait_out_of_range_is_422(client: Client, alice: Headers, wait: str) -> None:
    event_id = await submit(client, alice)
    assert_problem(await client.get(f"/jobs/{event_id}?wait={wait}", headers=alice), 422)


async def test_a_long_poll_on_a_foreign_job_is_404(
    client: Client, alice: Headers, bob: Headers
) -> None:
    event_id = await submit(client, alice)
    assert_problem(await client.get(f"/jobs/{event_id}?wait=5", headers=bob), 404)


# -- Server-Sent Events, through a served process ---------------------------------------


def read_events(response: httpx.Response) -> list[dict[str, Any]]:
    """Parse a text/event-stream as it arrives: events (with arrival time) and comments."""
    events: list[dict[str, Any]] = []
    current: dict[str, Any] = {}
    for line in response.iter_lines():
        if line == "":
            if current:
                current["at"] = time.monotonic()
                events.append(current)
            current = {}
        elif line.startswith(":"):
            current["comment"] = line[1:].strip()
        else:
            field, _, value = line.partition(":")
            current[field] = value.lstrip(" ")
    return events


@pytest.fixture
def stream_server(tmp_path: Path, openai_stub: StubServer):  # type: ignore[no-untyped-def]
    openai_stub.configure(latency_ms=700)
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/sse.sqlite3",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=openai_stub.url,
        LOG_FORMAT="json",
    )
    key = make_key(env)
    with served(env, tmp_path / "serve.log") as url:
        yield url, {"Authorization": f"Bearer {key}"}


def test_the_event_stream_shows_each_change_then_ends(stream_server) -> None:  # type: ignore[no-untyped-def]
    url, headers = stream_server
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        event_id = client.post("/jobs", json={"input_text": "Wash hands often."}).json()["event_id"]
        opened = time.monotonic()
        with client.stream("GET", f"/jobs/{event_id}/events") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = read_events(response)

    jobs = [json.loads(e["data"]) for e in events if e.get("event") == "job"]
    assert events[0]["at"] - opened < 1.0  # the current state at once
    stages = [(j["status"], j["step"]) for j in jobs]
    assert stages[-1] == ("completed", None)
    assert ("processing", "checklist") in stages
    assert stages.index(("processing", "checklist")) < len(stages) - 1
    assert len(stages) == len(set(stages))  # one event per change
    assert all("input_text" not in j for j in jobs)
    ids = [int(e["id"]) for e in events if e.get("event") == "job"]
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert jobs[-1]["summary"]
    assert jobs[-1]["checklist"]


def test_the_event_stream_of_a_missing_or_foreign_job_is_404_before_any_stream(
    stream_server,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    url, headers = stream_server
    with httpx.Client(base_url=url, headers=headers, timeout=10) as client:
        missing = client.get("/jobs/00000000-0000-0000-0000-000000000000/events")
        assert missing.status_code == 404
        assert missing.headers["content-type"].startswith("application/problem+json")
        assert client.get("/jobs/not-an-id/events").status_code == 404


def test_a_cancel_stops_the_running_llm_call_within_a_second_or_so(
    tmp_path: Path, openai_stub: StubServer
) -> None:
    """Embedded mode: the server hears of its own cancel and drops the call in flight
    (the stub sees its client go away), long before the call would end."""
    openai_stub.configure(latency_ms=60_000)
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/cancel.sqlite3",
        OPENAI_API_KEY="sk-test",
        OPENAI_BASE_URL=openai_stub.url,
        LOG_FORMAT="json",
    )
    key = make_key(env)
    with (
        served(env, tmp_path / "serve.log") as url,
        httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        ) as client,
    ):
        event_id = client.post("/jobs", json={"input_text": "Wash hands."}).json()["event_id"]
        deadline = time.monotonic() + 20
        while openai_stub.stats()["in_flight"] == 0:
            assert time.monotonic() < deadline, "the LLM call never started"
            time.sleep(0.05)
        cancelled_at = time.monotonic()
        assert client.post(f"/jobs/{event_id}/cancel").status_code == 200
        while openai_stub.stats()["in_flight"] > 0:
            assert time.monotonic() - cancelled_at < 5, "the LLM call ran on after the cancel"
            time.sleep(0.05)
        assert client.get(f"/jobs/{event_id}").json()["status"] == "cancelled"


class TestUnderAShortRequestDeadline:
    """REQUEST_TIMEOUT_S bounds a request's own work, not the wait a long poll asks for."""

    @pytest.fixture
    def settings(self, settings: Any) -> Any:
        import dataclasses

        return dataclasses.replace(settings, request_timeout_s=0.5)

    async def test_a_long_poll_longer_than_the_deadline_is_answered_not_cut(
        self, client: Client, alice: Headers, fake_llm: FakeLLM
    ) -> None:
        in_app(client, fake_llm.hold, "summarize")
        event_id = await submit(client, alice)
        started = time.monotonic()
        response = await client.get(f"/jobs/{event_id}?wait=2", headers=alice)
        assert response.status_code == 200, response.text
        assert response.json()["status"] in ("pending", "processing")
        assert time.monotonic() - started >= 1.9
