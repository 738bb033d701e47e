"""Jobs submitted over HTTP, run by the OpenAI gateway against the local stub server.

The whole path is real: Litestar app, SQLite repository, in-process dispatcher,
ProcessJob with its retries, the `openai` client on its aiohttp transport.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from tests.support.openai_stub import _WORD, StubServer, _text_of

from entrypoints.asgi import create_app
from entrypoints.settings import Settings

TEXT = (
    "Adults with hypertension should have their blood pressure measured at every visit. "
    "Clinicians must avoid NSAIDs in patients with chronic kidney disease. "
    "Consider a statin when the ten-year cardiovascular risk exceeds ten percent."
)


def _settings(tmp_path: Path, stub: StubServer, **changes: Any) -> Settings:
    settings = Settings(
        database_url=f"sqlite:///{tmp_path}/jobs.sqlite3",
        llm_provider="openai",
        openai_api_key="test-key",
        openai_base_url=stub.url,
        llm_timeout_s=0.5,
        llm_max_attempts=2,
        llm_backoff_base_s=0.01,
        auth_disabled=True,
        log_format="json",
    )
    return replace(settings, **changes)


@pytest.fixture
async def client(tmp_path: Path, openai_stub: StubServer) -> AsyncIterator[AsyncTestClient[Any]]:
    async with AsyncTestClient(create_app(_settings(tmp_path, openai_stub))) as test_client:
        yield test_client


async def run_job(client: AsyncTestClient[Any], timeout_s: float = 10.0) -> dict[str, Any]:
    response = await client.post("/jobs", json={"input_text": TEXT})
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        job: dict[str, Any] = (await client.get(f"/jobs/{event_id}")).json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {event_id} did not finish: {job}")


async def test_a_job_completes_with_the_servers_summary_checklist_and_usage(
    client: AsyncTestClient[Any], openai_stub: StubServer
) -> None:
    job = await run_job(client)

    assert job["status"] == "completed", job
    assert openai_stub.stats()["by_kind"] == {"summary": 1, "checklist": 1}
    summary_request, checklist_request = openai_stub.requests()
    # Step 2 is written from the summary the server returned in step 1.
    assert job["summary"] in _text_of(checklist_request["messages"][-1]["content"])
    assert job["checklist"]
    assert all(item.strip() for item in job["checklist"])
    assert job["result"] == {"summary": job["summary"], "checklist": job["checklist"]}
    # The usage is what the server reported for both calls, summed.
    expected_prompt = sum(
        len(_WORD.findall(_text_of(m.get("content"))))
        for body in (summary_request, checklist_request)
        for m in body["messages"]
    )
    usage = job["usage"]
    assert usage["prompt_tokens"] == expected_prompt
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert usage["completion_tokens"] >= len(_WORD.findall(job["summary"]))
    assert checklist_request["response_format"]["type"] == "json_schema"


@pytest.mark.parametrize(
    ("script", "code", "calls"),
    [
        (["400"], "llm_rejected", 1),
        (["401"], "llm_rejected", 1),
        (["refusal"], "llm_rejected", 1),
        (["content_filter"], "llm_rejected", 1),
        (["429", "429"], "llm_rate_limited", 2),
        (["500", "500"], "llm_unavailable", 2),
        (["hang", "hang"], "llm_timeout", 2),
        (["ok", "malformed", "malformed"], "llm_bad_output", 3),
    ],
)
async def test_each_fault_ends_with_its_error_code(
    client: AsyncTestClient[Any],
    openai_stub: StubServer,
    script: list[str],
    code: str,
    calls: int,
) -> None:
    openai_stub.configure(script=script, retry_after_s=0.05)

    job = await run_job(client)

    assert job["status"] == "failed", job
    assert job["error"]["code"] == code
    assert job["error"]["message"]
    assert job["result"] is None
    assert openai_stub.stats()["calls"] == calls
    # A failure at the checklist step keeps the summary that was paid for.
    assert (job["summary"] is not None) == (script[0] == "ok")


async def test_a_transient_fault_is_retried_and_the_job_completes(
    client: AsyncTestClient[Any], openai_stub: StubServer
) -> None:
    openai_stub.configure(script=["429", "ok", "500", "ok"], retry_after_s=0.05)

    job = await run_job(client)

    assert job["status"] == "completed", job
    assert openai_stub.stats()["calls"] == 4
    assert job["attempts"] == 1  # LLM call retries are not job attempts


async def test_every_call_sends_the_default_output_token_cap(
    client: AsyncTestClient[Any], openai_stub: StubServer
) -> None:
    job = await run_job(client)
    assert job["status"] == "completed", job
    summary_request, checklist_request = openai_stub.requests()
    assert summary_request["max_completion_tokens"] == 1024
    assert checklist_request["max_completion_tokens"] == 2048
    assert "max_tokens" not in summary_request
    assert "max_tokens" not in checklist_request


async def test_the_cap_settings_and_the_older_field_name_reach_the_server(
    tmp_path: Path, openai_stub: StubServer
) -> None:
    settings = _settings(
        tmp_path,
        openai_stub,
        llm_max_output_tokens_summary=300,
        llm_max_output_tokens_checklist=4,
        llm_max_tokens_field="max_tokens",
    )
    async with AsyncTestClient(create_app(settings)) as test_client:
        job = await run_job(test_client)
    # The stub cuts the checklist at 4 words (finish_reason "length"): a cut-off reply is
    # not asked for again, the job fails at once and keeps its summary.
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "llm_bad_output"
    assert "output token limit" in job["error"]["message"]
    assert job["summary"]
    summary_request, checklist_request = openai_stub.requests()
    assert summary_request["max_tokens"] == 300
    assert checklist_request["max_tokens"] == 4
    assert "max_completion_tokens" not in summary_request
    assert "max_completion_tokens" not in checklist_request


async def test_a_rejected_key_never_reaches_the_jobs_error_message(
    tmp_path: Path, openai_stub: StubServer
) -> None:
    key = "sk-live-0123456789abcdefWXYZ"
    settings = _settings(tmp_path, openai_stub, openai_api_key=key)
    openai_stub.configure(script=["401"])
    async with AsyncTestClient(create_app(settings)) as test_client:
        job = await run_job(test_client)
    assert job["status"] == "failed", job
    assert job["error"]["code"] == "llm_rejected"
    message = job["error"]["message"]
    # The provider's text quotes the key's ends ("sk-*****WXYZ"); the job's message is
    # fixed words, the status and the provider's request id.
    assert "WXYZ" not in message
    assert "sk-" not in message
    assert re.fullmatch(
        r"the LLM provider refused the credentials \(check OPENAI_API_KEY\) \(HTTP 401\)"
        r" \(request id req_stub_\w+\)",
        message,
    ), message
