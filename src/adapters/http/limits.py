"""Abuse limits: per-key request rates (429 with Retry-After and RateLimit-* headers),
and failed authentications per client address."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any, Protocol

from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException

from application.ports import RateDecision, RateLimiter

WINDOW_S = 60
EXTRA_HEADERS = "extra_response_headers"


class CountingLimiter(RateLimiter, Protocol):
    """A `RateLimiter` that can also tell whether a key is over its limit without a hit."""

    async def peek(self, key: str, limit: int, window_s: int) -> RateDecision: ...


@dataclass(frozen=True, slots=True)
class RateLimits:
    limiter: CountingLimiter
    submit_per_min: int | None = None
    read_per_min: int | None = None
    auth_failures_per_min: int | None = None

    @property
    def enabled(self) -> bool:
        return self.submit_per_min is not None or self.read_per_min is not None


def client_address(connection: ASGIConnection[Any, Any, Any, Any]) -> str:
    """The client's address: the ASGI server puts the X-Forwarded-For one here when the
    peer is a trusted proxy (`TRUSTED_PROXIES`, uvicorn's `forwarded_allow_ips`)."""
    return connection.client.host if connection.client else "unknown"


def _hashed(caller: str) -> str:
    # The caller id is a key or a client address: hash it so no key reaches Redis.
    return hashlib.sha256(caller.encode()).hexdigest()[:32]


def _too_many_failures(limit: int, decision: RateDecision) -> TooManyRequestsException:
    return TooManyRequestsException(
        detail=f"Too many failed authentications from this address: at most {limit} a minute.",
        headers={"Retry-After": str(max(1, math.ceil(decision.reset_s)))},
    )


async def refuse_blocked_address(
    limits: RateLimits | None, connection: ASGIConnection[Any, Any, Any, Any]
) -> None:
    """429 before any key is looked at, for an address past its failed-authentication
    budget: its requests then cost no database read, whatever key they bring."""
    await _auth_failures(limits, connection, count=False)


async def count_failed_authentication(
    limits: RateLimits | None, connection: ASGIConnection[Any, Any, Any, Any]
) -> None:
    """Count one failed authentication of this address; 429 when that one is past the budget."""
    await _auth_failures(limits, connection, count=True)


async def _auth_failures(
    limits: RateLimits | None, connection: ASGIConnection[Any, Any, Any, Any], *, count: bool
) -> None:
    limit = limits.auth_failures_per_min if limits is not None else None
    if limits is None or limit is None:
        return
    key = f"authfail:{_hashed(client_address(connection))}"
    check = limits.limiter.hit if count else limits.limiter.peek
    decision = await check(key, limit, WINDOW_S)
    if not decision.allowed:
        raise _too_many_failures(limit, decision)


def _headers(decision: RateDecision) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(decision.limit),
        "RateLimit-Remaining": str(decision.remaining),
        "RateLimit-Reset": str(math.ceil(decision.reset_s)),
    }


async def enforce(
    limits: RateLimits, request: ASGIConnection[Any, Any, Any, Any], caller: str
) -> None:
    """Count this request against the caller's budget; raise 429 past it."""
    path = request.url.path.rstrip("/")
    # A retry starts paid LLM work again, like a submit: it counts as one.
    submit = request.scope.get("method") == "POST" and (
        path == "/jobs" or (path.startswith("/jobs/") and path.endswith("/retry"))
    )
    limit = limits.submit_per_min if submit else limits.read_per_min
    if limit is None:
        return
    scope = "submit" if submit else "read"
    decision = await limits.limiter.hit(f"{scope}:{_hashed(caller)}", limit, WINDOW_S)
    # The request middleware adds these to whatever response goes out.
    request.scope["state"][EXTRA_HEADERS] = _headers(decision)
    if not decision.allowed:
        headers = {"Retry-After": str(max(1, math.ceil(decision.reset_s)))}
        raise TooManyRequestsException(
            detail=f"Too many {scope} requests for this key: at most {limit} a minute.",
            headers=headers,
        )
