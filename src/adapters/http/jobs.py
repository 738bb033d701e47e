"""The /jobs routes: submit, read, list, cancel, retry, delete."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any
from uuid import UUID

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.connection import ASGIConnection
from litestar.datastructures import ResponseHeader
from litestar.di import Provide
from litestar.exceptions import ClientException, HTTPException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from adapters.http.schemas import (
    IDEMPOTENCY_KEY_PATTERN,
    JobListView,
    JobView,
    Problem,
    StatusName,
    SubmitJobRequest,
    job_list_item,
    job_view,
)
from application.errors import JobNotFound
from application.use_cases.cancel_job import CancelJob
from application.use_cases.delete_job import DeleteJob
from application.use_cases.get_job import GetJob
from application.use_cases.list_jobs import ListJobs, ListJobsQuery
from application.use_cases.redeliver_callback import RedeliverCallback
from application.use_cases.retry_job import RetryJob
from application.use_cases.submit_job import SubmitJob, SubmitJobCommand
from application.use_cases.watch_job import FollowJob, WaitForJob
from domain import JobStatus


def _problem(description: str) -> ResponseSpec:
    return ResponseSpec(
        Problem,
        description=description,
        media_type="application/problem+json",
        generate_examples=False,
    )


AUTH_ERRORS = {
    429: _problem("Too many requests (with `Retry-After`), or too many unfinished jobs."),
    400: _problem("The request could not be parsed."),
    401: _problem("Missing or wrong API key (with `WWW-Authenticate: Bearer`)."),
    503: _problem("The database is unavailable."),
}
NOT_FOUND = {404: _problem("No such job for this owner (a malformed id too).")}
RULE_BROKEN = {422: _problem("A rule of the request is broken; `errors` lists the fields.")}
LOCATION = [
    ResponseHeader(name="Location", description="/jobs/{event_id}", documentation_only=True)
]


@dataclass(frozen=True, slots=True)
class JobUseCases:
    """The use cases the /jobs routes call, given by the composition root."""

    submit_job: SubmitJob
    get_job: GetJob
    list_jobs: ListJobs
    cancel_job: CancelJob
    retry_job: RetryJob
    delete_job: DeleteJob
    wait_for_job: WaitForJob
    follow_job: FollowJob
    redeliver_callback: RedeliverCallback


def _given(value: object) -> Provide:
    def provide() -> object:
        return value

    return Provide(provide, use_cache=True, sync_to_thread=False)


def job_dependencies(use_cases: JobUseCases) -> dict[str, Provide]:
    """The handlers' use-case parameters, each bound to its use case."""
    return {
        "submit_job": _given(use_cases.submit_job),
        "get_job": _given(use_cases.get_job),
        "list_jobs": _given(use_cases.list_jobs),
        "cancel_job": _given(use_cases.cancel_job),
        "retry_job": _given(use_cases.retry_job),
        "delete_job": _given(use_cases.delete_job),
        "wait_for_job": _given(use_cases.wait_for_job),
        "follow_job": _given(use_cases.follow_job),
        "redeliver_callback": _given(use_cases.redeliver_callback),
    }


def parse_event_id(event_id: str) -> UUID:
    try:
        return UUID(event_id)
    except ValueError:
        raise JobNotFound(event_id) from None


def _fingerprint(data: SubmitJobRequest) -> str:
    canonical = msgspec.json.encode(msgspec.to_builtins(data), order="sorted")
    return hashlib.sha256(canonical).hexdigest()


def _location(view: JobView) -> dict[str, str]:
    return {"Location": f"/jobs/{view.event_id}"}


async def require_json_body(
    connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler
) -> None:
    """415 unless the body is declared as JSON (checked before the body is read).
    A coroutine: Litestar runs a plain function guard in a worker thread."""
    media_type = connection.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise HTTPException(status_code=415, detail="Send the body as application/json.")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("a JSON object repeats a key")
    return dict(pairs)


