"""A local OpenAI-compatible chat completions server for tests and benchmarks.

Fully async (aiohttp, one event loop, no thread per request), deterministic, and
with fault injection. Only the standard library and aiohttp, so it also runs as a
plain script:

    python tests/support/openai_stub.py --port 0 --latency-ms 1000
    # prints "LISTENING <port>" once bound; base URL http://127.0.0.1:<port>/v1

Endpoints:
- `POST /v1/chat/completions` (also `/chat/completions`): a checklist request (one
  with a `response_format` JSON schema, or whose system prompt mentions a checklist)
  gets `{"items": [...]}` made from the user message; any other request gets a
  summary (the user message's first two sentences). Usage counts words. A reply
  longer than the request's `max_completion_tokens` (or `max_tokens`) words is cut
  there, with `finish_reason: "length"`, as a real server does.
- `POST /_stub/config`: change settings live (JSON object, any subset of
  `latency_ms`, `script`, `seed`, `rate_429`, `rate_500`, `retry_after_s`,
  `retry_after_ms`, `hang_s`).
  `script` is a list of per-call actions taken in arrival order (then "ok");
  `seed` with `rate_429` / `rate_500` draws a seeded random mix instead.
- `GET /_stub/stats`, `GET /_stub/requests` (recent request bodies), `POST /_stub/reset`
  (counters cleared, settings back to the start-up ones).

Actions: ok, 429, 500, 400, 401, 403, 404, 422, hang, drop, malformed,
schema_ignored_array, fenced, bullets, refusal, content_filter, invalid_json.
`drop` sends the status line, the headers and half of a good reply's body, then
closes the connection (a server or proxy dying mid-response). A 429 carries
`retry-after` when `retry_after_s` is set and `retry-after-ms` when `retry_after_ms` is.

In-process: `async with StubServer() as stub:` (on the caller's loop) or
`with StubServer().running_in_thread() as stub:` (own loop in a thread); either way
`stub.url`, `stub.configure(...)`, `stub.stats()`, `stub.requests()`, `stub.reset()`.
As a child process: `with spawn_stub_process(latency_ms=1000) as proc: proc.url`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Self, TypeVar

from aiohttp import web

ACTIONS = frozenset(
    {
        "ok",
        "429",
        "500",
        "400",
        "401",
        "403",
        "404",
        "422",
        "hang",
        "drop",
        "malformed",
        "schema_ignored_array",
        "fenced",
        "bullets",
        "refusal",
        "content_filter",
        "invalid_json",
    }
)
_CONFIG_KEYS = frozenset(
    {
        "latency_ms",
        "script",
        "seed",
        "rate_429",
        "rate_500",
        "retry_after_s",
        "retry_after_ms",
        "hang_s",
    }
)
_T = TypeVar("_T")
_TAG = re.compile(r"</?[A-Za-z_][\w-]*>")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"\S+")


@dataclass(slots=True)
class StubConfig:
    latency_ms: float = 0.0
    script: list[str] = field(default_factory=list)
    seed: int | None = None
    rate_429: float = 0.0
    rate_500: float = 0.0
    retry_after_s: float | None = None
    retry_after_ms: float | None = None
    hang_s: float = 300.0

    def updated(self, changes: dict[str, Any]) -> StubConfig:
        unknown = set(changes) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown settings: {sorted(unknown)}")
        script = changes.get("script")
        if script is not None:
            if not isinstance(script, list) or any(a not in ACTIONS for a in script):
                raise ValueError(f"script must be a list of {sorted(ACTIONS)}")
            changes = {**changes, "script": list(script)}
        return replace(self, **changes)


@dataclass(slots=True)
class _Stats:
    calls: int = 0
    by_kind: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    # how many calls presented each bearer key (test keys only; "" = no bearer key)
    by_key: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0

    def clear(self) -> None:
        """Counters back to zero; calls still in flight stay counted."""
        self.calls = 0
        for counter in (self.by_kind, self.by_status, self.by_action, self.by_key):
            counter.clear()
        self.max_in_flight = self.in_flight

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls,
            "by_kind": {"summary": 0, "checklist": 0, **self.by_kind},
            "by_status": dict(self.by_status),
            "by_action": dict(self.by_action),
            "by_key": dict(self.by_key),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


class StubState:
    """Settings, the fault plan and counters. Lives on the server's event loop."""

    def __init__(self, config: StubConfig, record_limit: int = 200) -> None:
        self.initial = config
        self.config = replace(config, script=list(config.script))
        self.stats = _Stats()
        self.recent: deque[dict[str, Any]] = deque(maxlen=record_limit)
        self._rng = random.Random(config.seed)
        self._ids = 0

    def configure(self, changes: dict[str, Any]) -> None:
        self.config = self.config.updated(changes)
        if "seed" in changes:
            self._rng = random.Random(self.config.seed)

    def reset(self) -> None:
        self.config = replace(self.initial, script=list(self.initial.script))
        self._rng = random.Random(self.config.seed)
        self.stats.clear()
        self.recent.clear()

    def next_action(self) -> str:
        if self.config.script:
            return self.config.script.pop(0)
        if self.config.rate_429 or self.config.rate_500:
            draw = self._rng.random()
            if draw < self.config.rate_429:
                return "429"
            if draw < self.config.rate_429 + self.config.rate_500:
                return "500"
        return "ok"

    def next_id(self) -> str:
        self._ids += 1
        return f"{self._ids:08d}"


