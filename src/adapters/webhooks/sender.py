"""`WebhookSender` over httpx: signed the Standard Webhooks way, to the address it checked.

The destination is resolved here, at delivery time, and refused unless every
address it resolves to may receive callbacks (`application.destinations`); the
connection then goes to the address that was checked — the URL's host is
replaced by it, with the name kept for `Host` and TLS (SNI and certificate
check) — so a second lookup (DNS rebinding) cannot send it elsewhere.
Redirects are not followed; the answer's body is never read.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from standardwebhooks import Webhook

from application.destinations import refusal
from application.ports import SendResult

Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    """The host's addresses (A and AAAA), as the system resolver gives them."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def signature_header(secrets: Sequence[Webhook], webhook_id: str, at: datetime, body: str) -> str:
    """`v1,<base64>` per secret, space-separated (all of them sign during a rotation)."""
    return " ".join(secret.sign(webhook_id, at, body) for secret in secrets)


class HttpWebhookSender:
    """Implements `WebhookSender`."""

    def __init__(
        self,
        secrets: Sequence[str],
        timeout_s: float,
        allow_private: bool = False,
        resolver: Resolver = system_resolver,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._secrets = [Webhook(secret) for secret in secrets]
        self._timeout_s = timeout_s
        self._allow_private = allow_private
        self._resolve = resolver
        self._client = httpx.AsyncClient(
            follow_redirects=False,
            timeout=httpx.Timeout(timeout_s),
            transport=transport,
            headers={"User-Agent": "guideline-ingest-webhooks"},
            trust_env=False,  # never through a proxy from the environment
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def send(self, url: str, webhook_id: str, timestamp: datetime, body: bytes) -> SendResult:
        if not self._secrets:
            return SendResult(None, "no WEBHOOK_SIGNING_SECRET is configured", final=True)
        parts = urlsplit(url)
        host = parts.hostname
        if host is None:
            return SendResult(None, "the callback URL has no host", final=True)
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return SendResult(None, "the callback URL has an invalid port", final=True)
        try:
            async with asyncio.timeout(self._timeout_s):
                addresses = await self._resolve(host, port)
        except (OSError, TimeoutError):
            return SendResult(None, f"cannot resolve {host}")
        if not addresses:
            return SendResult(None, f"cannot resolve {host}")
        if not self._allow_private:
            for address in addresses:
                reason = refusal(address)
                if reason is not None:
                    return SendResult(None, f"destination refused: {reason}", final=True)
        pinned = _with_host(parts, addresses[0], port)
        text = body.decode()
        headers = {
            "Content-Type": "application/json",
            "Host": parts.netloc.rsplit("@", 1)[-1],
            "webhook-id": webhook_id,
            "webhook-timestamp": str(int(timestamp.timestamp())),
            "webhook-signature": signature_header(self._secrets, webhook_id, timestamp, text),
        }
        try:
            async with asyncio.timeout(self._timeout_s):
                request = self._client.build_request(
                    "POST", pinned, content=body, headers=headers, extensions={"sni_hostname": host}
                )
                response = await self._client.send(request, stream=True)
                await response.aclose()  # the body is never read
        except TimeoutError:
            return SendResult(None, f"no answer within {self._timeout_s:g} s")
        except httpx.HTTPError as exc:
            return SendResult(None, f"connection failed ({type(exc).__name__})")
        code = response.status_code
        if 200 <= code < 300:
            return SendResult(code, None)
        if code == 410:
            return SendResult(code, "the receiver answered 410 Gone", final=True)
        return SendResult(code, f"the receiver answered {code}")


def _with_host(parts: object, address: str, port: int) -> str:
    from urllib.parse import SplitResult

    assert isinstance(parts, SplitResult)
    literal = f"[{address}]" if ":" in address else address
    return urlunsplit((parts.scheme, f"{literal}:{port}", parts.path or "/", parts.query, ""))
