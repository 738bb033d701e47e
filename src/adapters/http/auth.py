"""API-key authentication: `Authorization: Bearer <key>` or `X-API-Key: <key>`."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from litestar import Request
from litestar.exceptions import NotAuthorizedException

# token -> owner, or None when the key is unknown, wrong or revoked
Authenticator = Callable[[str], Awaitable[str | None]]

ANONYMOUS_OWNER = "anonymous"
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="guideline-ingest"'}


def presented_key(request: Request[Any, Any, Any]) -> str | None:
    authorization = request.headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    api_key = request.headers.get("x-api-key", "").strip()
    return api_key or None


def owner_provider(authenticate: Authenticator | None) -> Callable[..., Awaitable[str]]:
    """A Litestar dependency giving the caller's owner; None = auth disabled."""

    async def provide_owner(request: Request[Any, Any, Any]) -> str:
        if authenticate is None:
            return ANONYMOUS_OWNER
        token = presented_key(request)
        owner = await authenticate(token) if token and len(token) <= 256 else None
        if owner is None:
            detail = (
                "A valid API key is required." if token is None else "The API key is not valid."
            )
            raise NotAuthorizedException(detail=detail, headers=_CHALLENGE)
        request.scope["state"]["owner"] = owner
        return owner

    return provide_owner
