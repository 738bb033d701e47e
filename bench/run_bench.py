"""Benchmark of production mode on this machine (prints figures; not a test).

Starts: a fresh PostgreSQL database on the local server (127.0.0.1:5432), a
private Redis (no persistence), the OpenAI-compatible stub with 1,000 ms per
call, ONE Celery worker process and the API under uvicorn. Then:

  (a) submits --jobs jobs (default 2,000) and measures the time until every
      one is completed (target: < 30 s);
  (b) measures POST /jobs throughput and latency at 16 and 64 concurrent
      clients (--requests per level, default 2,000; target: p99 < 50 ms at 16).
      The worker keeps running, so these jobs are processed meanwhile, as in
      production.

    .venv/bin/python bench/run_bench.py [--jobs 2000] [--requests 2000]
        [--concurrency 500] [--api-workers 1] [--latency-ms 1000]

Everything it starts is stopped at the end and the database dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.integration.celery.celery_stack import (  # noqa: E402
    GUIDELINE,
    PrivateRedis,
    Stack,
    StubControl,
)

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2000)
    parser.add_argument("--requests", type=int, default=2000, help="POSTs per concurrency level")
    parser.add_argument("--levels", default="16,64", help="concurrent clients, comma-separated")
    parser.add_argument("--concurrency", type=int, default=500, help="WORKER_CONCURRENCY")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=1000.0)
    parser.add_argument("--db-pool-size", type=int, default=20)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--keep-logs", action="store_true", help="print the log directory")
    parser.add_argument(
        "--py-spy",
        default=None,
        metavar="PATH",
        help="py-spy binary: record the worker and the API during (a) (collapsed stacks)",
    )
    return parser.parse_args()


async def post_many(
    url: str, key: str, total: int, clients: int
) -> tuple[float, list[float], Counter[int]]:
    """POST `total` jobs from `clients` concurrent clients.

    Returns (wall seconds, per-request latencies in seconds, count by status code).
    """
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    body = {"input_text": GUIDELINE}
    headers = {"Authorization": f"Bearer {key}"}
    remaining = total
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)

    async with aiohttp.ClientSession(base_url=url, connector=connector) as session:

        async def client() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post("/jobs", json=body, headers=headers) as response:
                    await response.read()
                    codes[response.status] += 1
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        wall = time.perf_counter() - started
    return wall, latencies, codes


def count_by_status(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
    return dict(rows)


def wait_all_done(database_url: str, total: int, timeout: float) -> tuple[float, dict[str, int]]:
    started = time.perf_counter()
    counts: dict[str, int] = {}
    while time.perf_counter() - started < timeout:
        counts = count_by_status(database_url)
        if sum(counts.get(s, 0) for s in ("completed", "failed", "cancelled")) >= total:
            break
        time.sleep(0.1)
    return time.perf_counter(), counts


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def main() -> int:
    args = _args()
    name = f"gi_bench_{uuid.uuid4().hex[:12]}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    log_dir = Path(tempfile.mkdtemp(prefix="gi-bench-"))
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
            broker_url=redis.url,
            llm_base_url=stub.url,
            extra_env={
                "WORKER_CONCURRENCY": str(args.concurrency),
                "DB_POOL_SIZE": str(args.db_pool_size),
                "LOG_LEVEL": args.log_level,
            },
        )
        stack.prepare()
        stack.start_worker()
        stack.start_api(workers=args.api_workers)
        print(
            f"stack: 1 worker process (concurrency {args.concurrency}), "
            f"{args.api_workers} API process(es), stub latency {args.latency_ms:.0f} ms, "
            f"DB_POOL_SIZE {args.db_pool_size}, LOG_LEVEL {args.log_level}",
            flush=True,
        )

        # (a) throughput of the whole pipeline
        profilers = []
        if args.py_spy:
            for proc in stack.procs:
                out = log_dir / f"{proc.name}.profile.txt"
                profilers.append(
                    subprocess.Popen(
                        [
                            args.py_spy,
                            "record",
                            "--pid",
                            str(proc.popen.pid),
                            "--format",
                            "raw",
                            "--output",
                            str(out),
                            "--rate",
                            "200",
                            "--threads",
                            "--nonblocking",
                        ],
                        stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL,
                    )
                )
        started = time.perf_counter()
        submit_wall, _, codes = asyncio.run(post_many(stack.api_url, stack.api_key, args.jobs, 64))
        finished, counts = wait_all_done(database_url, codes[202], timeout=300)
        total_s = finished - started
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(30)
        stats = stub.stats()
        cpu = {proc.name: _cpu_seconds(proc.popen.pid) for proc in stack.procs}
        print()
        print(f"(a) {args.jobs} jobs, 2 LLM calls each at {args.latency_ms:.0f} ms")
        print(f"    submitted in            {submit_wall:8.2f} s  (answers: {dict(codes)})")
        print(f"    all finished after      {total_s:8.2f} s  (target < 30 s)")
        print(f"    statuses                {counts}")
        print(f"    stub: max in flight     {stats['max_in_flight']:8d}   calls {stats['calls']}")
        print("    CPU seconds so far      " + "  ".join(f"{k} {v:.1f}" for k, v in cpu.items()))

        # (b) POST /jobs latency: with the worker processing what is submitted (it
        # shares this machine's 2 cores with the API), then with the worker paused
        # (SIGSTOP), which is the API's own speed, as with workers on other hosts.
        worker = next(proc for proc in stack.procs if proc.name == "worker")
        rows = []
        for paused in (False, True):
            if paused:
                os.kill(worker.popen.pid, signal.SIGSTOP)
            try:
                for clients in [int(c) for c in args.levels.split(",")]:
                    wall, latencies, codes = asyncio.run(
                        post_many(stack.api_url, stack.api_key, args.requests, clients)
                    )
                    rows.append(
                        (
                            "paused" if paused else "running",
                            clients,
                            len(latencies) / wall,
                            statistics.median(latencies) * 1000,
                            percentile(latencies, 99) * 1000,
                            max(latencies) * 1000,
                            sum(n for code, n in codes.items() if code != 202),
                        )
                    )
            finally:
                if paused:
                    os.kill(worker.popen.pid, signal.SIGCONT)
        print()
        print(f"(b) POST /jobs, {args.requests} requests per level")
        header = ("worker", "clients", "req/s", "p50 ms", "p99 ms", "max ms", "errors")
        print("    " + " ".join(f"{h:>8}" for h in header))
        for state, clients, rps, p50, p99, worst, errors in rows:
            print(
                f"    {state:>8} {clients:>8} {rps:>8.0f} {p50:>8.1f} {p99:>8.1f} "
                f"{worst:>8.1f} {errors:>8}"
            )
        if args.keep_logs:
            print(f"\nlogs: {log_dir}")
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
