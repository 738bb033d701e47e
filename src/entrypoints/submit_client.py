"""`guideline-ingest submit FILE [--wait]`: a small HTTP client of a running service."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import httpx

API_KEY_ENV = "GUIDELINE_INGEST_API_KEY"
_SPINNER = "|/-\\"


class SubmitError(Exception):
    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.status = status


def _read_text(file: str) -> str:
    try:
        text = sys.stdin.read() if file == "-" else Path(file).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SubmitError(f"no such file: {file}", 2) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubmitError(f"cannot read {file}: {exc}", 2) from None
    if not text.strip():
        raise SubmitError(f"{file} holds no text", 2)
    return text


def _refusal(response: httpx.Response) -> SubmitError:
    try:
        body = response.json()
        detail = body.get("detail") or body.get("title") or response.reason_phrase
        errors = body.get("errors") or []
        if errors:
            detail += (
                " (" + "; ".join(f"{e.get('key', '?')}: {e.get('message')}" for e in errors) + ")"
            )
    except (ValueError, AttributeError):
        detail = response.reason_phrase
    return SubmitError(f"the service refused the request: {response.status_code} {detail}")


class _Progress:
    """One line per status/step change; a spinner in between when stderr is a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._last: str | None = None
        self._spin = itertools.cycle(_SPINNER)

    def show(self, job: dict[str, Any]) -> None:
        state = job["status"] + (f" ({job['step']})" if job.get("step") else "")
        if state != self._last:
            self._clear()
            self._stream.write(f"{job['event_id']}: {state}\n")
            self._last = state
        elif self._tty:
            self._stream.write(f"\r{next(self._spin)} ")
        self._stream.flush()

    def _clear(self) -> None:
        if self._tty:
            self._stream.write("\r  \r")


def _print_result(job: dict[str, Any]) -> None:
    print("Summary:")
    print(job["summary"])
    print()
    print("Checklist:")
    for number, item in enumerate(job["checklist"] or [], start=1):
        print(f"{number}. {item}")


def _wait(client: httpx.Client, event_id: str, timeout_s: float) -> dict[str, Any]:
    progress = _Progress(sys.stderr)
    deadline = time.monotonic() + timeout_s
    delay = 0.2
    while True:
        response = client.get(f"/jobs/{event_id}")
        if response.status_code != 200:
            raise _refusal(response)
        job: dict[str, Any] = response.json()
        progress.show(job)
        if job["status"] in {"completed", "failed", "cancelled"}:
            return job
        if time.monotonic() > deadline:
            raise SubmitError(f"gave up waiting for {event_id} after {timeout_s:.0f} s")
        time.sleep(delay)
        delay = min(delay * 1.5, 2.0)


def run_submit(args: argparse.Namespace) -> int:
    try:
        return _submit(args)
    except SubmitError as exc:
        print(f"guideline-ingest: {exc}", file=sys.stderr)
        return exc.status


def _submit(args: argparse.Namespace) -> int:
    text = _read_text(args.file)
    key = args.key or os.environ.get(API_KEY_ENV)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if args.idempotency_key:
        headers["Idempotency-Key"] = args.idempotency_key
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30.0) as client:
            response = client.post("/jobs", json={"input_text": text})
            if response.status_code not in (200, 202):
                raise _refusal(response)
            job: dict[str, Any] = response.json()
            if not args.json:
                print(job["event_id"], flush=True)
            if args.wait:
                job = _wait(client, job["event_id"], args.timeout)
    except httpx.HTTPError as exc:
        raise SubmitError(f"cannot reach {args.url}: {type(exc).__name__}") from None
    if args.json:
        print(json.dumps(job, ensure_ascii=False, indent=2))
    if not args.wait:
        return 0
    if job["status"] == "completed":
        if not args.json:
            _print_result(job)
        return 0
    if job["status"] == "failed":
        error = job.get("error") or {}
        raise SubmitError(
            f"job {job['event_id']} failed: {error.get('code')}: {error.get('message')}"
        )
    raise SubmitError(f"job {job['event_id']} was cancelled")
