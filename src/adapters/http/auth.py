"""API-key authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException
from litestar.handlers.base import BaseRouteHandler
from litestar.types import Guard

from adapters.http.limits import (
    RateLimits,
    client_address,
    count_failed_authentication,
    enforce,
    refuse_blocked_address,
)

# token -> owner, or None when the key is unknown, wrong or revoked
Authenticator = Callable[[str], Awaitable[str | None]]

ANONYMOUS_OWNER = "anonymous"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="guideline-ingest"'}


def presented_key(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    authorization = connection.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = connection.headers.get("x-api-key", "").strip()
    return api_key or None


async def _owner_of(
    connection: ASGIConnection[Any, Any, Any, Any], authenticate: Authenticator | None
) -> str:
    """The caller's owner, remembered in the connection's state; 401 without a valid key."""
    state = connection.scope["state"]
    if "owner" in state:
        return str(state["owner"])
    if authenticate is None:
        return ANONYMOUS_OWNER
    token = presented_key(connection)
    owner = await authenticate(token) if token and len(token) <= 256 else None
    if owner is None:
        detail = "A valid API key is required." if token is None else "The API key is not valid."
        raise NotAuthorizedException(detail=detail, headers=_CHALLENGE)
    state["owner"] = owner
    structlog.contextvars.bind_contextvars(owner=owner)
    return owner


def auth_guard(authenticate: Authenticator | None, rate_limits: RateLimits | None = None) -> Guard:
    """Checks the key, then the caller's rate limits, before the handler's
    arguments (the body above all) are parsed: a caller without a valid key
    gets 401, never a 400/422 about its body. Failed authentications are
    counted per client address; past their budget the address gets 429 for
    the rest of the minute, before any key is looked up."""

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        if authenticate is not None:
            await refuse_blocked_address(rate_limits, connection)
        try:
            await _owner_of(connection, authenticate)
        except NotAuthorizedException:
            await count_failed_authentication(rate_limits, connection)
            raise
        if rate_limits is not None and rate_limits.enabled:
            token = presented_key(connection) if authenticate is not None else None
            caller = f"key:{token}" if token else f"addr:{client_address(connection)}"
            await enforce(rate_limits, connection, caller)

    return guard


def owner_provider(authenticate: Authenticator | None) -> Callable[..., Awaitable[str]]:
    """A Litestar dependency giving the caller's owner; None = auth disabled."""

    async def provide_owner(request: Request[Any, Any, Any]) -> str:
        return await _owner_of(request, authenticate)

    return provide_owner
