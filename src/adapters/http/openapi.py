"""The served OpenAPI document: Litestar's, corrected to state exactly what the server enforces.

Litestar's generator cannot say everything (it leaves `additionalProperties`
out for a Struct that forbids unknown fields, puts string rules beside a
`oneOf` instead of on its string branch, and offers `null` for query and
header parameters that can only be absent). A fuzzer such as Schemathesis
holds the server to this document, so these passes make it exact.
"""

from __future__ import annotations

import copy
from typing import Any

_STRING_KEYWORDS = ("minLength", "maxLength", "pattern", "format")
_NULL = {"type": "null"}
_JOB_ID = {"event_id": "$response.body#/event_id"}
_LINKS = {
    "GetJob": {"operationId": "getJob", "parameters": _JOB_ID},
    "CancelJob": {"operationId": "cancelJob", "parameters": _JOB_ID},
    "RetryJob": {"operationId": "retryJob", "parameters": _JOB_ID},
    "DeleteJob": {"operationId": "deleteJob", "parameters": _JOB_ID},
}
# (operation id, status) -> links to the operations that take the returned job's id
_LINKED_RESPONSES = {
    ("submitJob", "202"): ("GetJob", "CancelJob", "DeleteJob"),
    ("submitJob", "200"): ("GetJob", "CancelJob", "DeleteJob"),
    ("cancelJob", "200"): ("GetJob", "RetryJob", "DeleteJob"),
    ("retryJob", "202"): ("GetJob", "CancelJob", "DeleteJob"),
    ("getJob", "200"): ("CancelJob", "DeleteJob"),
}
# Response headers the server always sends with these statuses on the /jobs routes.
_STATUS_HEADERS = {
    "401": {
        "WWW-Authenticate": {
            "description": '`Bearer realm="guideline-ingest"`',
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer"},
        }
    },
    "429": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
    "503": {
        "Retry-After": {
            "description": "Seconds to wait before trying again.",
            "required": True,
            "schema": {"type": "string", "pattern": "^[0-9]+$"},
        }
    },
}
_LOCATION = {
    "description": "`/jobs/{event_id}`: where to poll the job.",
    "required": True,
    "schema": {"type": "string", "pattern": "^/jobs/[0-9a-f-]{36}$"},
}


def finalize_openapi(
    document: dict[str, Any], *, callbacks_allow_http: bool = False, callbacks_enabled: bool = True
) -> dict[str, Any]:
    """A corrected copy of Litestar's OpenAPI document (see the module docstring)."""
    doc = copy.deepcopy(document)
    _walk_schemas(doc)
    schemas = doc.get("components", {}).get("schemas", {})
    if "SubmitJobRequest" in schemas:
        # msgspec refuses unknown fields (forbid_unknown_fields=True): say so.
        schemas["SubmitJobRequest"]["additionalProperties"] = False
        properties = schemas["SubmitJobRequest"]["properties"]
        if not callbacks_enabled:
            properties["callback_url"] = {
                "type": "null",
                "description": (
                    "Refused on this deployment (no WEBHOOK_SIGNING_SECRET): it sends no callbacks."
                ),
            }
        elif not callbacks_allow_http:
            _https_only(properties["callback_url"])
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            for parameter in operation.get("parameters", []):
                if parameter.get("in") in ("query", "header", "path"):
                    # Absent is how a client leaves these out; they are never JSON null.
                    parameter["schema"] = _without_null(parameter["schema"])
                if parameter.get("name") == "wait" and parameter.get("in") == "query":
                    # Litestar drops a bound of 0 (`ge=0` is falsy): state it.
                    parameter["schema"]["minimum"] = 0
            _document_responses(path, operation)
    return doc


def _https_only(schema: dict[str, Any]) -> None:
    """This deployment refuses http:// callbacks (CALLBACKS_ALLOW_HTTP unset): say so."""
    for branch in [schema, *schema.get("oneOf", [])]:
        if "pattern" in branch:
            branch["pattern"] = branch["pattern"].replace("^https?://", "^https://", 1)


def _document_responses(path: str, operation: dict[str, Any]) -> None:
    operation_id = operation.get("operationId", "")
    for status, response in operation["responses"].items():
        if path.startswith("/jobs"):
            headers = response.setdefault("headers", {})
            headers.update(copy.deepcopy(_STATUS_HEADERS.get(status, {})))
            if (operation_id, status) in (("submitJob", "202"), ("submitJob", "200")) or (
                operation_id == "retryJob" and status == "202"
            ):
                headers["Location"] = copy.deepcopy(_LOCATION)
            if not headers:
                del response["headers"]
        names = _LINKED_RESPONSES.get((operation_id, status), ())
        if names:
            response["links"] = {name: copy.deepcopy(_LINKS[name]) for name in names}


def _walk_schemas(node: Any) -> None:
    """Moves string rules that sit beside a `oneOf` onto its string branch, everywhere."""
    if isinstance(node, dict):
        branches = node.get("oneOf")
        if isinstance(branches, list):
            rules = {key: node.pop(key) for key in _STRING_KEYWORDS if key in node}
            if rules:
                for branch in branches:
                    if isinstance(branch, dict) and branch.get("type") == "string":
                        branch.update(rules)
        for value in node.values():
            _walk_schemas(value)
    elif isinstance(node, list):
        for item in node:
            _walk_schemas(item)


def _without_null(schema: dict[str, Any]) -> dict[str, Any]:
    branches = schema.get("oneOf")
    if not isinstance(branches, list) or _NULL not in branches:
        return schema
    rest = [branch for branch in branches if branch != _NULL]
    outer = {key: value for key, value in schema.items() if key != "oneOf"}
    if len(rest) == 1:
        return {**rest[0], **outer}
    return {**outer, "oneOf": rest}
