"""Abuse limits: per-key request rates (429 with Retry-After and RateLimit-* headers)."""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

from litestar.connection import ASGIConnection
from litestar.exceptions import TooManyRequestsException

from application.ports import RateDecision, RateLimiter

WINDOW_S = 60
EXTRA_HEADERS = "extra_response_headers"


@dataclass(frozen=True, slots=True)
class RateLimits:
    limiter: RateLimiter
    submit_per_min: int | None = None
    read_per_min: int | None = None

    @property
    def enabled(self) -> bool:
        return self.submit_per_min is not None or self.read_per_min is not None


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
    # The caller id is a key or a client address: hash it so no key reaches Redis.
    key = hashlib.sha256(caller.encode()).hexdigest()[:32]
    decision = await limits.limiter.hit(f"{scope}:{key}", limit, WINDOW_S)
    # The request middleware adds these to whatever response goes out.
    request.scope["state"][EXTRA_HEADERS] = _headers(decision)
    if not decision.allowed:
        headers = {"Retry-After": str(max(1, math.ceil(decision.reset_s)))}
        raise TooManyRequestsException(
            detail=f"Too many {scope} requests for this key: at most {limit} a minute.",
            headers=headers,
        )
