"""Every error as RFC 9457 problem details (application/problem+json)."""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import Any

import structlog
from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from application.errors import (
    CallbacksDisabled,
    ConcurrencyConflict,
    DuplicateIdempotencyKey,
    IdempotencyMismatch,
    InsecureCallback,
    InvalidCursor,
    JobConflict,
    JobNotFound,
    NoCallback,
    RefusedDestination,
    StorageUnavailable,
    TooManyJobsInFlight,
)

PROBLEM_JSON = "application/problem+json"
log = structlog.get_logger(__name__)


def problem(
    status: int,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response[dict[str, Any]]:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
    }
    if errors is not None:
        body["errors"] = errors
    return Response(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


# A UTF-16 escape of half a surrogate pair: a high one not followed by a low one,
# or a low one not preceded by a high one.
_LONE_SURROGATE = re.compile(
    rb"\\u[dD][89abAB][0-9a-fA-F]{2}(?!\\u[dD][c-fC-F][0-9a-fA-F]{2})"
    rb"|(?<!\\u[dD][89abAB][0-9a-fA-F]{2})\\u[dD][c-fC-F][0-9a-fA-F]{2}"
)


def _has_lone_surrogate(request: Request[Any, Any, Any]) -> bool:
    # The handler is synchronous: look at the body the failed parse already read.
    body = getattr(request, "_body", None)
    return isinstance(body, bytes) and _LONE_SURROGATE.search(body) is not None


def _http_exception(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    headers = dict(exc.headers or {})
    if isinstance(exc, ValidationException) and getattr(request, "_body", None) == b"":
        return problem(400, "The request body is empty; send a JSON object.", headers=headers)
    if isinstance(exc, ValidationException) and isinstance(exc.extra, list):
        # A body that parsed but broke a rule: 422 (Litestar says 400).
        return problem(422, "The request breaks a rule.", errors=exc.extra, headers=headers)
    if exc.status_code == 400 and _has_lone_surrogate(request):
        # Valid JSON syntax (a lone `\\ud800` escape) that msgspec refuses to decode (and
        # reports in several ways): the text breaks the "valid Unicode" rule, so 422.
        return problem(
            422,
            "The request breaks a rule.",
            errors=[{"message": "The body contains invalid Unicode (a lone surrogate)."}],
            headers=headers,
        )
    if exc.status_code == 400:
        return problem(400, f"The request could not be parsed: {exc.detail}", headers=headers)
    detail = (
        exc.detail
        if exc.detail != HTTPStatus(exc.status_code).phrase
        else _DEFAULT_DETAIL.get(exc.status_code, exc.detail)
    )
    return problem(exc.status_code, detail, headers=headers)


_DEFAULT_DETAIL = {
    404: "No such resource.",
    405: "This method is not allowed on this resource.",
    413: "The request body is larger than the limit (4 MiB).",
}


def _not_found(_: Request[Any, Any, Any], exc: JobNotFound) -> Response[Any]:
    return problem(404, "Job not found.")


def _conflict(_: Request[Any, Any, Any], exc: JobConflict) -> Response[Any]:
    return problem(409, str(exc))


def _no_callback(_: Request[Any, Any, Any], exc: NoCallback) -> Response[Any]:
    return problem(404, str(exc))


def _insecure_callback(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    field = {"message": str(exc), "key": "callback_url", "source": "body"}
    return problem(422, "The request breaks a rule.", errors=[field])


def _changed_meanwhile(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return problem(409, "The job changed while this request ran; read it and try again.")


def _unprocessable(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    return problem(422, str(exc))


def _too_many(_: Request[Any, Any, Any], exc: TooManyJobsInFlight) -> Response[Any]:
    return problem(429, str(exc), headers={"Retry-After": "30"})


def _unavailable(_: Request[Any, Any, Any], exc: StorageUnavailable) -> Response[Any]:
    log.warning("database unavailable")
    return problem(
        503, "The database is unavailable; try again shortly.", headers={"Retry-After": "5"}
    )


def _too_deep(request: Request[Any, Any, Any], exc: RecursionError) -> Response[Any]:
    # msgspec gives up on JSON nested too deeply with a RecursionError, not a DecodeError.
    if "deserializing" in str(exc):
        return problem(400, "The request could not be parsed: JSON is nested too deeply.")
    return _unexpected(request, exc)


def _not_utf8(_: Request[Any, Any, Any], exc: UnicodeDecodeError) -> Response[Any]:
    # msgspec raises UnicodeDecodeError, not a DecodeError, for a string that is not UTF-8.
    return problem(400, "The request could not be parsed: the body is not valid UTF-8.")


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("unhandled error", error=type(exc).__name__, path=request.url.path, exc_info=exc)
    return problem(500, "Internal server error.")


EXCEPTION_HANDLERS: ExceptionHandlersMap = {
    HTTPException: _http_exception,
    JobNotFound: _not_found,
    JobConflict: _conflict,
    IdempotencyMismatch: _unprocessable,
    ConcurrencyConflict: _changed_meanwhile,
    DuplicateIdempotencyKey: _changed_meanwhile,
    InsecureCallback: _insecure_callback,
    CallbacksDisabled: _insecure_callback,
    RefusedDestination: _insecure_callback,
    NoCallback: _no_callback,
    InvalidCursor: _unprocessable,
    StorageUnavailable: _unavailable,
    TooManyJobsInFlight: _too_many,
    RecursionError: _too_deep,
    UnicodeDecodeError: _not_utf8,
    Exception: _unexpected,
}
