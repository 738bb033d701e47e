"""What the service accepts as a callback_url, by its settings."""

from __future__ import annotations

import base64
import dataclasses

import pytest
from http_support import Client, assert_problem

from entrypoints.settings import Settings

Headers = dict[str, str]


async def test_without_a_signing_secret_a_callback_url_is_refused_naming_the_setting(
    client: Client, alice: Headers
) -> None:
    response = await client.post(
        "/jobs",
        json={"input_text": "Wash hands.", "callback_url": "https://hooks.example/h"},
        headers=alice,
    )
    problem = assert_problem(response, 422)
    assert "WEBHOOK_SIGNING_SECRET" in problem["errors"][0]["message"]
    listed = (await client.get("/jobs", headers=alice)).json()
    assert listed["items"] == []  # nothing was stored


class TestWithASecret:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        secret = "whsec_" + base64.b64encode(b"r" * 32).decode()
        return dataclasses.replace(settings, webhook_signing_secret=secret)

    @pytest.mark.parametrize(
        "url",
        [
            "https://127.0.0.1:9/h",
            "https://169.254.169.254/latest/meta-data",
            "https://10.0.0.1/h",
            "https://0.0.0.0/h",
        ],
    )
    async def test_a_literal_refused_address_is_422(
        self, client: Client, alice: Headers, url: str
    ) -> None:
        response = await client.post(
            "/jobs", json={"input_text": "T.", "callback_url": url}, headers=alice
        )
        problem = assert_problem(response, 422)
        assert problem["errors"][0]["key"] == "callback_url"
        assert "refused" in problem["errors"][0]["message"]

    async def test_http_is_refused_unless_allowed(self, client: Client, alice: Headers) -> None:
        response = await client.post(
            "/jobs",
            json={"input_text": "T.", "callback_url": "http://hooks.example/h"},
            headers=alice,
        )
        assert_problem(response, 422)

    async def test_a_named_https_host_is_accepted(self, client: Client, alice: Headers) -> None:
        response = await client.post(
            "/jobs",
            json={"input_text": "T.", "callback_url": "https://hooks.example/h"},
            headers=alice,
        )
        assert response.status_code == 202, response.text
