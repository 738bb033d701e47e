"""HTTP schemas (msgspec Structs): the wire format of API.md, apart from domain types."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

import msgspec

from domain import CallbackDelivery, Job

MAX_INPUT_CHARS = 200_000
MAX_BODY_BYTES = 4 * 1024 * 1024

# Exactly the characters for which `str.isspace()` is true, spelled out: `\s` differs
# between Python (msgspec checks the patterns with `re`) and ECMA-262 (JSON Schema).
WHITE_SPACE = r"\t\n\x0b\x0c\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# Not only white space, and no NUL anywhere: stated as a pattern so the OpenAPI document
# carries the rule. Leading white space, then one other character: the classes are
# disjoint, so matching takes linear time (no backtracking blow-up on 200,000 characters).
NON_BLANK_NO_NUL = rf"^[{WHITE_SPACE}]*[^{WHITE_SPACE}\x00][^\x00]*$"
# Printable ASCII; HTTP drops white space at either end of a header value, so none there.
IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,253}[!-~])?$"
# No user name or password (no `@`), no IPv6 literal, no backslash in the authority.
_AUTHORITY = rf"[^{WHITE_SPACE}\x00/?#@\[\]\\]"
CALLBACK_URL_PATTERN = rf"^https?://{_AUTHORITY}+([/?#][^{WHITE_SPACE}\x00]*)?$"

InputText = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=MAX_INPUT_CHARS,
        pattern=NON_BLANK_NO_NUL,
        description="The guideline text: 1 to 200,000 characters, not only white space, no NUL.",
        examples=["Adults with type 2 diabetes should be offered metformin as first-line therapy."],
    ),
]
# No control character (Unicode category Cc: C0, DEL, C1), NUL included, in a metadata
# key or value: they end up in logs, CSV exports and terminals. One class, anchored at
# both ends: linear time, and the same meaning in Python and ECMA-262.
NO_CONTROL_CHARS = r"^[^\x00-\x1f\x7f-\x9f]*$"
MetadataKey = Annotated[str, msgspec.Meta(min_length=1, max_length=64, pattern=NO_CONTROL_CHARS)]
MetadataValue = Annotated[str, msgspec.Meta(max_length=512, pattern=NO_CONTROL_CHARS)]
Metadata = Annotated[
    dict[MetadataKey, MetadataValue],
    msgspec.Meta(
        max_length=16,
        # Litestar's schema generator drops dict constraints; state them here.
        extra_json_schema={
            "description": (
                "Up to 16 string keys (1-64 chars) with string values (≤ 512 chars); "
                "no control characters (U+0000-U+001F, U+007F-U+009F) in either."
            ),
            "extra": {
                "maxProperties": 16,
                "propertyNames": {
                    "type": "string",
                    "minLength": 1,
                    "maxLength": 64,
                    "pattern": NO_CONTROL_CHARS,
                },
                "additionalProperties": {
                    "type": "string",
                    "maxLength": 512,
                    "pattern": NO_CONTROL_CHARS,
                },
            },
        },
    ),
]
CallbackUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=2048,
        pattern=CALLBACK_URL_PATTERN,
        description=(
            "https:// URL (http:// only if the operator allows it), no user name or "
            "password; the service POSTs the finished job there, signed (Standard "
            "Webhooks). Refused unless the operator set WEBHOOK_SIGNING_SECRET."
        ),
    ),
]
StatusName = Literal["pending", "processing", "completed", "failed", "cancelled"]
StepName = Literal["summarize", "checklist"]
ErrorCodeName = Literal[
    "llm_rate_limited",
    "llm_unavailable",
    "llm_timeout",
    "llm_rejected",
    "llm_bad_output",
    "internal",
]


class SubmitJobRequest(msgspec.Struct, forbid_unknown_fields=True):
    input_text: InputText
    metadata: Metadata = msgspec.field(default_factory=dict)
    callback_url: CallbackUrl | None = None


class UsageView(msgspec.Struct):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ResultView(msgspec.Struct):
    summary: str
    checklist: list[str]


class ErrorView(msgspec.Struct):
    code: ErrorCodeName
    message: str


CallbackStatusName = Literal["waiting", "sending", "delivered", "failed"]


class CallbackView(msgspec.Struct):
    """How the job's callback went (null without a callback_url)."""

    status: CallbackStatusName
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None


class JobListItem(msgspec.Struct, omit_defaults=False):
    """A job as lists show it: every field but `input_text`."""

    event_id: str
    status: StatusName
    step: StepName | None
    summary: str | None
    checklist: list[str] | None
    result: ResultView | None
    error: ErrorView | None
    attempts: int
    metadata: dict[str, str]
    usage: UsageView
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    callback: CallbackView | None


class JobView(JobListItem, omit_defaults=False):
    """A job with its input text (single GET, submit)."""

    input_text: str


class JobListView(msgspec.Struct):
    items: list[JobListItem]
    next_cursor: str | None


class ProblemField(msgspec.Struct):
    message: str
    key: str | None = None
    source: str | None = None


class Problem(msgspec.Struct, omit_defaults=True):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    errors: list[ProblemField] | None = None


class HealthView(msgspec.Struct):
    status: str
    checks: dict[str, str] | None = None


def _fields(job: Job) -> dict[str, object]:
    result = job.result
    return {
        "event_id": str(job.event_id),
        "status": job.status.value,
        "step": job.step.value if job.step else None,
        "summary": job.summary,
        "checklist": list(job.checklist) if job.checklist is not None else None,
        "result": ResultView(result.summary, list(result.checklist)) if result else None,
        "error": ErrorView(job.error.code.value, job.error.message) if job.error else None,
        "attempts": job.attempts,
        "metadata": dict(job.metadata),
        "usage": UsageView(
            job.usage.prompt_tokens, job.usage.completion_tokens, job.usage.total_tokens
        ),
        "created_at": job.created_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "callback": _callback(job),
    }


def _callback(job: Job) -> CallbackView | None:
    if job.callback_url is None:
        return None
    delivery = job.callback
    if delivery is None:  # not finished yet: nothing sent so far
        return CallbackView("waiting", 0, None, None, None, None)
    return CallbackView(
        delivery.status.value,
        delivery.attempts,
        delivery.last_status_code,
        delivery.last_error,
        delivery.next_attempt_at,
        delivery.delivered_at,
    )


def job_view(job: Job) -> JobView:
    return JobView(input_text=job.input_text, **_fields(job))  # type: ignore[arg-type]


def job_list_item(job: Job) -> JobListItem:
    return JobListItem(**_fields(job))  # type: ignore[arg-type]


_ENCODER = msgspec.json.Encoder()


def job_document(job: Job) -> bytes:
    """The job object without input_text, as JSON (event streams, callbacks)."""
    return _ENCODER.encode(job_list_item(job))


class CallbackBody(msgspec.Struct):
    type: str
    timestamp: datetime
    data: msgspec.Raw


def callback_body(job: Job, delivery: CallbackDelivery) -> bytes:
    """A callback's POST body: `{"type", "timestamp", "data": <job without input_text>}`."""
    return _ENCODER.encode(
        CallbackBody(delivery.event_type, delivery.occurred_at, msgspec.Raw(job_document(job)))
    )
