"""No key, password or input text in the logs of a full run (DEBUG level, real processes)."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from tests.support.openai_stub import StubServer
from tests.support.served import BIN, served

DB_PASSWORD = "Db-Pa55word-7f3a"  # trust auth ignores it; it still travels in DATABASE_URL
OPENAI_KEY = "sk-test-5e1c0a9d-never-log-me"
MARKER = "ZEBRA-MARKER-41c7"


def with_password(url: str) -> str:
    parts = urlsplit(url)
    netloc = f"{parts.username}:{DB_PASSWORD}@{parts.hostname}:{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.mark.parametrize("dialect", ["postgresql", "sqlite"])
def test_a_full_run_logs_no_secret_and_no_text(
    dialect: str, request: pytest.FixtureRequest, openai_stub: StubServer, tmp_path: Path
) -> None:
    # SQLite too: its driver (aiosqlite) logs every statement's values at DEBUG.
    database_url = (
        with_password(request.getfixturevalue("pg_url"))
        if dialect == "postgresql"
        else f"sqlite:///{tmp_path / 'hygiene.sqlite3'}"
    )
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GUIDELINE"))},
        "DATABASE_URL": database_url,
        "LLM_PROVIDER": "openai",
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai_stub.url,
        "LLM_MAX_ATTEMPTS": "2",
        "LLM_BACKOFF_BASE_S": "0.01",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "DEBUG",
    }
    run = lambda *a: subprocess.run(  # noqa: E731
        [str(BIN), *a], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    logs = [run("migrate").stderr]
    created = run("keys", "create", "alice")
    logs.append(created.stderr)
    key = created.stdout.strip().splitlines()[-1]

    log_file = tmp_path / "serve.log"
    with served(env, log_file) as base:
        auth = {"Authorization": f"Bearer {key}"}
        text = f"Patients {MARKER} should receive oxygen when saturation is below 92 percent."
        job = httpx.post(f"{base}/jobs", json={"input_text": text}, headers=auth).json()
        # A failing job too: the provider rejects it (its message is logged, not our text).
        openai_stub.configure(script=["ok", "400"])
        failing = httpx.post(f"{base}/jobs", json={"input_text": text}, headers=auth).json()
        # Refused requests: a wrong key, a broken rule with the marker in the body.
        httpx.get(f"{base}/jobs", headers={"Authorization": f"Bearer gi_x_{MARKER}"})
        httpx.post(f"{base}/jobs", json={"input_text": text, "metadata": {MARKER: 1}}, headers=auth)
        json_type = auth | {"Content-Type": "application/json"}
        httpx.post(f"{base}/jobs", content=f"{{{MARKER}", headers=json_type)
        deadline = time.monotonic() + 30
        for event_id in (job["event_id"], failing["event_id"]):
            while httpx.get(f"{base}/jobs/{event_id}", headers=auth).json()["status"] in {
                "pending",
                "processing",
            }:
                assert time.monotonic() < deadline
                time.sleep(0.1)
    logs.append(log_file.read_text())
    captured = "\n".join(logs)

    lines = [line for line in captured.splitlines() if line.strip()]
    events = [json.loads(line) for line in lines]  # every line is one JSON event
    assert any(e.get("event_id") == job["event_id"] for e in events), "the run was logged"
    assert any(e.get("event") == "llm_call" for e in events)
    for secret in (key, key.split("_")[-1], DB_PASSWORD, OPENAI_KEY, MARKER):
        assert secret not in captured, f"{secret!r} leaked into the logs"
