"""Access settings read by the served process (`guideline-ingest serve`, embedded mode):
`AUTH_DISABLED` and its warning at start, and `TRUSTED_PROXIES` deciding whether the
client address (which anonymous callers are rate limited by) comes from
`X-Forwarded-For`. Both live in the process's start-up and its ASGI server, which the
in-process test client does not run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.ratelimit import in_one_window
from tests.support.served import clean_env, served

pytestmark = pytest.mark.slow

WARNING = "AUTH_DISABLED=true: every /jobs route is open to anonymous callers"
READS_PER_MIN = 2


def _env(tmp_path: Path, **settings: str) -> dict[str, str]:
    defaults = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'access.sqlite3'}",
        "LLM_PROVIDER": "offline",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "RATE_LIMIT_SUBMIT_PER_MIN": "",
        "RATE_LIMIT_READ_PER_MIN": "",
        "TRUSTED_PROXIES": "127.0.0.1",
        "CELERY_BROKER_URL": "",
    }
    return clean_env(**(defaults | settings))


def _events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]


def test_auth_disabled_opens_the_jobs_routes_and_warns_at_every_start(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    env = _env(tmp_path, AUTH_DISABLED="true")
    for _ in range(2):
        with served(env, log) as base:
            response = httpx.get(f"{base}/jobs", timeout=10)  # no key at all
            assert response.status_code == 200, response.text
    warnings = [e for e in _events(log) if e.get("event") == WARNING]
    assert len(warnings) == 2, log.read_text()[-3000:]
    assert {e["level"] for e in warnings} == {"warning"}
    starts = [e for e in _events(log) if e.get("event") == "service starting"]
    assert len(starts) == 2

    # Without it: the key is required, and nothing is said about anonymous access.
    closed_log = tmp_path / "closed.log"
    with served(_env(tmp_path, AUTH_DISABLED="false"), closed_log) as base:
        assert httpx.get(f"{base}/jobs", timeout=10).status_code == 401
    assert "AUTH_DISABLED" not in closed_log.read_text()


def _reads(base: str, forwarded_for: list[str | None]) -> list[httpx.Response]:
    """Anonymous GET /jobs (limited by client address), one per X-Forwarded-For value."""
    with httpx.Client(base_url=base, timeout=10) as client:
        return [
            client.get("/jobs", headers={"X-Forwarded-For": xff} if xff else {})
            for xff in forwarded_for
        ]


@pytest.mark.parametrize(
    ("trusted", "expected"),
    [
        # The peer (127.0.0.1) is the proxy: each forwarded client has its own budget,
        # and the proxy's own requests another one.
        ("127.0.0.1", [200, 200, 429, 200, 200]),
        # The peer is not a trusted proxy: the header is ignored, every request counts
        # against the peer's address, whatever it claims.
        ("10.9.8.7", [200, 200, 429, 429, 429]),
    ],
    ids=["trusted-peer", "untrusted-peer"],
)
def test_x_forwarded_for_names_the_client_only_from_a_trusted_proxy(
    tmp_path: Path, trusted: str, expected: list[int]
) -> None:
    env = _env(
        tmp_path,
        AUTH_DISABLED="true",
        RATE_LIMIT_READ_PER_MIN=str(READS_PER_MIN),
        TRUSTED_PROXIES=trusted,
    )
    with served(env, tmp_path / "serve.log") as base:

        def run(attempt: int) -> list[httpx.Response]:
            a, b = f"203.0.113.{10 + attempt}", f"198.51.100.{10 + attempt}"
            return _reads(base, [a, a, a, b, None])

        responses = in_one_window(run)

    assert [r.status_code for r in responses] == expected, [r.text for r in responses]
    assert all(r.headers["ratelimit-limit"] == str(READS_PER_MIN) for r in responses)
