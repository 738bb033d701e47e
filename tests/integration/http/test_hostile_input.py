"""Hostile bodies: wrong content types and duplicate JSON keys get a clear 4xx, no job."""

from __future__ import annotations

import json

import pytest
from http_support import DIALECTS, Client, assert_problem
from test_jobs_api import RULE_BROKEN, _malformed_requests

# Every hostile body and every limit, on SQLite and on PostgreSQL.
pytestmark = pytest.mark.parametrize("database", DIALECTS, indirect=True)


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
)
async def test_a_body_not_sent_as_json_gets_415(
    client: Client, alice: dict[str, str], content_type: str | None
) -> None:
    headers = alice | ({"Content-Type": content_type} if content_type else {})
    response = await client.post("/jobs", content=b'{"input_text": "Hello."}', headers=headers)

    assert_problem(response, 415)
    assert (await client.get("/jobs", headers=alice)).json()["items"] == []


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/merge+json"]
)
async def test_json_media_types_are_accepted(
    client: Client, alice: dict[str, str], content_type: str
) -> None:
    response = await client.post(
        "/jobs", content=b'{"input_text": "Hello."}', headers=alice | {"Content-Type": content_type}
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    "body",
    [
        b'{"input_text": "A.", "input_text": "B."}',
        b'{"input_text": "A.", "metadata": {"k": "1", "k": "2"}}',
    ],
)
async def test_duplicate_keys_get_400(client: Client, alice: dict[str, str], body: bytes) -> None:
    response = await client.post(
        "/jobs", content=body, headers=alice | {"Content-Type": "application/json"}
    )

    problem = assert_problem(response, 400)
    assert "repeats a key" in problem["detail"]
    assert (await client.get("/jobs", headers=alice)).json()["items"] == []


async def test_every_hostile_request_of_the_api_suite_on_this_database(
    client: Client, alice: dict[str, str]
) -> None:
    """test_jobs_api.py's hostile cases, all in one app on each database (PostgreSQL, unlike
    SQLite, refuses NUL in text: it must never get that far): every broken rule is 422 and
    makes no job, no malformed request yields a 5xx, a lone surrogate is 422, 200,000
    emoji in escapes round-trip exactly, and a body over 4 MiB is 413."""
    for case, body in RULE_BROKEN:
        response = await client.post("/jobs", json=body, headers=alice)
        assert assert_problem(response, 422).get("errors"), case
    for escaped in (b"\\ud800", b"a\\udc00", b"\\ud800\\u0041"):
        response = await client.post(
            "/jobs",
            content=b'{"input_text":"' + escaped + b'"}',
            headers={**alice, "Content-Type": "application/json"},
        )
        assert_problem(response, 422)
    assert (await client.get("/jobs", headers=alice)).json()["items"] == []

    text = "\U0001f600" * 200_000
    body = json.dumps({"input_text": text}, ensure_ascii=True).encode()
    headers = {**alice, "Content-Type": "application/json"}
    accepted = await client.post("/jobs", content=body, headers=headers)
    assert accepted.status_code == 202, accepted.text[:500]
    event_id = accepted.json()["event_id"]
    fetched = (await client.get(f"/jobs/{event_id}", headers=alice)).json()
    assert fetched["input_text"] == text

    for method, path, kwargs in _malformed_requests(event_id):
        request_headers = {**alice, **kwargs.pop("headers", {})}
        response = await client.request(method, path, headers=request_headers, **kwargs)
        assert response.status_code < 500, (method, path[:80], response.text)

    too_big = b'{"input_text": "' + b"a" * (4 * 1024 * 1024) + b'"}'
    assert_problem(await client.post("/jobs", content=too_big, headers=headers), 413)
