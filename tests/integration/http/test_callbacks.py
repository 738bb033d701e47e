"""Callbacks end to end in embedded mode: the real app, a real HTTP receiver on 127.0.0.1.

The receiver verifies each delivery with the `standardwebhooks` library. The tests
allow http:// and private destinations (the receiver is on loopback).
"""

from __future__ import annotations

import base64
import dataclasses
import json
from typing import Any

import pytest
from http_support import Client, assert_problem, wait_for
from standardwebhooks import Webhook
from tests.support.fake_llm import FakeLLM
from tests.support.webhook_receiver import WebhookReceiver

from entrypoints.settings import Settings

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
Headers = dict[str, str]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return dataclasses.replace(
        settings,
        webhook_signing_secret=SECRET,
        callbacks_allow_http=True,
        callbacks_allow_private=True,
        callback_interval_s=0.1,
        webhook_backoff_base_s=0.1,
        webhook_timeout_s=1.0,
        webhook_max_attempts=4,
    )


async def submit(client: Client, headers: Headers, url: str, text: str = "Wash hands.") -> str:
    response = await client.post(
        "/jobs", json={"input_text": text, "callback_url": url}, headers=headers
    )
    assert response.status_code == 202, response.text
    assert response.json()["callback"] == {
        "status": "waiting", "attempts": 0, "last_status_code": None,
        "last_error": None, "next_attempt_at": None, "delivered_at": None,
    }  # fmt: skip
    return str(response.json()["event_id"])


def callback_is(status: str):  # type: ignore[no-untyped-def]
    def check(job: dict[str, Any]) -> bool:
        return job["callback"] is not None and job["callback"]["status"] == status

    return check


async def test_the_finished_job_is_posted_signed_and_verifies(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    event_id = await submit(client, alice, receiver.url)
    job = await wait_for(client, event_id, alice, callback_is("delivered"), timeout=15)

    (request,) = receiver.wait_for(1)
    payload = Webhook(SECRET).verify(request.body, request.headers)
    assert payload["type"] == "job.completed"
    assert payload["data"]["event_id"] == event_id
    assert payload["data"]["status"] == "completed"
    assert payload["data"]["summary"] == job["summary"]
    assert "input_text" not in payload["data"]
    assert request.headers["webhook-id"].startswith("msg_")
    assert job["callback"]["attempts"] == 1
    assert job["callback"]["last_status_code"] == 200
    assert job["callback"]["delivered_at"] is not None


async def test_500s_then_200_deliver_after_three_tries_with_one_webhook_id(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    receiver.script(500, 500, 200)
    event_id = await submit(client, alice, receiver.url)
    job = await wait_for(client, event_id, alice, callback_is("delivered"), timeout=20)

    requests = receiver.wait_for(3)
    assert len(requests) == 3
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    assert job["callback"]["attempts"] == 3
    assert job["status"] == "completed"  # a failing callback never changes the job


async def test_410_gone_is_one_try_then_failed(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    receiver.script(410)
    event_id = await submit(client, alice, receiver.url)
    job = await wait_for(client, event_id, alice, callback_is("failed"), timeout=15)
    assert job["callback"]["attempts"] == 1
    assert job["callback"]["last_status_code"] == 410
    assert len(receiver.requests) == 1


async def test_a_receiver_down_then_up_gets_it(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    receiver.stop()
    event_id = await submit(client, alice, receiver.url)
    await wait_for(
        client, event_id, alice, lambda j: (j["callback"] or {}).get("attempts", 0) >= 1, 15
    )
    receiver.start()  # the same port
    job = await wait_for(client, event_id, alice, callback_is("delivered"), timeout=20)
    assert job["callback"]["attempts"] >= 2
    assert len(receiver.requests) == 1


async def test_a_receiver_slower_than_the_timeout_is_tried_again(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    receiver.script((200, 3.0))  # the timeout is 1 s
    event_id = await submit(client, alice, receiver.url)
    job = await wait_for(client, event_id, alice, callback_is("delivered"), timeout=20)
    assert job["callback"]["attempts"] == 2
    first, second = receiver.wait_for(2)[:2]
    assert first.headers["webhook-id"] == second.headers["webhook-id"]


async def test_redeliver_sends_the_same_event_again(
    client: Client, alice: Headers, receiver: WebhookReceiver
) -> None:
    event_id = await submit(client, alice, receiver.url)
    await wait_for(client, event_id, alice, callback_is("delivered"), timeout=15)

    response = await client.post(f"/jobs/{event_id}/callback/redeliver", headers=alice)
    assert response.status_code == 202, response.text
    await wait_for(
        client,
        event_id,
        alice,
        lambda j: len(receiver.requests) == 2 and callback_is("delivered")(j),
        15,
    )
    first, second = receiver.requests
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    assert json.loads(first.body)["type"] == json.loads(second.body)["type"] == "job.completed"


async def test_redeliver_is_409_while_running_and_404_without_a_callback_url(
    client: Client, alice: Headers, bob: Headers, fake_llm: FakeLLM, receiver: WebhookReceiver
) -> None:
    from http_support import in_app

    in_app(client, fake_llm.hold, "summarize")
    running = await submit(client, alice, receiver.url)
    assert_problem(await client.post(f"/jobs/{running}/callback/redeliver", headers=alice), 409)
    assert_problem(await client.post(f"/jobs/{running}/callback/redeliver", headers=bob), 404)
    plain = (await client.post("/jobs", json={"input_text": "No hook."}, headers=alice)).json()
    no_hook = await client.post(f"/jobs/{plain['event_id']}/callback/redeliver", headers=alice)
    assert "callback_url" in assert_problem(no_hook, 404)["detail"]


async def test_userinfo_in_a_callback_url_is_422(client: Client, alice: Headers) -> None:
    response = await client.post(
        "/jobs", json={"input_text": "T.", "callback_url": "https://u:p@hooks.example/h"},
        headers=alice,
    )  # fmt: skip
    assert_problem(response, 422)
