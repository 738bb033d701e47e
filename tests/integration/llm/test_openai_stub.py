"""The stub server itself: its control endpoints, fault plans and process mode."""

from __future__ import annotations

import json
import urllib.request
from typing import Any

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
