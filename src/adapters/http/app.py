"""The Litestar application: routes, OpenAPI document, errors, auth. Built by entrypoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import structlog
from litestar import Litestar, Request, Router, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.auth import Authenticator, auth_guard, owner_provider
from adapters.http.deadline import deadline_middleware
from adapters.http.docs import docs_router
from adapters.http.health import MetricsExposition, ReadinessCheck, live, metrics, ready
from adapters.http.jobs import JobController
from adapters.http.limits import EXTRA_HEADERS, RateLimits
from adapters.http.openapi import finalize_openapi
from adapters.http.problems import EXCEPTION_HANDLERS
from adapters.http.schemas import MAX_BODY_BYTES

RequestObserver = Callable[[str, str, int, float], None]  # method, route, status, seconds

OPENAPI_PATH = "/openapi.json"
_OPENAPI_CACHE = "openapi_document"
CALLBACKS_ALLOW_HTTP = "callbacks_allow_http"
_DESCRIPTION = """\
Turns the text of a clinical guideline into a **summary** and an actionable
**checklist**. Submit the text, get a job id at once, then poll the job.

Every `/jobs` route needs an API key: `Authorization: Bearer <key>` or
`X-API-Key: <key>` (make one with `guideline-ingest keys create OWNER`).
Errors are RFC 9457 problem details.
"""


@get(OPENAPI_PATH, include_in_schema=False, sync_to_thread=False)
def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    state = request.app.state
    if _OPENAPI_CACHE not in state:
        state[_OPENAPI_CACHE] = finalize_openapi(
            request.app.openapi_schema.to_schema(),
            callbacks_allow_http=bool(state.get(CALLBACKS_ALLOW_HTTP)),
        )
    document: dict[str, Any] = state[_OPENAPI_CACHE]
    return document


def request_context_middleware(
    observe: RequestObserver | None, allowed_methods: Mapping[str, str] | None = None
) -> Callable[[ASGIApp], ASGIApp]:
    """Binds a request id (from X-Request-ID or new) to the log context and echoes it back.

    Also corrects `Allow` on Litestar's automatic OPTIONS answers: it lists only the methods
    of the first handler registered on a path (e.g. `GET, OPTIONS` for /jobs, without
    POST). `allowed_methods` maps each route's path template to its full list.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            headers = dict(scope["headers"])
            given = headers.get(b"x-request-id", b"").decode("latin-1")
            request_id = (
                given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
            )
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=request_id)
            started = time.perf_counter()
            status = 500

            async def send_with_id(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    extra = scope.get("state", {}).get(EXTRA_HEADERS, {})
                    headers = list(message.get("headers", []))
                    allow = (allowed_methods or {}).get(scope.get("path_template") or "")
                    if scope.get("method") == "OPTIONS" and status == 204 and allow:
                        headers = [(k, v) for k, v in headers if k.lower() != b"allow"]
                        headers.append((b"allow", allow.encode()))
                    message["headers"] = [
                        *headers,
                        (b"x-request-id", request_id.encode()),
                        *((k.lower().encode(), v.encode()) for k, v in extra.items()),
                    ]
                await send(message)

            try:
                await app(scope, receive, send_with_id)
            finally:
                if observe is not None:
                    route = scope.get("path_template") or "unmatched"
                    method = str(scope.get("method", "GET"))
                    observe(method, route, status, time.perf_counter() - started)
                structlog.contextvars.clear_contextvars()

        return handle

    return middleware


def create_http_app(
    *,
    dependencies: Mapping[str, Provide],
    authenticate: Authenticator | None,
    rate_limits: RateLimits | None = None,
    readiness_checks: Mapping[str, ReadinessCheck],
    metrics_exposition: MetricsExposition,
    lifespan: Sequence[Callable[[Litestar], AbstractAsyncContextManager[None]]] = (),
    observe_request: RequestObserver | None = None,
    version: str = "1.0.0",
    callbacks_allow_http: bool = False,
    request_timeout_s: float | None = None,
) -> Litestar:
    """Build the HTTP app. `dependencies` maps handler parameter names to use-case providers.
    With `request_timeout_s`, a request whose work takes longer answers 503 (deadline.py)."""
    allowed_methods: dict[str, str] = {}
    deadline = [deadline_middleware(request_timeout_s)] if request_timeout_s else []
    app = Litestar(
        route_handlers=[
            Router(
                "/", route_handlers=[JobController], guards=[auth_guard(authenticate, rate_limits)]
            ),
            live,
            ready,
            metrics,
            openapi_document,
            docs_router(OPENAPI_PATH),
        ],
        dependencies={
            **dependencies,
            "owner": Provide(owner_provider(authenticate)),
            "readiness_checks": Provide(lambda: readiness_checks, sync_to_thread=False),
            "metrics_exposition": Provide(lambda: metrics_exposition, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=[request_context_middleware(observe_request, allowed_methods), *deadline],
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Guideline Ingest",
            version=version,
            description=_DESCRIPTION,
            path="/schema",
            render_plugins=[JsonRenderPlugin()],
            components=Components(
                security_schemes={
                    "BearerKey": SecurityScheme(
                        type="http", scheme="bearer", description="`Authorization: Bearer <key>`"
                    ),
                    "ApiKey": SecurityScheme(
                        type="apiKey", name="X-API-Key", security_scheme_in="header"
                    ),
                }
            ),
        ),
        lifespan=list(lifespan),
        state=State({CALLBACKS_ALLOW_HTTP: callbacks_allow_http}),
        logging_config=None,  # structlog is configured by entrypoints
        debug=False,
    )
    allowed_methods.update(
        {
            route.path_format: ", ".join(sorted(route.methods))
            for route in app.routes
            if isinstance(route, HTTPRoute)
        }
    )
    return app
