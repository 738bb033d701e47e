"""Errors of the application layer: what ports raise and use cases report."""

from __future__ import annotations

from domain import ErrorCode


class ApplicationError(Exception):
    """Base of the application's own errors."""


class JobNotFound(ApplicationError):
    """No such job for this owner (a missing job and another owner's look alike)."""


class JobConflict(ApplicationError):
    """The job's status does not allow the request (HTTP 409)."""


class IdempotencyMismatch(ApplicationError):
    """The same Idempotency-Key was used with a different request body."""


class InsecureCallback(ApplicationError):
    """An http:// callback URL where the operator allows only https:// (HTTP 422)."""


class NoCallback(ApplicationError):
    """The job has no callback URL, so there is no callback to (re)deliver (HTTP 404)."""


class CallbacksDisabled(ApplicationError):
    """A callback URL where the operator configured no signing secret (HTTP 422)."""


class RefusedDestination(ApplicationError):
    """A callback URL whose host is an address callbacks may not go to (HTTP 422)."""


class TooManyJobsInFlight(ApplicationError):
    """The owner already has as many unfinished jobs as allowed (HTTP 429)."""


class ConcurrencyConflict(ApplicationError):
    """The job changed since it was read (optimistic concurrency, version column)."""


class DuplicateIdempotencyKey(ApplicationError):
    """Another job already holds this owner's Idempotency-Key (unique constraint)."""


class StorageUnavailable(ApplicationError):
    """The database could not be reached."""


class InvalidCursor(ApplicationError):
    """A list cursor that this service did not make."""


class LLMError(ApplicationError):
    """A failed LLM call, classified by the gateway."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransientLLMError(LLMError):
    """Worth another try: 429, 5xx, a timeout, a lost connection."""

    def __init__(self, code: ErrorCode, message: str, retry_after: float | None = None) -> None:
        super().__init__(code, message)
        self.retry_after = retry_after


class PermanentLLMError(LLMError):
    """Not worth another try: a rejection, a refusal, output that stays malformed."""
