"""The Litestar application: routes, OpenAPI document, errors, auth. Built by entrypoints."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
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
from adapters.http.console import console_router
from adapters.http.deadline import deadline_middleware
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


def _request_context(
    allowed_methods: Mapping[str, str], observe: RequestObserver | None
) -> Callable[[ASGIApp], ASGIApp]:
    """One ASGI middleware for what every HTTP request gets (one wrapper, one `send`
    hook: the profile counted each layer):

    - a request id (from X-Request-ID or new) bound to the log context and echoed back;
    - the RateLimit-* headers the rate-limit guard left in the request state;
    - `Allow` corrected on Litestar's automatic OPTIONS answers: it lists only the
      methods of the first handler registered on a path (e.g. `GET, OPTIONS` for
      /jobs, without POST); `allowed_methods` maps each route's path template to its
      full list;
    - with `observe`, each request's method, route template, status and duration.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"")
            text = given.decode("latin-1")
            request_id = text if 0 < len(text) <= 128 and text.isprintable() else uuid.uuid4().hex
            structlog.contextvars.clear_contextvars()
            structlog.contextvars.bind_contextvars(request_id=request_id)
            status = 500

            async def send_wrapped(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    headers = list(message.get("headers", []))
                    extra = scope.get("state", {}).get(EXTRA_HEADERS)
                    if extra:
                        headers.extend((k.lower().encode(), v.encode()) for k, v in extra.items())
                    if status == 204 and scope.get("method") == "OPTIONS":
                        allow = allowed_methods.get(scope.get("path_template") or "")
                        if allow:
                            headers = [(k, v) for k, v in headers if k.lower() != b"allow"]
                            headers.append((b"allow", allow.encode()))
                    headers.append((b"x-request-id", request_id.encode()))
                    message["headers"] = headers
                await send(message)

            try:
                await app(scope, receive, send_wrapped)
            finally:
                structlog.contextvars.clear_contextvars()
                if observe is not None:
                    route = scope.get("path_template") or "unmatched"
                    elapsed = time.perf_counter() - started
                    observe(str(scope.get("method", "GET")), route, status, elapsed)

        return handle

    return middleware


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
    request_timeout_s: float | None = None,
) -> Litestar:
    """Build the HTTP app; the /jobs routes get their use cases from `use_cases`.
    With `request_timeout_s`, a request whose work takes longer answers 503 (deadline.py)."""
    allowed_methods: dict[str, str] = {}
    middleware = [_request_context(allowed_methods, observe_request)]
    if request_timeout_s:
        middleware.append(deadline_middleware(request_timeout_s))
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
            console_router(),
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
