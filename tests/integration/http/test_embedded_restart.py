"""Killing the embedded server with jobs unfinished and starting it again finishes them.

Real processes: `guideline-ingest serve` (embedded mode: SQLite, in-process
dispatcher) talking to the OpenAI-compatible stub (tests/support/openai_stub.py)
with a slow latency, so the jobs are still pending/processing when the server is
killed with SIGKILL. The second server (same database, the stub now fast) must
finish every one of them.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.openai_stub import spawn_stub_process
from tests.support.served import make_key, start_serving, stop

JOBS = 5

pytestmark = pytest.mark.slow


@contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    process, base = start_serving(env, log)
    try:
        yield process, base
    finally:
        stop(process)


def _job(base: str, key: str, event_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base}/jobs/{event_id}", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_killed_embedded_server_finishes_its_jobs_after_a_restart(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with spawn_stub_process(latency_ms=3000) as stub:
        env = {
            k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL" and k != "AUTH_DISABLED"
        }
        env.update(
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=stub.url,
            LLM_TIMEOUT_S="30",
            LOG_FORMAT="json",
        )
        key = make_key(env, "alice")
        headers = {"Authorization": f"Bearer {key}"}

        # 1. Jobs submitted, the first LLM calls in flight (3 s each): kill -9.
        with _server(env, log) as (first, base):
            ids = []
            for i in range(JOBS):
                response = httpx.post(
                    f"{base}/jobs",
                    json={"input_text": f"Guideline {i}. Clinicians should check renal function."},
                    headers=headers,
                    timeout=5,
                )
                assert response.status_code == 202, response.text
                ids.append(response.json()["event_id"])
            deadline = time.monotonic() + 5
            while not any(_job(base, key, i)["status"] == "processing" for i in ids):
                assert time.monotonic() < deadline, "no job ever started"
                time.sleep(0.05)
            before = {i: _job(base, key, i) for i in ids}
            first.kill()  # SIGKILL: no shutdown, no hand-back
            first.wait(10)
        assert all(job["status"] in {"pending", "processing"} for job in before.values()), before

        # 2. The stub is fast now; a new server on the same database finishes them all.
        stub_admin = f"http://127.0.0.1:{stub.port}/_stub/config"
        httpx.post(stub_admin, json={"latency_ms": 20}, timeout=5).raise_for_status()
        with _server(env, log) as (_, base):
            deadline = time.monotonic() + 30
            pending = set(ids)
            final: dict[str, dict[str, Any]] = {}
            while pending:
                for event_id in list(pending):
                    job = _job(base, key, event_id)
                    if job["status"] in {"completed", "failed", "cancelled"}:
                        final[event_id] = job
                        pending.discard(event_id)
                assert time.monotonic() < deadline, (
                    f"unfinished after restart: {[_job(base, key, i) for i in pending]}\n"
                    f"{log.read_text()[-3000:]}"
                )
                time.sleep(0.1)

    for event_id, job in final.items():
        assert job["status"] == "completed", job
        assert job["summary"], job
        assert job["checklist"], job
        assert job["result"] == {"summary": job["summary"], "checklist": job["checklist"]}
        assert job["error"] is None
        if before[event_id]["status"] == "processing":
            assert job["attempts"] >= 2, job  # started again after the kill
