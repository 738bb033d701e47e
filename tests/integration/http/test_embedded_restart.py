"""Killing the embedded server with jobs unfinished and starting it again finishes them.

Real processes: `guideline-ingest serve` (embedded mode: SQLite, in-process
dispatcher) talking to the OpenAI-compatible stub (tests/support/openai_stub.py)
with a slow latency, so the jobs are still pending/processing when the server is
killed with SIGKILL. The second server (same database, the stub now fast) must
finish every one of them.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[3]
CLI = ROOT / ".venv" / "bin" / "guideline-ingest"
STUB = ROOT / "tests" / "support" / "openai_stub.py"
JOBS = 5

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _stub(latency_ms: int) -> Iterator[str]:
    """The stub as a child process; yields its base URL (http://127.0.0.1:<port>)."""
    process = subprocess.Popen(
        [sys.executable, str(STUB), "--port", "0", "--latency-ms", str(latency_ms)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("LISTENING "), f"the stub did not start: {line!r}"
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def _server(env: dict[str, str], log: Path) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = _free_port()
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(CLI), "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, f"the server exited:\n{log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{base}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server never got ready:\n{log.read_text()}"
            time.sleep(0.1)
        yield process, base
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _job(base: str, key: str, event_id: str) -> dict[str, Any]:
    response = httpx.get(
        f"{base}/jobs/{event_id}", headers={"Authorization": f"Bearer {key}"}, timeout=5
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_killed_embedded_server_finishes_its_jobs_after_a_restart(tmp_path: Path) -> None:
    assert CLI.is_file(), f"{CLI} missing: run `make install`"
    log = tmp_path / "server.log"
    with _stub(latency_ms=3000) as stub:
        env = {
            k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL" and k != "AUTH_DISABLED"
        }
        env.update(
            DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
            LLM_PROVIDER="openai",
            OPENAI_API_KEY="sk-test",
            OPENAI_BASE_URL=f"{stub}/v1",
            LLM_TIMEOUT_S="30",
            LOG_FORMAT="json",
        )
        made = subprocess.run(
            [str(CLI), "keys", "create", "alice"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        key = made.stdout.strip().splitlines()[-1]
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
        httpx.post(f"{stub}/_stub/config", json={"latency_ms": 20}, timeout=5).raise_for_status()
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
