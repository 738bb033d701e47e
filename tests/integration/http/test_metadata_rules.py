"""Metadata keys and values with NUL or other control characters are refused with 422.

And the OpenAPI document says so (Schemathesis holds the API to the document).
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from http_support import Client, assert_problem

Headers = dict[str, str]

CONTROL = ["\x00", "\x01", "\t", "\n", "\r", "\x1b", "\x1f", "\x7f", "\x85", "\x9f"]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
@pytest.mark.parametrize("where", ["key", "value"])
async def test_a_control_character_in_metadata_is_422(
    client: Client, alice: Headers, char: str, where: str
) -> None:
    metadata = {f"wa{char}rd": "7"} if where == "key" else {"ward": f"7{char}b"}
    response = await client.post(
        "/jobs", json={"input_text": "Check renal function.", "metadata": metadata}, headers=alice
    )

    problem = assert_problem(response, 422)
    assert problem["errors"], problem
    assert "metadata" in str(problem["errors"])
    assert (await client.get("/jobs", headers=alice)).json()["items"] == []


async def test_printable_metadata_from_any_script_is_kept(client: Client, alice: Headers) -> None:
    metadata = {"source": "NICE NG28 \u2013 2026", "病房": "七", "note": "", "emoji": "🩺 ok"}
    response = await client.post(
        "/jobs", json={"input_text": "Check renal function.", "metadata": metadata}, headers=alice
    )
    assert response.status_code == 202, response.text
    job = (await client.get(f"/jobs/{response.json()['event_id']}", headers=alice)).json()
    assert job["metadata"] == metadata


async def test_the_openapi_document_states_the_rule(client: Client) -> None:
    document: dict[str, Any] = (await client.get("/openapi.json")).json()
    schema = document["components"]["schemas"]
    request = next(v for k, v in schema.items() if k.startswith("SubmitJobRequest"))
    metadata = request["properties"]["metadata"]
    for part in (metadata["propertyNames"], metadata["additionalProperties"]):
        pattern = re.compile(part["pattern"])
        assert pattern.search("ward 7 \u2013 病房")
        assert all(pattern.search(f"a{c}b") is None for c in CONTROL)
