"""Hostile bodies: wrong content types and duplicate JSON keys get a clear 4xx, no job."""

from __future__ import annotations

import pytest
from http_support import Client, assert_problem


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
