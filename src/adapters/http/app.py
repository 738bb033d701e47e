"""The Litestar application: routes, OpenAPI document, errors, auth. Built by entrypoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Router
from litestar.di import Provide
from litestar.enums import ScopeType
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.routes import HTTPRoute
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from adapters.http.auth import Authenticator, auth_guard, owner_provider
from adapters.http.docs import docs_router
from adapters.http.health import MetricsExposition, ReadinessCheck, live, metrics, ready
from adapters.http.jobs import JobController, JobUseCases, job_dependencies
from adapters.http.limits import EXTRA_HEADERS, RateLimits
from adapters.http.openapi import finalize_openapi
from adapters.http.problems import EXCEPTION_HANDLERS
from adapters.http.schemas import MAX_BODY_BYTES

RequestObserver = Callable[[str, str, int, float], None]  # method, route, status, seconds

OPENAPI_PATH = "/openapi.json"
_DESCRIPTION = """\
Turns the text of a clinical guideline into a **summary** and an actionable
**checklist**. Submit the text, get a job id at once, then poll the job.

Every `/jobs` route needs an API key: `Authorization: Bearer <key>` or
`X-API-Key: <key>` (make one with `guideline-ingest keys create OWNER`).
Errors are RFC 9457 problem details.
"""


class OpenAPIDocument(JsonRenderPlugin):
    """The one OpenAPI document, at /openapi.json: Litestar's, corrected by `finalize_openapi`.

    Served as the OpenAPI router's only page (the router sits at /openapi.json), so
    Litestar's uncorrected document is served nowhere.
    """

    def __init__(self, callbacks_allow_http: bool, callbacks_enabled: bool) -> None:
        super().__init__(path="/", media_type=MediaType.JSON)
        self._callbacks_allow_http = callbacks_allow_http
        self._callbacks_enabled = callbacks_enabled
        self._document: bytes | None = None

    def has_path(self, path: str) -> bool:
        # Tells Litestar this page *is* the JSON document (so it adds no second one).
        return path in ("/", "/openapi.json")

    def render(self, request: Request[Any, Any, Any], openapi_schema: dict[str, Any]) -> bytes:
        if self._document is None:
            corrected = finalize_openapi(
                openapi_schema,
                callbacks_allow_http=self._callbacks_allow_http,
                callbacks_enabled=self._callbacks_enabled,
            )
            self._document = msgspec.json.encode(corrected)
        return self._document


def _http_only(
    wrap: Callable[[ASGIApp, Scope, Receive, Send], Awaitable[None]],
) -> Callable[[ASGIApp], ASGIApp]:
    """An ASGI middleware factory that applies `wrap` to HTTP requests only."""

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
            else:
                await wrap(app, scope, receive, send)

        return handle

    return middleware


async def _request_id(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Binds a request id (from X-Request-ID or new) to the log context and echoes it back."""
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    request_id = given if 0 < len(given) <= 128 and given.isprintable() else uuid.uuid4().hex
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)

    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [
                *message.get("headers", []),
                (b"x-request-id", request_id.encode()),
            ]
        await send(message)

    try:
        await app(scope, receive, send_with_id)
    finally:
        structlog.contextvars.clear_contextvars()


async def _rate_limit_headers(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    """Adds the headers the rate-limit guard left in the request state (RateLimit-*)."""

    async def send_with_headers(message: Message) -> None:
        extra = scope.get("state", {}).get(EXTRA_HEADERS)
        if message["type"] == "http.response.start" and extra:
            message["headers"] = [
                *message.get("headers", []),
                *((k.lower().encode(), v.encode()) for k, v in extra.items()),
            ]
        await send(message)

    await app(scope, receive, send_with_headers)


def _allow_header(allowed_methods: Mapping[str, str]) -> Callable[[ASGIApp], ASGIApp]:
    """Corrects `Allow` on Litestar's automatic OPTIONS answers: it lists only the methods
    of the first handler registered on a path (e.g. `GET, OPTIONS` for /jobs, without
    POST). `allowed_methods` maps each route's path template to its full list."""

    async def fix(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("method") != "OPTIONS":
            await app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            allow = allowed_methods.get(scope.get("path_template") or "")
            if message["type"] == "http.response.start" and message["status"] == 204 and allow:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"allow"]
                message["headers"] = [*headers, (b"allow", allow.encode())]
            await send(message)

        await app(scope, receive, send_with_allow)

    return _http_only(fix)


def _observed(observe: RequestObserver) -> Callable[[ASGIApp], ASGIApp]:
    """Reports each request's method, route template, status and duration."""

    async def measure(app: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_observed)
        finally:
            route = scope.get("path_template") or "unmatched"
            observe(str(scope.get("method", "GET")), route, status, time.perf_counter() - started)

    return _http_only(measure)


def create_http_app(
    *,
    use_cases: JobUseCases,
    authenticate: Authenticator | None,
    rate_limits: RateLimits | None = None,
    readiness_checks: Mapping[str, ReadinessCheck],
    metrics_exposition: MetricsExposition,
    lifespan: Sequence[Callable[[Litestar], AbstractAsyncContextManager[None]]] = (),
    observe_request: RequestObserver | None = None,
    version: str = "1.0.0",
    callbacks_allow_http: bool = False,
    callbacks_enabled: bool = True,
) -> Litestar:
    """Build the HTTP app; the /jobs routes get their use cases from `use_cases`."""
    allowed_methods: dict[str, str] = {}
    middleware = [_http_only(_request_id), _http_only(_rate_limit_headers)]
    middleware.append(_allow_header(allowed_methods))
    if observe_request is not None:
        middleware.append(_observed(observe_request))
    app = Litestar(
        route_handlers=[
            Router(
                "/",
                route_handlers=[JobController],
                guards=[auth_guard(authenticate, rate_limits)],
                dependencies=job_dependencies(use_cases),
            ),
            live,
            ready,
            metrics,
            docs_router(OPENAPI_PATH),
        ],
        dependencies={
            "owner": Provide(owner_provider(authenticate)),
            "readiness_checks": Provide(lambda: readiness_checks, sync_to_thread=False),
            "metrics_exposition": Provide(lambda: metrics_exposition, sync_to_thread=False),
        },
        exception_handlers=EXCEPTION_HANDLERS,
        middleware=middleware,
        request_max_body_size=MAX_BODY_BYTES,
        openapi_config=OpenAPIConfig(
            title="Guideline Ingest",
            version=version,
            description=_DESCRIPTION,
            path=OPENAPI_PATH,
            render_plugins=[OpenAPIDocument(callbacks_allow_http, callbacks_enabled)],
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
