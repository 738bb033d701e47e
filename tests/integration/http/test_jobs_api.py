"""The /jobs API, health, metrics and OpenAPI document, through HTTP (API.md is the contract).

The real app on a SQLite file, the in-process dispatcher running, and a FakeLLM
(scripted outputs, failures on demand, steps held mid-flight).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from http_support import (
    Client,
    CountedRuns,
    assert_problem,
    bearer,
    in_app,
    is_terminal,
    wait_for,
)
from tests.support.fake_llm import DEFAULT_USAGE, FakeLLM

from application.errors import PermanentLLMError
from domain import ErrorCode
from entrypoints.container import Container
from entrypoints.settings import Settings

Headers = dict[str, str]

JOB_FIELDS = frozenset(
    {
        "event_id",
        "status",
        "step",
        "summary",
        "checklist",
        "result",
        "error",
        "attempts",
        "metadata",
        "usage",
        "created_at",
        "started_at",
        "finished_at",
    }
)
GUIDELINE = (
    "Adults with type 2 diabetes should be offered metformin as first-line therapy. "
    "Clinicians must check renal function before starting. Avoid metformin when eGFR is low."
)
ZERO_USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
NOT_FOUND = "Job not found."


def _rfc3339_utc(value: str) -> datetime:
    assert value.endswith(("Z", "+00:00")), value
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert parsed.utcoffset() == UTC.utcoffset(None)
    return parsed


async def submit(client: Client, headers: Headers, text: str = GUIDELINE, **extra: Any) -> dict:
    response = await client.post("/jobs", json={"input_text": text, **extra}, headers=headers)
    assert response.status_code == 202, response.text
    return response.json()


def _wait_idle(runs: CountedRuns, timeout: float = 10.0) -> None:
    """Until the in-process dispatcher runs no job."""
    deadline = time.monotonic() + timeout
    while runs.running:
        assert time.monotonic() < deadline, "the dispatcher never went idle"
        time.sleep(0.02)


def _hold(client: Client, fake_llm: FakeLLM, step: str) -> None:
    in_app(client, fake_llm.hold, step)


def _release(client: Client, fake_llm: FakeLLM, step: str) -> None:
    in_app(client, fake_llm.release, step)


def _processing_at(step: str) -> Callable[[dict[str, Any]], bool]:
    return lambda job: job["status"] == "processing" and job["step"] == step


# -- submit, get, complete ---------------------------------------------------------------


async def test_submit_answers_202_with_location_and_the_whole_pending_job(
    client: Client, alice: Headers
) -> None:
    metadata = {"source": "NICE NG28", "ward": "7"}
    response = await client.post(
        "/jobs",
        json={
            "input_text": GUIDELINE,
            "metadata": metadata,
            "callback_url": "https://example.org/hook",
        },
        headers=alice,
    )

    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/jobs/{job['event_id']}"
    assert set(job) == JOB_FIELDS | {"input_text"}
    assert job["status"] == "pending"
    assert job["input_text"] == GUIDELINE
    assert job["metadata"] == metadata
    assert job["usage"] == ZERO_USAGE
    assert job["attempts"] == 0
    for unknown in ("step", "summary", "checklist", "result", "error"):
        assert job[unknown] is None, unknown
    assert job["started_at"] is None
    assert job["finished_at"] is None
    _rfc3339_utc(job["created_at"])


async def test_job_completes_with_the_llm_outputs_and_usage(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    fake_llm.summary = "Offer metformin first; check renal function."
    fake_llm.checklist = ("Check eGFR before metformin.", "Offer metformin first-line.")
    job = await submit(client, alice, metadata={"k": "v"})

    done = await wait_for(client, job["event_id"], alice, is_terminal)

    assert done["status"] == "completed", done
    assert set(done) == JOB_FIELDS | {"input_text"}
    assert done["input_text"] == GUIDELINE
    assert done["step"] is None
    assert done["error"] is None
    assert done["summary"] == fake_llm.summary
    assert done["checklist"] == list(fake_llm.checklist)
    assert done["result"] == {"summary": fake_llm.summary, "checklist": list(fake_llm.checklist)}
    assert done["usage"] == {
        "prompt_tokens": 2 * DEFAULT_USAGE.prompt_tokens,
        "completion_tokens": 2 * DEFAULT_USAGE.completion_tokens,
        "total_tokens": 2 * DEFAULT_USAGE.total_tokens,
    }
    assert done["attempts"] == 1
    assert done["metadata"] == {"k": "v"}
    created = _rfc3339_utc(done["created_at"])
    started = _rfc3339_utc(done["started_at"])
    finished = _rfc3339_utc(done["finished_at"])
    assert created <= started <= finished
    # The checklist is written from the summary.
    assert fake_llm.calls_of("checklist") == [("checklist", fake_llm.summary, GUIDELINE)]


async def test_summary_is_visible_while_the_checklist_step_runs(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    _hold(client, fake_llm, "checklist")
    job = await submit(client, alice)

    seen = await wait_for(client, job["event_id"], alice, _processing_at("checklist"))

    assert seen["summary"] is not None
    assert seen["checklist"] is None
    assert seen["result"] is None
    _release(client, fake_llm, "checklist")
    done = await wait_for(client, job["event_id"], alice, is_terminal)
    assert done["status"] == "completed"


# -- list --------------------------------------------------------------------------------


async def test_list_is_newest_first_without_input_text_and_pages_cover_every_job_once(
    client: Client, alice: Headers, bob: Headers
) -> None:
    ids = [(await submit(client, alice, f"Guideline number {i}."))["event_id"] for i in range(25)]
    await submit(client, bob, "Bob's own guideline.")

    first = await client.get("/jobs", headers=alice)
    assert first.status_code == 200, first.text
    body = first.json()
    assert set(body) == {"items", "next_cursor"}
    assert len(body["items"]) == 20  # the default limit
    assert body["next_cursor"] is not None
    for item in body["items"]:
        assert set(item) == JOB_FIELDS  # no input_text in lists

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 7}
        if cursor is not None:
            params["cursor"] = cursor
        response = await client.get("/jobs", params=params, headers=alice)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= 7
        seen += [item["event_id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        assert pages < 10, "paging never ends"

    assert seen == list(reversed(ids))  # newest first, each exactly once, only alice's
    assert pages == 4


async def test_list_filters_by_status_repeatable(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    completed = await submit(client, alice, "First guideline, it completes.")
    await wait_for(client, completed["event_id"], alice, lambda j: j["status"] == "completed")
    _hold(client, fake_llm, "summarize")
    processing = await submit(client, alice, "Second guideline, it is held.")
    await wait_for(client, processing["event_id"], alice, _processing_at("summarize"))
    cancelled = await submit(client, alice, "Third guideline, it is cancelled.")
    assert (
        await client.post(f"/jobs/{cancelled['event_id']}/cancel", headers=alice)
    ).status_code == 200

    async def listed(*statuses: str) -> set[str]:
        response = await client.get(
            "/jobs", params=[("status", s) for s in statuses], headers=alice
        )
        assert response.status_code == 200, response.text
        items = response.json()["items"]
        assert all(item["status"] in statuses for item in items), items
        return {item["event_id"] for item in items}

    assert await listed("completed") == {completed["event_id"]}
    assert await listed("processing") == {processing["event_id"]}
    assert await listed("cancelled") == {cancelled["event_id"]}
    assert await listed("completed", "cancelled") == {
        completed["event_id"],
        cancelled["event_id"],
    }
    assert await listed("failed") == set()

    assert_problem(await client.get("/jobs?status=done", headers=alice), 422)


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "limit=-1", "limit=ten"])
async def test_list_rejects_a_bad_limit(client: Client, alice: Headers, query: str) -> None:
    assert_problem(await client.get(f"/jobs?{query}", headers=alice), 422)


@pytest.mark.parametrize("cursor", ["garbage", "eyJ4IjoxfQ", "%00%01", "a" * 300])
async def test_list_rejects_a_bad_cursor(client: Client, alice: Headers, cursor: str) -> None:
    await submit(client, alice)
    assert_problem(await client.get(f"/jobs?cursor={cursor}", headers=alice), 422)


async def test_list_accepts_the_limit_bounds(client: Client, alice: Headers) -> None:
    await submit(client, alice)
    await submit(client, alice)

    one = await client.get("/jobs?limit=1", headers=alice)
    hundred = await client.get("/jobs?limit=100", headers=alice)

    assert one.status_code == 200
    assert len(one.json()["items"]) == 1
    assert one.json()["next_cursor"] is not None
    assert hundred.status_code == 200
    assert len(hundred.json()["items"]) == 2
    assert hundred.json()["next_cursor"] is None


# -- cancel ------------------------------------------------------------------------------


async def test_cancel_a_pending_job(
    client: Client, alice: Headers, fake_llm: FakeLLM, settings: Settings
) -> None:
    # Every runner busy on a held job, so the next job stays pending.
    _hold(client, fake_llm, "summarize")
    busy = [await submit(client, alice, f"Busy {i}.") for i in range(settings.worker_concurrency)]
    for job in busy:
        await wait_for(client, job["event_id"], alice, _processing_at("summarize"))
    waiting = await submit(client, alice, "This one waits.")
    assert (await client.get(f"/jobs/{waiting['event_id']}", headers=alice)).json()[
        "status"
    ] == "pending"

    response = await client.post(f"/jobs/{waiting['event_id']}/cancel", headers=alice)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert set(response.json()) >= JOB_FIELDS
    _release(client, fake_llm, "summarize")
    for job in busy:
        await wait_for(client, job["event_id"], alice, lambda j: j["status"] == "completed")
    after = (await client.get(f"/jobs/{waiting['event_id']}", headers=alice)).json()
    assert after["status"] == "cancelled"
    assert after["summary"] is None
    assert after["started_at"] is None


async def test_a_job_cancelled_mid_step_stays_cancelled_after_the_step_returns(
    client: Client, alice: Headers, fake_llm: FakeLLM, runs: CountedRuns
) -> None:
    _hold(client, fake_llm, "summarize")
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, _processing_at("summarize"))

    response = await client.post(f"/jobs/{job['event_id']}/cancel", headers=alice)

    assert response.status_code == 200, response.text
    assert response.json()["status"] == "cancelled"
    assert response.json()["step"] is None
    _release(client, fake_llm, "summarize")
    _wait_idle(runs)
    after = (await client.get(f"/jobs/{job['event_id']}", headers=alice)).json()
    assert after["status"] == "cancelled"
    assert after["checklist"] is None
    assert after["result"] is None
    assert fake_llm.calls_of("checklist") == []


async def test_cancel_a_finished_job_is_a_conflict(client: Client, alice: Headers) -> None:
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, lambda j: j["status"] == "completed")

    assert_problem(await client.post(f"/jobs/{job['event_id']}/cancel", headers=alice), 409)
    after = (await client.get(f"/jobs/{job['event_id']}", headers=alice)).json()
    assert after["status"] == "completed"


async def test_cancel_twice_is_a_conflict(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    _hold(client, fake_llm, "summarize")
    job = await submit(client, alice)
    first = await client.post(f"/jobs/{job['event_id']}/cancel", headers=alice)
    assert first.status_code == 200

    assert_problem(await client.post(f"/jobs/{job['event_id']}/cancel", headers=alice), 409)


# -- retry -------------------------------------------------------------------------------


async def test_retry_a_job_that_failed_at_the_checklist_keeps_its_summary(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    fake_llm.fail_next(
        "checklist", PermanentLLMError(ErrorCode.LLM_REJECTED, "The model refused."), times=1
    )
    job = await submit(client, alice)
    failed = await wait_for(client, job["event_id"], alice, is_terminal)
    assert failed["status"] == "failed", failed
    assert failed["error"] is not None
    assert failed["error"]["code"] == "llm_rejected"
    assert isinstance(failed["error"]["message"], str)
    assert failed["summary"] is not None
    assert failed["checklist"] is None
    assert failed["result"] is None

    response = await client.post(f"/jobs/{job['event_id']}/retry", headers=alice)

    assert response.status_code == 202, response.text
    assert response.headers["location"] == f"/jobs/{job['event_id']}"
    retried = response.json()
    assert retried["status"] == "pending"
    assert retried["error"] is None
    assert retried["summary"] == failed["summary"]
    done = await wait_for(client, job["event_id"], alice, is_terminal)
    assert done["status"] == "completed", done
    assert done["summary"] == failed["summary"]
    assert done["checklist"]
    assert done["result"] == {"summary": done["summary"], "checklist": done["checklist"]}
    assert done["error"] is None
    assert done["attempts"] == 2
    assert len(fake_llm.calls_of("summarize")) == 1  # the finished step is not paid twice
    assert len(fake_llm.calls_of("checklist")) == 2


async def test_retry_a_cancelled_job(client: Client, alice: Headers, fake_llm: FakeLLM) -> None:
    _hold(client, fake_llm, "summarize")
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, _processing_at("summarize"))
    assert (await client.post(f"/jobs/{job['event_id']}/cancel", headers=alice)).status_code == 200
    _release(client, fake_llm, "summarize")

    response = await client.post(f"/jobs/{job['event_id']}/retry", headers=alice)

    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    done = await wait_for(client, job["event_id"], alice, is_terminal)
    assert done["status"] == "completed", done


async def test_retry_a_completed_or_running_job_is_a_conflict(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, lambda j: j["status"] == "completed")
    assert_problem(await client.post(f"/jobs/{job['event_id']}/retry", headers=alice), 409)

    _hold(client, fake_llm, "summarize")
    running = await submit(client, alice)
    await wait_for(client, running["event_id"], alice, _processing_at("summarize"))
    assert_problem(await client.post(f"/jobs/{running['event_id']}/retry", headers=alice), 409)


# -- delete ------------------------------------------------------------------------------


async def test_delete_erases_the_job(client: Client, alice: Headers) -> None:
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, is_terminal)

    response = await client.delete(f"/jobs/{job['event_id']}", headers=alice)

    assert response.status_code == 204
    assert response.content == b""
    assert_problem(await client.get(f"/jobs/{job['event_id']}", headers=alice), 404)
    listed = (await client.get("/jobs", headers=alice)).json()["items"]
    assert job["event_id"] not in {item["event_id"] for item in listed}
    assert_problem(await client.delete(f"/jobs/{job['event_id']}", headers=alice), 404)


async def test_delete_a_processing_job(
    client: Client, alice: Headers, fake_llm: FakeLLM, runs: CountedRuns
) -> None:
    _hold(client, fake_llm, "summarize")
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, _processing_at("summarize"))

    assert (await client.delete(f"/jobs/{job['event_id']}", headers=alice)).status_code == 204

    _release(client, fake_llm, "summarize")
    _wait_idle(runs)
    assert_problem(await client.get(f"/jobs/{job['event_id']}", headers=alice), 404)


# -- 404 on every /jobs/{event_id} route --------------------------------------------------

ID_ROUTES = [
    ("GET", "/jobs/{id}"),
    ("POST", "/jobs/{id}/cancel"),
    ("POST", "/jobs/{id}/retry"),
    ("DELETE", "/jobs/{id}"),
]


@pytest.mark.parametrize(("method", "template"), ID_ROUTES)
async def test_every_job_route_answers_404_alike(
    client: Client, alice: Headers, bob: Headers, method: str, template: str
) -> None:
    alices = await submit(client, alice)
    await wait_for(client, alices["event_id"], alice, is_terminal)
    for event_id, headers in [
        (str(uuid4()), alice),  # unknown
        ("not-a-uuid", alice),  # malformed
        ("12345", alice),
        (alices["event_id"].upper().replace("-", ""), bob),  # another owner's (other spelling)
        (alices["event_id"], bob),  # another owner's
    ]:
        response = await client.request(method, template.replace("{id}", event_id), headers=headers)
        body = assert_problem(response, 404)
        assert body["detail"] == NOT_FOUND, (event_id, body)

    # bob's attempts changed nothing
    after = await client.get(f"/jobs/{alices['event_id']}", headers=alice)
    assert after.status_code == 200
    assert after.json()["status"] == "completed"


# -- request validation ------------------------------------------------------------------


async def test_unparsable_json_is_400(client: Client, alice: Headers) -> None:
    for body in (b'{"input_text": ', b"{'input_text': 'x'}", b'{"input_text": "x",}'):
        response = await client.post(
            "/jobs", content=body, headers={**alice, "Content-Type": "application/json"}
        )
        assert_problem(response, 400)


RULE_BROKEN: list[tuple[str, Any]] = [
    ("empty text", {"input_text": ""}),
    ("whitespace-only text", {"input_text": " \t\n\u00a0\u2003 "}),
    ("text too long", {"input_text": "a" * 200_001}),
    ("NUL in text", {"input_text": "before\x00after"}),
    ("17 metadata keys", {"input_text": "x", "metadata": {f"k{i}": "v" for i in range(17)}}),
    ("65-char metadata key", {"input_text": "x", "metadata": {"k" * 65: "v"}}),
    ("513-char metadata value", {"input_text": "x", "metadata": {"k": "v" * 513}}),
    ("non-string metadata value", {"input_text": "x", "metadata": {"k": 1}}),
    ("nested metadata value", {"input_text": "x", "metadata": {"k": {"a": "b"}}}),
    ("metadata not an object", {"input_text": "x", "metadata": ["k", "v"]}),
    ("ftp callback", {"input_text": "x", "callback_url": "ftp://example.org/hook"}),
    ("callback not a URL", {"input_text": "x", "callback_url": "not a url"}),
    ("callback with no host", {"input_text": "x", "callback_url": "https://"}),
    ("callback with NUL", {"input_text": "x", "callback_url": "https://a.test/\u0000"}),
    ("plain http callback", {"input_text": "x", "callback_url": "http://a.test/hook"}),
    ("unknown field", {"input_text": "x", "priority": "high"}),
    ("wrong type", {"input_text": 42}),
    ("null text", {"input_text": None}),
    ("missing field", {}),
    ("missing text", {"metadata": {"k": "v"}}),
    ("array body", [{"input_text": "x"}]),
    ("string body", "just a string"),
]


@pytest.mark.parametrize(("case", "body"), RULE_BROKEN, ids=[c for c, _ in RULE_BROKEN])
async def test_a_broken_rule_is_422_naming_the_fields(
    client: Client, alice: Headers, case: str, body: Any
) -> None:
    response = await client.post("/jobs", json=body, headers=alice)

    problem = assert_problem(response, 422)
    assert isinstance(problem.get("errors"), list), problem
    assert problem["errors"], problem
    listed = (await client.get("/jobs", headers=alice)).json()["items"]
    assert listed == [], f"{case}: a job was made"


@pytest.mark.parametrize(
    "escaped",
    [b"abc \\ud800 def", b"\\ud800", b"\\ud800b", b"a\\udc00", b"\\ud800\\u0041"],
)
async def test_a_lone_surrogate_is_422(client: Client, alice: Headers, escaped: bytes) -> None:
    # msgspec words its refusal differently for each of these; the answer is the same.
    response = await client.post(
        "/jobs",
        content=b'{"input_text":"' + escaped + b'"}',
        headers={**alice, "Content-Type": "application/json"},
    )

    problem = assert_problem(response, 422)
    assert problem.get("errors"), problem


async def test_text_of_exactly_200000_emoji_in_escapes_is_accepted_and_returned_exactly(
    client: Client, alice: Headers
) -> None:
    text = "\U0001f600" * 200_000
    body = json.dumps({"input_text": text}, ensure_ascii=True).encode()
    assert b"\\ud83d\\ude00" in body
    assert 2_000_000 < len(body) <= 4 * 1024 * 1024

    response = await client.post(
        "/jobs", content=body, headers={**alice, "Content-Type": "application/json"}
    )

    assert response.status_code == 202, response.text[:500]
    fetched = (await client.get(f"/jobs/{response.json()['event_id']}", headers=alice)).json()
    assert fetched["input_text"] == text
    assert len(fetched["input_text"]) == 200_000


async def test_a_body_over_4_mib_is_413(client: Client, alice: Headers) -> None:
    body = b'{"input_text": "' + b"a" * (4 * 1024 * 1024) + b'"}'

    response = await client.post(
        "/jobs", content=body, headers={**alice, "Content-Type": "application/json"}
    )

    assert_problem(response, 413)


# -- authentication ----------------------------------------------------------------------


def _all_job_routes(event_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        ("POST", "/jobs", {"json": {"input_text": GUIDELINE}}),
        ("GET", "/jobs", {}),
        ("GET", f"/jobs/{event_id}", {}),
        ("POST", f"/jobs/{event_id}/cancel", {}),
        ("POST", f"/jobs/{event_id}/retry", {}),
        ("DELETE", f"/jobs/{event_id}", {}),
    ]


BAD_CREDENTIALS: list[tuple[str, Headers]] = [
    ("no key", {}),
    ("wrong key", {"Authorization": "Bearer gi_0123456789abcdef_notthesecret"}),
    ("garbage bearer", {"Authorization": "Bearer nonsense"}),
    ("empty bearer", {"Authorization": "Bearer "}),
    ("basic scheme", {"Authorization": "Basic YWxpY2U6c2VjcmV0"}),
    ("no scheme", {"Authorization": "gi_0123456789abcdef_secret"}),
    ("wrong x-api-key", {"X-API-Key": "gi_0123456789abcdef_nope"}),
    ("huge key", {"Authorization": "Bearer " + "x" * 10_000}),
]


@pytest.mark.parametrize(("case", "headers"), BAD_CREDENTIALS, ids=[c for c, _ in BAD_CREDENTIALS])
async def test_every_jobs_route_needs_a_valid_key(
    client: Client, alice: Headers, case: str, headers: Headers
) -> None:
    job = await submit(client, alice)
    for method, path, kwargs in _all_job_routes(job["event_id"]):
        response = await client.request(method, path, headers=headers, **kwargs)
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer"), (case, method, path)
    # nothing changed
    after = await client.get(f"/jobs/{job['event_id']}", headers=alice)
    assert after.status_code == 200
    assert len((await client.get("/jobs", headers=alice)).json()["items"]) == 1


@pytest.mark.parametrize("body", [b"{", b"[[[[", b'{"input_text": ""}', b"\xff\xfe"])
async def test_no_key_is_401_even_for_a_body_that_does_not_parse(
    client: Client, body: bytes
) -> None:
    for headers in ({}, {"Authorization": "Bearer gi_0123456789abcdef_nope"}):
        response = await client.post(
            "/jobs", content=body, headers={**headers, "Content-Type": "application/json"}
        )
        assert_problem(response, 401)
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_the_real_key_of_another_scheme_is_refused(client: Client, alice_key: str) -> None:
    response = await client.get("/jobs", headers={"Authorization": f"Basic {alice_key}"})
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


async def test_x_api_key_header_works(client: Client, alice_key: str, alice: Headers) -> None:
    response = await client.post(
        "/jobs", json={"input_text": GUIDELINE}, headers={"X-API-Key": alice_key}
    )

    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    got = await client.get(f"/jobs/{event_id}", headers={"X-API-Key": alice_key})
    assert got.status_code == 200
    assert (await client.get(f"/jobs/{event_id}", headers=alice)).status_code == 200


async def test_a_revoked_key_is_401(client: Client, container: Container) -> None:
    issued = in_app(client, container.create_api_key().execute, "carol")
    headers = bearer(issued.token)
    assert (await client.get("/jobs", headers=headers)).status_code == 200

    assert in_app(client, container.revoke_api_key().execute, issued.record.key_id) is True

    response = await client.get("/jobs", headers=headers)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_problem(await client.get("/jobs", headers={"X-API-Key": issued.token}), 401)


async def test_owners_see_only_their_own_jobs(client: Client, alice: Headers, bob: Headers) -> None:
    await submit(client, alice, "Alice's guideline.")

    listed = await client.get("/jobs", headers=bob)

    assert listed.status_code == 200
    assert listed.json() == {"items": [], "next_cursor": None}


# -- idempotency -------------------------------------------------------------------------


async def test_idempotency_key_replays_the_same_job(client: Client, alice: Headers) -> None:
    headers = {**alice, "Idempotency-Key": "order-42"}
    body = {"input_text": GUIDELINE, "metadata": {"a": "1", "b": "2"}}
    first = await client.post("/jobs", json=body, headers=headers)
    assert first.status_code == 202, first.text

    again = await client.post("/jobs", json=body, headers=headers)
    # equal as parsed JSON: other key order and spacing
    reordered = json.dumps({"metadata": {"b": "2", "a": "1"}, "input_text": GUIDELINE}, indent=2)
    third = await client.post(
        "/jobs",
        content=reordered.encode(),
        headers={**headers, "Content-Type": "application/json"},
    )

    for replay in (again, third):
        assert replay.status_code == 200, replay.text
        assert replay.json()["event_id"] == first.json()["event_id"]
        assert replay.headers["location"] == f"/jobs/{first.json()['event_id']}"
        assert set(replay.json()) == JOB_FIELDS | {"input_text"}
    assert len((await client.get("/jobs", headers=alice)).json()["items"]) == 1


async def test_idempotency_key_with_another_body_is_422(client: Client, alice: Headers) -> None:
    headers = {**alice, "Idempotency-Key": "order-43"}
    first = await client.post("/jobs", json={"input_text": GUIDELINE}, headers=headers)
    assert first.status_code == 202

    response = await client.post("/jobs", json={"input_text": "Another text."}, headers=headers)

    assert_problem(response, 422)
    assert len((await client.get("/jobs", headers=alice)).json()["items"]) == 1


async def test_idempotency_keys_are_per_owner(client: Client, alice: Headers, bob: Headers) -> None:
    body = {"input_text": GUIDELINE}
    alices = await client.post("/jobs", json=body, headers={**alice, "Idempotency-Key": "k-1"})
    bobs = await client.post("/jobs", json=body, headers={**bob, "Idempotency-Key": "k-1"})

    assert alices.status_code == 202
    assert bobs.status_code == 202, bobs.text
    assert bobs.json()["event_id"] != alices.json()["event_id"]
    assert (await client.get(f"/jobs/{bobs.json()['event_id']}", headers=bob)).status_code == 200
    assert_problem(await client.get(f"/jobs/{bobs.json()['event_id']}", headers=alice), 404)


@pytest.mark.parametrize("key", ["", "x" * 256, "caf\u00e9", "tab\there"])
async def test_a_bad_idempotency_key_is_refused_without_a_5xx(
    client: Client, alice: Headers, key: str
) -> None:
    headers = [(name.encode(), value.encode()) for name, value in alice.items()]
    response = await client.post(
        "/jobs",
        json={"input_text": GUIDELINE},
        headers=[*headers, (b"Idempotency-Key", key.encode("utf-8"))],
    )
    assert_problem(response, 422)


# -- errors outside /jobs ----------------------------------------------------------------


async def test_unknown_route_is_a_404_problem(client: Client, alice: Headers) -> None:
    for path in ("/nope", "/jobs/a/b/c", "/health"):
        assert_problem(await client.get(path, headers=alice), 404)


async def test_wrong_method_is_a_405_problem(client: Client, alice: Headers) -> None:
    job = await submit(client, alice)
    for method, path in [
        ("PUT", "/jobs"),
        ("DELETE", "/jobs"),
        ("PATCH", f"/jobs/{job['event_id']}"),
        ("GET", f"/jobs/{job['event_id']}/cancel"),
        ("DELETE", f"/jobs/{job['event_id']}/retry"),
        ("POST", "/health/live"),
    ]:
        assert_problem(await client.request(method, path, headers=alice), 405)


# -- health, metrics, OpenAPI ------------------------------------------------------------


async def test_health_endpoints_need_no_key(client: Client) -> None:
    live = await client.get("/health/live")
    ready = await client.get("/health/ready")

    assert live.status_code == 200
    assert live.json()["status"] == "ok"
    assert ready.status_code == 200, ready.text
    assert ready.json()["status"] == "ok"
    assert ready.json()["checks"]["database"] == "ok"


async def test_metrics_count_jobs_and_requests(client: Client, alice: Headers) -> None:
    job = await submit(client, alice)
    await wait_for(client, job["event_id"], alice, is_terminal)
    await client.get("/nope")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "guideline_jobs_total" in text
    assert 'status="completed"' in text
    assert "guideline_http_requests_total" in text
    assert 'method="POST"' in text


def _sample(text: str, family: str, status: str) -> float:
    prefix = f'{family}{{status="{status}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, (prefix, lines)
    return float(lines[0].removeprefix(prefix))


async def test_status_counters_come_from_every_move_and_the_gauge_from_the_database(
    client: Client, alice: Headers, fake_llm: FakeLLM
) -> None:
    done = await submit(client, alice)
    await wait_for(client, done["event_id"], alice, lambda j: j["status"] == "completed")
    _hold(client, fake_llm, "summarize")
    held = await submit(client, alice)
    await wait_for(client, held["event_id"], alice, _processing_at("summarize"))
    assert (await client.post(f"/jobs/{held['event_id']}/cancel", headers=alice)).is_success

    text = (await client.get("/metrics")).text

    # Counters: jobs reaching each status, derived from the domain events.
    assert _sample(text, "guideline_jobs_total", "pending") == 2  # both submits
    assert _sample(text, "guideline_jobs_total", "processing") == 2
    assert _sample(text, "guideline_jobs_total", "completed") == 1
    assert _sample(text, "guideline_jobs_total", "cancelled") == 1
    # Gauge: jobs in each status now, read from the database.
    assert _sample(text, "guideline_jobs", "completed") == 1
    assert _sample(text, "guideline_jobs", "cancelled") == 1
    assert _sample(text, "guideline_jobs", "pending") == 0


async def test_an_empty_body_is_a_400_that_says_so(client: Client, alice: Headers) -> None:
    response = await client.post(
        "/jobs", content=b"", headers={**alice, "Content-Type": "application/json"}
    )
    problem = assert_problem(response, 400)
    assert "empty" in problem["detail"]


async def test_the_openapi_document_is_served_once_at_openapi_json(client: Client) -> None:
    document = await client.get("/openapi.json")
    assert document.status_code == 200
    assert document.headers["content-type"].startswith("application/json")
    for uncorrected in ("/schema", "/schema/openapi.json", "/openapi.json/openapi.json"):
        assert (await client.get(uncorrected)).status_code == 404, uncorrected


async def test_openapi_document_describes_every_jobs_operation(client: Client) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]

    expected = {
        ("/jobs", "post"): {"401", "422"},
        ("/jobs", "get"): {"401", "422"},
        ("/jobs/{event_id}", "get"): {"401", "404"},
        ("/jobs/{event_id}", "delete"): {"401", "404"},
        ("/jobs/{event_id}/cancel", "post"): {"401", "404", "409"},
        ("/jobs/{event_id}/retry", "post"): {"401", "404", "409"},
    }
    operation_ids = set()
    for (path, method), codes in expected.items():
        assert path in paths, sorted(paths)
        operation = paths[path][method]
        assert operation.get("operationId"), (path, method)
        operation_ids.add(operation["operationId"])
        assert codes <= set(operation["responses"]), (path, method, operation["responses"])
    assert len(operation_ids) == len(expected)
    assert "413" in paths["/jobs"]["post"]["responses"]
    assert "202" in paths["/jobs"]["post"]["responses"]

    body = paths["/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    request_schema = _resolve(document, body)
    input_text = request_schema["properties"]["input_text"]
    assert input_text["maxLength"] == 200_000
    assert input_text.get("minLength") == 1
    assert input_text.get("pattern")
    assert "input_text" in request_schema.get("required", [])


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = document
        for part in schema["$ref"].removeprefix("#/").split("/"):
            node = node[part]
        schema = node
    return schema


# -- a malformed request never yields a 5xx ----------------------------------------------


def _post(body: bytes, content_type: str = "application/json") -> tuple[str, str, dict[str, Any]]:
    return ("POST", "/jobs", {"content": body, "headers": {"Content-Type": content_type}})


def _malformed_requests(event_id: str) -> list[tuple[str, str, dict[str, Any]]]:
    rng = random.Random(20261128)
    deep = "[" * 10_000 + "]" * 10_000
    cases = [_post(rng.randbytes(size)) for size in (1, 7, 64, 1024, 65_536)]
    cases += [
        _post(deep.encode()),
        _post(b'{"input_text": ' + deep.encode() + b"}"),
        _post(('{"a":' * 10_000 + "1" + "}" * 10_000).encode()),
        _post(b'{"input_text": 1e99999999}'),
        _post(b'{"input_text": ' + b"9" * 100_000 + b"}"),
        _post(b'{"input_text": "x", "metadata": {"k": 1e400}}'),
        _post(b"\xff\xfe\x00{"),
        _post(b'{"input_text": "\xc3\x28"}'),  # not UTF-8
        _post(b""),
        _post(b"null"),
        _post(b"input_text=hello", "application/x-www-form-urlencoded"),
        _post(b"hello", "text/plain"),
        _post(b"<job><input_text>x</input_text></job>", "application/xml"),
        _post(b"--b\r\n\r\nx\r\n--b--", "multipart/form-data; boundary=b"),
        _post(b'{"input_text": "x"}', "application/json; charset=utf-16"),
        _post(b'{"input_text": "x"}', "application/octet-stream"),
        ("POST", "/jobs", {"json": {"input_text": "x"}, "headers": {"Idempotency-Key": "\x7f"}}),
        ("GET", "/jobs?limit=99999999999999999999999", {}),
        ("GET", "/jobs?limit=1e3", {}),
        ("GET", "/jobs?cursor=" + "%FF" * 50, {}),
        ("GET", "/jobs?status=", {}),
        ("GET", "/jobs?status=pending&status=%00", {}),
        ("GET", "/jobs/" + "a" * 5000, {}),
        ("GET", "/jobs/%00", {}),
        ("GET", f"/jobs/{event_id}%00", {}),
        ("POST", f"/jobs/{event_id}/cancel", {"content": rng.randbytes(100)}),
        ("POST", f"/jobs/{event_id}/retry", {"content": b"[[[["}),
    ]
    return cases


async def test_malformed_requests_never_yield_a_5xx(client: Client, alice: Headers) -> None:
    job = await submit(client, alice)
    cases = _malformed_requests(job["event_id"])
    assert len(cases) >= 30

    for method, path, kwargs in cases:
        headers = {**alice, **kwargs.pop("headers", {})}
        response = await client.request(method, path, headers=headers, **kwargs)
        assert response.status_code < 500, (method, path[:80], response.status_code, response.text)
        if response.status_code >= 400:
            assert_problem(response, response.status_code)

    assert (await client.get("/health/live")).status_code == 200