# -- the HTTP app ----------------------------------------------------------------


def build_app(state: StubState) -> web.Application:
    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.router.add_post("/v1/chat/completions", _chat_handler(state))
    app.router.add_post("/chat/completions", _chat_handler(state))
    app.router.add_post("/_stub/config", _config_handler(state))
    app.router.add_get("/_stub/stats", _stats_handler(state))
    app.router.add_get("/_stub/requests", _requests_handler(state))
    app.router.add_post("/_stub/reset", _reset_handler(state))
    return app


Handler = Callable[[web.Request], Any]


def _chat_handler(state: StubState) -> Handler:
    async def handle(request: web.Request) -> web.StreamResponse:
        stats = state.stats
        stats.in_flight += 1
        stats.max_in_flight = max(stats.max_in_flight, stats.in_flight)
        try:
            response = await _chat(state, request)
            status = "dropped" if isinstance(response, _CutShort) else str(response.status)
            stats.by_status[status] += 1
            return response
        finally:
            stats.in_flight -= 1

    return handle


async def _chat(state: StubState, request: web.Request) -> web.StreamResponse:
    request_id = f"req_stub_{state.next_id()}"
    try:
        body = await request.json()
    except ValueError:
        return _error(400, "invalid_request_error", "The body is not valid JSON.", request_id)
    if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return _error(400, "invalid_request_error", "'messages' is required.", request_id)
    kind = "checklist" if _is_checklist(body) else "summary"
    action = state.next_action()
    state.stats.calls += 1
    state.stats.by_kind[kind] += 1
    state.stats.by_action[action] += 1
    state.recent.append(body)
    config = state.config
    if action == "hang":
        await asyncio.sleep(config.hang_s)
    elif config.latency_ms > 0:
        await asyncio.sleep(config.latency_ms / 1000)
    auth = request.headers.get("Authorization")
    scheme, _, key = (auth or "").partition(" ")
    state.stats.by_key[key if scheme == "Bearer" else ""] += 1
    if action == "drop":
        return await _drop_mid_response(request, _reply("ok", kind, body, config, request_id, auth))
    return _reply(action, kind, body, config, request_id, auth)


class _CutShort(web.StreamResponse):
    """A reply whose connection was closed before its body was complete."""


