"""Hostile text does not freeze the embedded server: health answers while such jobs run.

A real `guideline-ingest serve` in embedded mode (SQLite, in-process jobs, the
offline provider) gets one 200,000-character job per shape built to be slow
(tests/support/hostile_text.py), three times over. From the first submit to the
last completion `GET /health/live` is asked every 20 ms and must answer within
0.5 s each time; every job must complete. (Before the linear patterns, the run of
dots alone held the GIL for minutes.)
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest
from tests.support.hostile_text import shapes
from tests.support.served import clean_env, make_key, served

pytestmark = pytest.mark.slow

ISSUE_SHAPES = ("dots", "bangs_and_spaces", "line_of_spaces", "endless_sentence", "short_lines")
HEALTH_BOUND_S = 0.5
ROUNDS = 3  # each shape three times: the jobs overlap, as under load


def _probe(base: str, stop: threading.Event, latencies: list[float]) -> None:
    with httpx.Client(base_url=base) as http:
        while not stop.is_set():
            started = time.perf_counter()
            try:
                ok = http.get("/health/live", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            latencies.append(time.perf_counter() - started if ok else float("inf"))
            time.sleep(0.02)


def test_health_answers_quickly_while_hostile_text_is_processed(tmp_path: Path) -> None:
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        LLM_PROVIDER="offline",
        LOG_FORMAT="json",
    )
    env.pop("CELERY_BROKER_URL", None)
    env.pop("AUTH_DISABLED", None)
    key = make_key(env)
    headers = {"Authorization": f"Bearer {key}"}
    texts = shapes()
    latencies: list[float] = []
    stop = threading.Event()
    with served(env, tmp_path / "server.log") as base, httpx.Client(base_url=base) as http:
        prober = threading.Thread(target=_probe, args=(base, stop, latencies))
        prober.start()
        try:
            ids = []
            for _ in range(ROUNDS):
                for name in ISSUE_SHAPES:
                    body = {"input_text": texts[name]}
                    response = http.post("/jobs", json=body, headers=headers, timeout=30)
                    assert response.status_code == 202, response.text
                    ids.append(response.json()["event_id"])
            pending = set(ids)
            deadline = time.monotonic() + 180
            while pending:
                assert time.monotonic() < deadline, f"jobs still running: {pending}"
                for event_id in list(pending):
                    job = http.get(f"/jobs/{event_id}", headers=headers, timeout=10).json()
                    if job["status"] in ("completed", "failed", "cancelled"):
                        assert job["status"] == "completed", job
                        pending.discard(event_id)
                time.sleep(0.1)
        finally:
            stop.set()
            prober.join()

    assert len(latencies) >= 20, "health was hardly probed while the jobs ran"
    assert max(latencies) < HEALTH_BOUND_S, sorted(latencies)[-5:]
