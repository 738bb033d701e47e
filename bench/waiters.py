"""Benchmark of live progress: 1,000 waiters on ONE API process while their jobs complete.

Production mode on this machine (a fresh PostgreSQL database, a private Redis, the
OpenAI-compatible stub, one Celery worker, one API process). It submits --waiters
jobs whose LLM calls take --latency-ms each, then attaches one waiter per job —
half long-polls (`GET /jobs/{id}?wait=60`), half event streams
(`GET /jobs/{id}/events`) — and prints, for each kind:

  - the time from a job's completion (its `finished_at`) to its waiter getting the
    finished job (p50 / p99; target p99 <= 200 ms);
  - the API process's extra RSS with every waiter attached (target <= 50 MB);
  - the database transactions committed while the waiters waited, against what
    the jobs themselves need (no per-waiter polling: about 2 reads per waiter).

    .venv/bin/python bench/waiters.py [--waiters 1000] [--latency-ms 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path

import aiohttp
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run_bench import PG_ADMIN, percentile, post_many  # noqa: E402
from tests.integration.celery.celery_stack import PrivateRedis, Stack, StubControl  # noqa: E402


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _commits(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


def _finished_at(job: dict[str, object]) -> float:
    return datetime.fromisoformat(str(job["finished_at"]).replace("Z", "+00:00")).timestamp()


async def long_poll(session: aiohttp.ClientSession, event_id: str) -> float:
    async with session.get(f"/jobs/{event_id}", params={"wait": "60"}) as response:
        if response.status != 200:
            raise AssertionError(f"{response.status}: {await response.text()}")
        job = await response.json()
    received = time.time()
    assert job["status"] == "completed", job
    return received - _finished_at(job)


async def stream(session: aiohttp.ClientSession, event_id: str) -> float:
    async with session.get(f"/jobs/{event_id}/events") as response:
        if response.status != 200:
            raise AssertionError(f"{response.status}: {await response.text()}")
        last: dict[str, object] = {}
        async for raw in response.content:
            line = raw.decode().rstrip("\n")
            if line.startswith("data:"):
                last = json.loads(line[5:])
                if last.get("status") == "completed":
                    received = time.time()
                    return received - _finished_at(last)
    raise AssertionError(f"the stream of {event_id} ended without completing: {last}")


async def attach(
    url: str, key: str, event_ids: list[str], api_pid: int
) -> tuple[list[float], list[float], float]:
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=120)
    headers = {"Authorization": f"Bearer {key}"}
    async with aiohttp.ClientSession(
        url, connector=connector, timeout=timeout, headers=headers
    ) as session:
        polls: list[asyncio.Task[float]] = []
        streams: list[asyncio.Task[float]] = []
        # Waiters arrive over about a second (100 at a time), as clients do.
        for start in range(0, len(event_ids), 100):
            for index, event_id in enumerate(event_ids[start : start + 100], start):
                if index % 2:
                    streams.append(asyncio.create_task(stream(session, event_id)))
                else:
                    polls.append(asyncio.create_task(long_poll(session, event_id)))
            await asyncio.sleep(0.1)
        peak = 0.0
        while not all(t.done() for t in polls + streams):
            peak = max(peak, _rss_mb(api_pid))
            await asyncio.sleep(0.1)
        return [t.result() for t in polls], [t.result() for t in streams], peak


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--waiters", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=4000.0)
    args = parser.parse_args()
    name = f"gi_bench_{uuid.uuid4().hex[:12]}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    log_dir = Path(tempfile.mkdtemp(prefix="gi-waiters-"))
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    redis = PrivateRedis(log_dir)
    stub: StubControl | None = None
    stack: Stack | None = None
    try:
        redis.start()
        stub = StubControl(log_dir, latency_ms=args.latency_ms)
        stack = Stack(
            log_dir=log_dir,
            database_url=database_url,
            broker_url=f"redis://127.0.0.1:{redis.port}/0",
            llm_base_url=stub.url,
            extra_env={"WORKER_CONCURRENCY": str(args.waiters), "LOG_LEVEL": "INFO"},
        )
        stack.prepare()
        stack.start_worker()
        api = stack.start_api()
        baseline = _rss_mb(api.popen.pid)
        submitted = time.monotonic()
        _, _, codes = asyncio.run(post_many(stack.api_url, stack.api_key, args.waiters, 64))
        with psycopg.connect(database_url) as conn:
            event_ids = [str(r[0]) for r in conn.execute("SELECT event_id FROM jobs").fetchall()]
        before_rss = _rss_mb(api.popen.pid)
        commits_before = _commits(database_url)
        polls, streams, peak = asyncio.run(
            attach(stack.api_url, stack.api_key, event_ids, api.popen.pid)
        )
        commits = _commits(database_url) - commits_before
        elapsed = time.monotonic() - submitted
        print(
            f"{len(event_ids)} jobs ({dict(codes)}), LLM calls at {args.latency_ms:.0f} ms; "
            f"1 API process, 1 worker; done after {elapsed:.1f} s"
        )
        print("    waiter        count   p50 ms   p99 ms   max ms   (completion -> answer)")
        for label, values in (("long-poll", polls), ("event stream", streams)):
            ms = [v * 1000 for v in values]
            print(
                f"    {label:<12} {len(ms):>6} {percentile(ms, 50):>8.1f} "
                f"{percentile(ms, 99):>8.1f} {max(ms):>8.1f}"
            )
        print(
            f"    API RSS: {baseline:.0f} MB at start, {before_rss:.0f} MB after the submits, "
            f"peak {peak:.0f} MB with the waiters: +{peak - before_rss:.0f} MB (target <= 50)"
        )
        print(
            f"    database commits while waiting: {commits} for {len(event_ids)} jobs "
            f"({commits / max(len(event_ids), 1):.1f} per job: the jobs' claim and saves, "
            "heartbeats and each waiter's reads; no polling)"
        )
        return 0
    finally:
        if stack is not None:
            stack.close()
        if stub is not None:
            stub.close()
        redis.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    sys.exit(main())