async def _drop_mid_response(request: web.Request, reply: web.Response) -> web.StreamResponse:
    """Send `reply`'s status, headers and the first half of its body, then close the
    connection: the client sees a response cut short (fewer bytes than Content-Length)."""
    payload = bytes(reply.body) if isinstance(reply.body, bytes | bytearray) else b""
    partial = _CutShort(status=reply.status, headers=reply.headers)
    partial.content_length = len(payload)
    await partial.prepare(request)
    await partial.write(payload[: len(payload) // 2])
    transport = request.transport
    if transport is not None:
        transport.close()
    return partial


def _reply(
    action: str,
    kind: str,
    body: dict[str, Any],
    config: StubConfig,
    request_id: str,
    authorization: str | None = None,
) -> web.Response:
    if action == "429":
        headers = {}
        if config.retry_after_s is not None:
            headers["retry-after"] = _number(config.retry_after_s)
        if config.retry_after_ms is not None:
            headers["retry-after-ms"] = _number(config.retry_after_ms)
        return _error(429, "rate_limit_error", "Rate limit reached.", request_id, headers)
    if action == "500":
        return _error(500, "server_error", "The server had an error.", request_id)
    if action == "400":
        return _error(400, "invalid_request_error", "Invalid request.", request_id)
    if action == "401":
        # Like OpenAI's: the message quotes part of the key it was sent.
        key = (authorization or "").removeprefix("Bearer ")
        quoted = f"{key[:3]}*****{key[-4:]}" if len(key) > 8 else key
        message = f"Incorrect API key provided: {quoted}. You can find your API key at ..."
        return _error(401, "invalid_request_error", message, request_id)
    if action == "403":
        return _error(403, "permission_error", "This model is not allowed.", request_id)
    if action == "404":
        return _error(404, "not_found_error", "The model does not exist.", request_id)
    if action == "422":
        return _error(422, "invalid_request_error", "The request was unprocessable.", request_id)
    if action == "invalid_json":
        return web.Response(
            status=200,
            text="<html>not json",
            content_type="application/json",
            headers={"x-request-id": request_id},
        )
    user_text = _user_text(body)
    content, finish, refusal = _content(action, kind, user_text)
    return _completion(body, content, finish, refusal, request_id)


def _content(action: str, kind: str, user_text: str) -> tuple[str | None, str, str | None]:
    """(message content, finish_reason, refusal) for a successful HTTP reply."""
    if action == "refusal":
        return None, "stop", "I can't help with that."
    if action == "content_filter":
        return "", "content_filter", None
    if action == "malformed":
        return ('{"items": [' if kind == "checklist" else ""), "stop", None
    if kind == "summary":
        return summary_of(user_text), "stop", None
    items = checklist_of(user_text)
    if action == "schema_ignored_array":
        return json.dumps(items), "stop", None
    if action == "fenced":
        return f"```json\n{json.dumps({'items': items}, indent=2)}\n```", "stop", None
    if action == "bullets":
        return "Here is the checklist:\n" + "\n".join(f"- {i}" for i in items), "stop", None
    return json.dumps({"items": items}), "stop", None


def _sentences(text: str) -> list[str]:
    cleaned = _TAG.sub(" ", text)
    return [s.strip() for s in _SENTENCE_END.split(cleaned) if s.strip()]


def summary_of(user_text: str) -> str:
    """The stub's summary: the first two sentences, trimmed to 400 characters."""
    summary = " ".join(_sentences(user_text)[:2])[:400].strip()
    return summary or "The text was empty."


def checklist_of(user_text: str) -> list[str]:
    """The stub's checklist: "Review <first words>." for up to five sentences."""
    items = []
    for sentence in _sentences(user_text)[:5]:
        words = _WORD.findall(sentence)[:6]
        phrase = " ".join(words).rstrip(".,;:!?")
        if phrase:
            items.append(f"Review {phrase}.")
    return items or ["Review the text."]


def _user_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for message in body.get("messages", []):
        if isinstance(message, dict) and message.get("role") == "user":
            parts.append(_text_of(message.get("content")))
    return "\n".join(parts)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            str(p.get("text", "")) for p in content if isinstance(p, dict) and "text" in p
        )
    return ""


def _is_checklist(body: dict[str, Any]) -> bool:
    response_format = body.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return True
    return any(
        isinstance(m, dict)
        and m.get("role") in {"system", "developer"}
        and "checklist" in _text_of(m.get("content")).lower()
        for m in body.get("messages", [])
    )


def _completion(
    body: dict[str, Any],
    content: str | None,
    finish_reason: str,
    refusal: str | None,
    request_id: str,
) -> web.Response:
    prompt_tokens = sum(
        len(_WORD.findall(_text_of(m.get("content"))))
        for m in body.get("messages", [])
        if isinstance(m, dict)
    )
    cap = body.get("max_completion_tokens", body.get("max_tokens"))
    if isinstance(cap, int) and content and len(_WORD.findall(content)) > cap:
        content = " ".join(_WORD.findall(content)[:cap])
        finish_reason = "length"
    completion_tokens = len(_WORD.findall(content or refusal or ""))
    payload = {
        "id": f"chatcmpl-{request_id}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": str(body.get("model", "stub-model")),
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "finish_reason": finish_reason,
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return web.json_response(payload, headers={"x-request-id": request_id})


def _error(
    status: int,
    kind: str,
    message: str,
    request_id: str,
    headers: dict[str, str] | None = None,
) -> web.Response:
    payload = {"error": {"message": message, "type": kind, "param": None, "code": str(status)}}
    return web.json_response(
        payload, status=status, headers={"x-request-id": request_id, **(headers or {})}
    )


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _config_handler(state: StubState) -> Handler:
    async def handle(request: web.Request) -> web.Response:
        try:
            changes = await request.json()
            if not isinstance(changes, dict):
                raise ValueError("expected a JSON object")
            state.configure(changes)
        except (ValueError, TypeError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response(_config_dict(state.config))

    return handle


def _config_dict(config: StubConfig) -> dict[str, Any]:
    return {key: getattr(config, key) for key in sorted(_CONFIG_KEYS)}


def _stats_handler(state: StubState) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(state.stats.as_dict())

    return handle


def _requests_handler(state: StubState) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        return web.json_response(list(state.recent))

    return handle


def _reset_handler(state: StubState) -> Handler:
    async def handle(_: web.Request) -> web.Response:
        state.reset()
        return web.json_response({"reset": True})

    return handle


# -- running it -------------------------------------------------------------------


class StubServer:
    """The stub, in this process: on the caller's loop, or on its own loop in a thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency_ms: float = 0.0,
        config: StubConfig | None = None,
        record_limit: int = 200,
    ) -> None:
        base = config or StubConfig()
        if latency_ms:
            base = replace(base, latency_ms=latency_ms)
        self.host = host
        self.state = StubState(base, record_limit)
        self._requested_port = port
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None

    @property
    def url(self) -> str:
        """The base URL to give the OpenAI client."""
        return f"http://{self.host}:{self.port}/v1"

    # on the caller's loop
    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        self.port = sock.getsockname()[1]
        runner = web.AppRunner(
            build_app(self.state),
            handle_signals=False,
            access_log=None,
            handler_cancellation=True,  # a client that gives up cancels its "hang"
            shutdown_timeout=1.0,
        )
        await runner.setup()
        await web.SockSite(runner, sock, backlog=4096, shutdown_timeout=1.0).start()
        self._runner = runner

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # on its own loop, in a thread
    def start_in_thread(self) -> Self:
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            try:
                await self.start()
                self._stop = asyncio.Event()
            except BaseException as exc:
                failure.append(exc)
                raise
            finally:
                started.set()
            await self._stop.wait()
            await self.stop()

        self._thread = threading.Thread(
            target=lambda: asyncio.run(serve()), name="openai-stub", daemon=True
        )
        self._thread.start()
        started.wait(10)
        if failure:
            raise failure[0]
        return self

    def stop_thread(self) -> None:
        if self._thread is None or self._loop is None or self._stop is None:
            return
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)
        self._thread = None

    @contextlib.contextmanager
    def running_in_thread(self) -> Iterator[Self]:
        self.start_in_thread()
        try:
            yield self
        finally:
            self.stop_thread()

    # control, from any thread
    def configure(self, **changes: Any) -> None:
        """Change settings now (see `StubConfig`); e.g. `configure(script=["429", "ok"])`."""
        self._on_loop(lambda: self.state.configure(changes))

    def reset(self) -> None:
        self._on_loop(self.state.reset)

    def stats(self) -> dict[str, Any]:
        return self._on_loop(self.state.stats.as_dict)

    def requests(self) -> list[dict[str, Any]]:
        """Recent request bodies, oldest first."""
        return self._on_loop(lambda: list(self.state.recent))

    def _on_loop(self, fn: Callable[[], _T]) -> _T:
        loop = self._loop
        if self._thread is None or loop is None or threading.current_thread() is self._thread:
            return fn()

        async def run() -> _T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), loop).result(10)


@dataclass(slots=True)
class StubProcess:
    process: subprocess.Popen[str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


@contextlib.contextmanager
def spawn_stub_process(*args: str, latency_ms: float = 0.0) -> Iterator[StubProcess]:
    """Run the stub as a child process (for workers in other processes, benchmarks)."""
    command = [sys.executable, str(Path(__file__).resolve()), "--port", "0"]
    command += ["--latency-ms", str(latency_ms), *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.startswith("LISTENING "):
            raise RuntimeError(f"the stub did not start: {line!r}")
        yield StubProcess(process, int(line.split()[1]))
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A local OpenAI-compatible stub server.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--rate-429", type=float, default=0.0)
    parser.add_argument("--rate-500", type=float, default=0.0)
    parser.add_argument("--retry-after-s", type=float, default=None)
    parser.add_argument("--hang-s", type=float, default=300.0)
    parser.add_argument("--script", default="", help="comma-separated actions, e.g. 429,ok")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    config = StubConfig().updated(
        {
            "latency_ms": args.latency_ms,
            "seed": args.seed,
            "rate_429": args.rate_429,
            "rate_500": args.rate_500,
            "retry_after_s": args.retry_after_s,
            "hang_s": args.hang_s,
            "script": [a for a in args.script.split(",") if a],
        }
    )
    server = StubServer(host=args.host, port=args.port, config=config)
    await server.start()
    print(f"LISTENING {server.port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop()


def main(argv: list[str] | None = None) -> None:
    asyncio.run(_serve(_parse_args(argv)))


if __name__ == "__main__":
    main()
