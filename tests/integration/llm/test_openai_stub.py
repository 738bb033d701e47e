"""The stub server itself: its control endpoints, fault plans and process mode."""

from __future__ import annotations

import http.client
import json
import urllib.request
from typing import Any

import pytest
from tests.support.openai_stub import StubServer, spawn_stub_process


def _post(url: str, payload: dict[str, Any]) -> Any:
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _chat(base: str) -> int:
    request = urllib.request.Request(
        f"{base}/chat/completions",
        data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi."}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def test_seeded_fault_mix_is_reproducible(openai_stub: StubServer) -> None:
    runs = []
    for _ in range(2):
        openai_stub.configure(seed=1, rate_429=0.3, rate_500=0.3)
        runs.append([_chat(openai_stub.url) for _ in range(30)])
    assert runs[0] == runs[1]
    assert {429, 500, 200} <= set(runs[0])


def test_control_endpoints_over_http(openai_stub: StubServer) -> None:
    root = openai_stub.url.removesuffix("/v1")
    assert _post(f"{root}/_stub/config", {"script": ["500"]})["script"] == ["500"]
    assert _chat(openai_stub.url) == 500
    assert _chat(openai_stub.url.removesuffix("/v1")) == 200  # /chat/completions works too
    stats = _get(f"{root}/_stub/stats")
    assert stats["calls"] == 2
    assert stats["by_status"] == {"500": 1, "200": 1}
    assert stats["by_kind"]["summary"] == 2
    _post(f"{root}/_stub/reset", {})
    assert _get(f"{root}/_stub/stats")["calls"] == 0


def test_runs_as_a_process() -> None:
    with spawn_stub_process("--script", "429,ok", "--retry-after-s", "2") as stub:
        assert _chat(stub.url) == 429
        assert _chat(stub.url) == 200
        assert _get(stub.url.removesuffix("/v1") + "/_stub/stats")["calls"] == 2


def test_client_error_actions_answer_their_status(openai_stub: StubServer) -> None:
    openai_stub.configure(script=["403", "404", "422"])
    assert [_chat(openai_stub.url) for _ in range(3)] == [403, 404, 422]


def test_a_429_carries_retry_after_ms_when_set(openai_stub: StubServer) -> None:
    openai_stub.configure(script=["429"], retry_after_ms=250)
    with pytest.raises(urllib.error.HTTPError) as refused:
        _chat_raw(openai_stub.url)
    assert refused.value.code == 429
    assert refused.value.headers["retry-after-ms"] == "250"
    assert refused.value.headers["retry-after"] is None


def test_drop_cuts_the_reply_short_after_its_headers(openai_stub: StubServer) -> None:
    """A 200 with its headers and a Content-Length, then half the body, then EOF."""
    openai_stub.configure(script=["drop"])
    root = openai_stub.url.removesuffix("/v1").removeprefix("http://")
    connection = http.client.HTTPConnection(root, timeout=10)
    body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi."}]})
    connection.request(
        "POST", "/v1/chat/completions", body, headers={"Content-Type": "application/json"}
    )
    response = connection.getresponse()
    assert response.status == 200
    declared = int(response.headers["content-length"])
    try:
        with pytest.raises(http.client.IncompleteRead) as cut:
            response.read()
    finally:
        connection.close()
    assert 0 < len(cut.value.partial) < declared
    stats = openai_stub.stats()
    assert stats["by_action"] == {"drop": 1}
    assert stats["by_status"] == {"dropped": 1}
    assert stats["in_flight"] == 0


def _chat_raw(base: str) -> None:
    request = urllib.request.Request(
        f"{base}/chat/completions",
        data=json.dumps({"model": "m", "messages": [{"role": "user", "content": "Hi."}]}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10):
        pass
