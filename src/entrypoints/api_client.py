"""A small client of the service's public HTTP API, for the command line (httpx, async).

Used by `submit` and `jobs`: the key from `--key`, `--key-file` or the environment;
refusals turned into one printable line; and `follow`, which reads a job's event
stream (`GET /jobs/{id}/events`) until the job ends.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from entrypoints.terminal import one_line

API_KEY_ENV = "GUIDELINE_INGEST_API_KEY"
DEFAULT_URL = "http://127.0.0.1:8000"
TERMINAL = frozenset({"completed", "failed", "cancelled"})
Job = dict[str, Any]


class ClientError(Exception):
    """One line for stderr, and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


class Refused(ClientError):
    """The service answered with an error (problem details)."""

    def __init__(self, message: str, http_status: int) -> None:
        super().__init__(message)
        self.http_status = http_status


class WaitTimedOut(ClientError):
    """`follow` gave up: the job is still running on the service."""

    def __init__(self, message: str, event_id: str) -> None:
        super().__init__(message)
        self.event_id = event_id


def resolve_key(key: str | None, key_file: str | None) -> str | None:
    """`--key`, else the first line of `--key-file`, else $GUIDELINE_INGEST_API_KEY."""
    if key:
        return key
    if key_file:
        try:
            lines = Path(key_file).read_text(encoding="utf-8").split()
        except (OSError, UnicodeDecodeError) as exc:
            raise ClientError(
                f"cannot read the key file {key_file}: {type(exc).__name__}", 2
            ) from None
        if not lines:
            raise ClientError(f"the key file {key_file} is empty", 2)
        return lines[0]
    return os.environ.get(API_KEY_ENV) or None


def refusal(response: httpx.Response) -> Refused:
    """The problem details of an error answer, on one line."""
    detail = response.reason_phrase
    try:
        body = response.json()
        detail = str(body.get("detail") or body.get("title") or detail)
        errors = body.get("errors") or []
        if errors:
            fields = "; ".join(f"{e.get('key', '?')}: {e.get('message')}" for e in errors)
            detail += f" ({fields})"
    except (ValueError, AttributeError):
        pass
    message = f"the service refused the request: {response.status_code} {one_line(detail)}"
    return Refused(message, response.status_code)


def _path(event_id: str) -> str:
    return f"/jobs/{quote(event_id, safe='')}"


class ApiClient:
    """The /jobs routes of one service, with one key."""

    def __init__(self, url: str, key: str | None, *, timeout_s: float = 30.0) -> None:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.url = url
        self._client = httpx.AsyncClient(
            base_url=url,
            headers=headers,
            timeout=httpx.Timeout(timeout_s),
            limits=httpx.Limits(max_connections=64),
        )

    async def __aenter__(self) -> ApiClient:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._client.aclose()

    async def _call(
        self, method: str, path: str, *, ok: tuple[int, ...] = (200,), **kwargs: Any
    ) -> httpx.Response:
        try:
            response = await self._client.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise ClientError(f"cannot reach {self.url}: {type(exc).__name__}") from None
        if response.status_code not in ok:
            raise refusal(response)
        return response

    async def submit(self, text: str, idempotency_key: str | None) -> tuple[Job, bool]:
        """The job, and whether it is new (202) rather than an idempotent replay (200)."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        response = await self._call(
            "POST", "/jobs", ok=(200, 202), json={"input_text": text}, headers=headers
        )
        job: Job = response.json()
        return job, response.status_code == 202

    async def get(self, event_id: str) -> Job:
        job: Job = (await self._call("GET", _path(event_id))).json()
        return job

    async def list_jobs(self, statuses: list[str], limit: int, cursor: str | None) -> Job:
        params: dict[str, Any] = {"limit": limit}
        if statuses:
            params["status"] = statuses
        if cursor:
            params["cursor"] = cursor
        page: Job = (await self._call("GET", "/jobs", params=params)).json()
        return page

    async def cancel(self, event_id: str) -> Job:
        job: Job = (await self._call("POST", f"{_path(event_id)}/cancel")).json()
        return job

    async def retry(self, event_id: str) -> Job:
        job: Job = (await self._call("POST", f"{_path(event_id)}/retry", ok=(202,))).json()
        return job

    async def delete(self, event_id: str) -> None:
        await self._call("DELETE", _path(event_id), ok=(204,))

    async def follow(
        self,
        job: Job,
        *,
        timeout_s: float,
        on_change: Callable[[Job], None] | None = None,
    ) -> Job:
        """Follows the job's event stream until it ends; `on_change` sees each new
        status/step. A dropped stream is read again after a GET that catches up."""
        seen: tuple[str, str | None] | None = None

        def show(state: Job) -> None:
            nonlocal seen
            now = (state["status"], state.get("step"))
            if now != seen and on_change is not None:
                on_change(state)
            seen = now

        show(job)
        try:
            async with asyncio.timeout(timeout_s):
                while job["status"] not in TERMINAL:
                    last = await self._read_events(job["event_id"], show)
                    if last is not None:
                        job = {**job, **last}  # the stream's jobs carry no input_text
                    if job["status"] in TERMINAL:
                        break
                    await asyncio.sleep(1.0)
                    job = await self.get(job["event_id"])
                    show(job)
        except TimeoutError:
            message = f"gave up waiting for {job['event_id']} after {timeout_s:.0f} s"
            raise WaitTimedOut(message, job["event_id"]) from None
        return job

    async def _read_events(self, event_id: str, show: Callable[[Job], None]) -> Job | None:
        """`GET /jobs/{id}/events` (Server-Sent Events) to its end; the last job seen."""
        last: Job | None = None
        try:
            async with self._client.stream(
                "GET",
                f"{_path(event_id)}/events",
                headers={"Accept": "text/event-stream"},
                timeout=httpx.Timeout(30.0, read=60.0),  # a comment comes every 15 s
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    raise refusal(response)
                data: list[str] = []
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        data.append(line[5:].removeprefix(" "))
                    elif not line and data:
                        last = json.loads("\n".join(data))
                        data = []
                        show(last)
        except httpx.HTTPError:
            pass  # dropped: the caller catches up and reads again
        return last