def reject_duplicate_keys(body: bytes) -> None:
    """msgspec keeps the last of repeated keys; an ambiguous body is refused instead."""
    try:
        json.loads(body, object_pairs_hook=_unique_keys)
    except ValueError as exc:
        raise ClientException(detail=str(exc)) from None


class JobController(Controller):
    path = "/jobs"
    tags = ["jobs"]
    security = [{"ApiKey": []}, {"BearerKey": []}]

    @post(
        "/",
        operation_id="submitJob",
        summary="Submit a guideline",
        status_code=202,
        response_headers=LOCATION,
        guards=[require_json_body],
        responses={
            200: ResponseSpec(
                JobView,
                description="Replay of an earlier request with the same Idempotency-Key and body.",
            ),
            400: _problem("The body is not valid JSON (or repeats a key)."),
            413: _problem("The body is larger than 4 MiB."),
            415: _problem("The body is not sent as application/json."),
            **RULE_BROKEN,
            **AUTH_ERRORS,
        },
    )
    async def submit(
        self,
        request: Request[Any, Any, Any],
        data: SubmitJobRequest,
        owner: str,
        submit_job: SubmitJob,
        idempotency_key: Annotated[
            str | None,
            Parameter(
                header="Idempotency-Key",
                pattern=IDEMPOTENCY_KEY_PATTERN,
                min_length=1,
                max_length=255,
                description="Makes a retried submit safe: same key + same body gives the same job.",
                required=False,
            ),
        ] = None,
    ) -> Response[JobView]:
        """Store the text as a job and answer at once; a worker runs the two LLM steps.

        Returns 202 with the pending job and its `Location`. With an
        `Idempotency-Key` already used by this owner: the same body returns that
        job with 200, another body answers 422.
        """
        _check_callback_url(data.callback_url)
        reject_duplicate_keys(await request.body())
        command = SubmitJobCommand(
            owner=owner,
            input_text=data.input_text,
            metadata=dict(data.metadata),
            callback_url=data.callback_url,
            idempotency_key=idempotency_key,
            request_fingerprint=_fingerprint(data) if idempotency_key else None,
        )
        outcome = await submit_job.execute(command)
        view = job_view(outcome.job)
        return Response(view, status_code=202 if outcome.created else 200, headers=_location(view))

    @get(
        "/",
        operation_id="listJobs",
        summary="List my jobs, newest first",
        responses={**RULE_BROKEN, **AUTH_ERRORS},
    )
    async def list_jobs(
        self,
        owner: str,
        list_jobs: ListJobs,
        status: Annotated[
            list[StatusName] | None,
            Parameter(query="status", description="Only jobs in these statuses (repeatable)."),
        ] = None,
        limit: Annotated[int, Parameter(ge=1, le=100, description="Page size.")] = 20,
        cursor: Annotated[
            str | None,
            Parameter(max_length=512, description="`next_cursor` of the previous page."),
        ] = None,
    ) -> JobListView:
        """The owner's jobs without their input text; follow `next_cursor` for more."""
        statuses = [JobStatus(s) for s in status or []]
        page = await list_jobs.execute(ListJobsQuery(owner, statuses, limit, cursor))
        return JobListView([job_list_item(j) for j in page.items], page.next_cursor)

    @get(
        "/{event_id:str}",
        operation_id="getJob",
        summary="Get one job",
        responses={**NOT_FOUND, **RULE_BROKEN, **AUTH_ERRORS},
    )
    async def get_job(
        self,
        event_id: str,
        owner: str,
        get_job: GetJob,
        wait_for_job: WaitForJob,
        wait: Annotated[
            float,
            Parameter(
                ge=0,
                le=60,
                description=(
                    "Long poll: hold the answer up to this many seconds (0-60) until the "
                    "job is finished; a finished job answers at once."
                ),
            ),
        ] = 0.0,
    ) -> JobView:
        """The job with its input text, its status and whatever outputs exist so far."""
        job_id = parse_event_id(event_id)
        if wait:
            return job_view(await wait_for_job.execute(owner, job_id, wait))
        return job_view(await get_job.execute(owner, job_id))

    @get(
        "/{event_id:str}/events",
        operation_id="followJob",
        summary="Follow a job as it changes (Server-Sent Events)",
        media_type="text/event-stream",
        responses={**NOT_FOUND, **AUTH_ERRORS},
    )
    async def follow(self, event_id: str, owner: str, follow_job: FollowJob) -> ServerSentEvent:
        """`text/event-stream`: the job at once, then one `event: job` per change of its
        status or step (`id:` is the job's version, `data:` the job without
        input_text); a comment at least every 15 s; the stream ends after the
        finished state. A missing or foreign job answers 404 before any stream."""
        changes = await follow_job.start(owner, parse_event_id(event_id))

        async def messages() -> AsyncIterator[ServerSentEventMessage]:
            async for change in changes:
                if change is None:
                    yield ServerSentEventMessage(comment="keep-alive", data=None)
                else:
                    yield ServerSentEventMessage(
                        data=change.document.decode(), event="job", id=change.version
                    )

        return ServerSentEvent(
            messages(), headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )

    @post(
        "/{event_id:str}/callback/redeliver",
        operation_id="redeliverCallback",
        summary="Send a finished job's callback again",
        status_code=202,
        responses={
            404: _problem("No such job for this owner, or the job has no callback_url."),
            409: _problem("The job is not finished yet."),
            **AUTH_ERRORS,
        },
    )
    async def redeliver(
        self, event_id: str, owner: str, redeliver_callback: RedeliverCallback
    ) -> Response[JobView]:
        """A new try of the same event (the same `webhook-id`), due at once."""
        view = job_view(await redeliver_callback.execute(owner, parse_event_id(event_id)))
        return Response(view, status_code=202)

    @post(
        "/{event_id:str}/cancel",
        operation_id="cancelJob",
        summary="Cancel a pending or processing job",
        status_code=200,
        responses={**NOT_FOUND, 409: _problem("The job is already finished."), **AUTH_ERRORS},
    )
    async def cancel(self, event_id: str, owner: str, cancel_job: CancelJob) -> JobView:
        """A running worker stops at the next step boundary and never overwrites `cancelled`."""
        return job_view(await cancel_job.execute(owner, parse_event_id(event_id)))

    @post(
        "/{event_id:str}/retry",
        operation_id="retryJob",
        summary="Retry a failed or cancelled job",
        status_code=202,
        response_headers=LOCATION,
        responses={
            **NOT_FOUND,
            409: _problem("Only failed or cancelled jobs can be retried."),
            **AUTH_ERRORS,
        },
    )
    async def retry(self, event_id: str, owner: str, retry_job: RetryJob) -> Response[JobView]:
        """Puts the job back to `pending`, keeping finished steps, and dispatches it again."""
        view = job_view(await retry_job.execute(owner, parse_event_id(event_id)))
        return Response(view, status_code=202, headers=_location(view))

    @delete(
        "/{event_id:str}",
        operation_id="deleteJob",
        summary="Erase a job for good",
        status_code=204,
        responses={**NOT_FOUND, **AUTH_ERRORS},
    )
    async def erase(self, event_id: str, owner: str, delete_job: DeleteJob) -> None:
        """Deletes the job's text, outputs and metadata; a later GET answers 404."""
        await delete_job.execute(owner, parse_event_id(event_id))


def _check_callback_url(url: str | None) -> None:
    """The pattern's `$` also matches before a final newline in Python, not in JSON Schema."""
    if url is not None and url.endswith("\n"):
        raise ValidationException(
            detail="Validation failed",
            extra=[
                {
                    "message": "The callback URL must not end with a line break.",
                    "key": "callback_url",
                    "source": "body",
                }
            ],
        )
