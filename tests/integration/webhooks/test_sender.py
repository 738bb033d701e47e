"""The webhook sender against a real HTTP receiver on 127.0.0.1, and its SSRF guard.

No packet leaves loopback: the guard is driven by an injected resolver, and the
transport fails the test on any connection to a non-loopback address.
"""

from __future__ import annotations

import base64
import ipaddress
import json
from datetime import UTC, datetime

import httpx
import pytest
from standardwebhooks import Webhook
from tests.support.webhook_receiver import WebhookReceiver

from adapters.webhooks.sender import HttpWebhookSender

SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
OLD_SECRET = "whsec_" + base64.b64encode(b"o" * 32).decode()
BODY = b'{"type":"job.completed","timestamp":"2026-12-01T10:00:00Z","data":{"status":"x"}}'


class LoopbackOnly(httpx.AsyncBaseTransport):
    """The real transport, after checking that the connection stays on loopback."""

    def __init__(self) -> None:
        self._inner = httpx.AsyncHTTPTransport()
        self.hosts: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        self.hosts.append(host)
        if not ipaddress.ip_address(host).is_loopback:
            pytest.fail(f"the sender tried to connect to {host}")
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def resolver_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def now() -> datetime:
    return datetime.now(UTC)


async def test_a_delivery_is_signed_by_every_secret_and_verifies(receiver: WebhookReceiver) -> None:
    transport = LoopbackOnly()
    sender = HttpWebhookSender(
        [SECRET, OLD_SECRET], 5, allow_private=True, transport=transport,
        resolver=resolver_to("127.0.0.1"),
    )  # fmt: skip
    url = f"http://hooks.example:{receiver.port}/hook?x=1"
    result = await sender.send(url, "msg_1", now(), BODY)
    await sender.aclose()

    assert result.delivered
    (request,) = receiver.requests
    assert request.path == "/hook?x=1"
    assert request.headers["Host"] == f"hooks.example:{receiver.port}"  # the name, kept
    assert transport.hosts == ["127.0.0.1"]  # the connection: the checked address
    for secret in (SECRET, OLD_SECRET):  # both verify (rotation)
        payload = Webhook(secret).verify(request.body, request.headers)
        assert payload == json.loads(BODY)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.headers["webhook-id"] == "msg_1"


@pytest.mark.parametrize(
    ("answer", "delivered", "final"),
    [(200, True, False), (204, True, False), (500, False, False), (302, False, False),
     (410, False, True), (404, False, False)],
)  # fmt: skip
async def test_answers_are_classified(
    receiver: WebhookReceiver, answer: int, delivered: bool, final: bool
) -> None:
    receiver.script(answer)
    sender = HttpWebhookSender([SECRET], 5, allow_private=True, transport=LoopbackOnly())
    result = await sender.send(receiver.url, "msg_2", now(), BODY)
    await sender.aclose()
    assert (result.status_code, result.delivered, result.final) == (answer, delivered, final)
    assert len(receiver.requests) == 1  # a redirect is not followed


async def test_no_answer_within_the_timeout_is_a_failure_to_try_again(
    receiver: WebhookReceiver,
) -> None:
    receiver.script((200, 2.0))
    sender = HttpWebhookSender([SECRET], 0.5, allow_private=True, transport=LoopbackOnly())
    result = await sender.send(receiver.url, "msg_3", now(), BODY)
    await sender.aclose()
    assert (result.status_code, result.final) == (None, False)
    assert result.error is not None
    assert "no answer" in result.error


async def test_a_refused_connection_is_a_failure_to_try_again(receiver: WebhookReceiver) -> None:
    url = receiver.url
    receiver.stop()
    sender = HttpWebhookSender([SECRET], 2, allow_private=True, transport=LoopbackOnly())
    result = await sender.send(url, "msg_4", now(), BODY)
    await sender.aclose()
    assert (result.status_code, result.final) == (None, False)


@pytest.mark.parametrize(
    "addresses",
    [("127.0.0.1",), ("10.0.0.7",), ("169.254.169.254",), ("93.184.216.34", "192.168.0.9"),
     ("::ffff:127.0.0.1",), ("fd12::1",), ("100.64.1.1",)],
)  # fmt: skip
async def test_a_name_resolving_to_any_refused_address_is_refused_before_any_packet(
    addresses: tuple[str, ...],
) -> None:
    transport = LoopbackOnly()
    sender = HttpWebhookSender([SECRET], 2, resolver=resolver_to(*addresses), transport=transport)
    result = await sender.send("https://hooks.example/h", "msg_5", now(), BODY)
    await sender.aclose()
    assert result.final
    assert result.status_code is None
    assert result.error is not None
    assert result.error.startswith("destination refused")
    assert transport.hosts == []  # nothing was sent


async def test_without_a_signing_secret_nothing_is_sent(receiver: WebhookReceiver) -> None:
    sender = HttpWebhookSender([], 2, allow_private=True, transport=LoopbackOnly())
    result = await sender.send(receiver.url, "msg_6", now(), BODY)
    await sender.aclose()
    assert result.final
    assert receiver.requests == []
