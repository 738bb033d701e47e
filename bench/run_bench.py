"""Benchmark of production mode on this machine: `make bench` (prints figures; not a test).

Starts a fresh PostgreSQL database on the local server (127.0.0.1:5432), a
private Redis (no persistence), the OpenAI-compatible stub (--latency-ms per
call, 1,000 by default), ONE Celery worker process (WORKER_CONCURRENCY 500) and
the API under uvicorn (one process), all from this checkout's src/. The load
generator is wrk (bench/load.lua). CPU figures are user + system time of each
process tree (bench/procstat.py) over a phase, divided by the requests or jobs
of that phase; PostgreSQL's, Redis's and the stub's CPU are not in them.

Parts (--only, comma-separated; default all):
  e2e     --jobs jobs (2,000) end to end, 2 LLM calls each: wall time until the
          last one finished, worker CPU per job, API CPU per POST; then --burst
          jobs (--concurrency) POSTed with the worker paused and let go at once,
          the stub at --burst-latency-ms (5,000) per call: the worker's peak RSS
          with them all in flight;
  growth  the same for each of --growth (500, 2,000, 10,000): jobs/s and CPU per
          job and per POST, to show how cost grows (the e2e run is reused);
  api     the API alone (the worker paused with SIGSTOP): GET /jobs/{id}, the
          first page of GET /jobs, POST /jobs at 64 and at 16 clients for
          --duration s each: req/s, p50/p99, API CPU per request;
  large   --large-rows jobs (1,000,000) COPYed into the table across
          --large-owners owners, VACUUM ANALYZE, then the api part again, each
          figure next to the empty-table one with the difference (implies api).
Then a summary: figure | measured | target | met?

    .venv/bin/python bench/run_bench.py [--quick] [--only e2e,growth,api,large]
        [--jobs 2000] [--growth 500,2000,10000] [--duration 5]
        [--large-rows 1000000] [--py-spy .venv/bin/py-spy] ...

--quick: small sizes for development (a minute or two). --py-spy PATH records
the API and the worker during the e2e run (raw collapsed stacks, in the log
directory; that run's figures then include the sampling's disturbance).
Everything started is stopped at the end and the database dropped. Exit status
1 when a request was answered with an error or a job did not complete.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import psycopg
import redis
from psycopg import sql

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]
# The processes started run this checkout's code (a worktree's, not the venv's install).
os.environ["PYTHONPATH"] = os.pathsep.join(
    filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")])
)

from bench import procstat  # noqa: E402
from bench.large_table import fill  # noqa: E402
from bench.loadgen import (  # noqa: E402
    LoadGeneratorError,
    WrkResult,
    run_wrk,
    wrk_binary,
    wrk_version,
)
from tests.integration.celery.celery_stack import (  # noqa: E402
    GUIDELINE,
    PrivateRedis,
    Stack,
    StubControl,
)

from adapters.queue.celery_app import QueueName  # noqa: E402

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/postgres"
PARTS = ("e2e", "growth", "api", "large")
SUBMIT_CLIENTS = 64
MB = 1_000_000
MIB = 1024 * 1024
TERMINAL = ("completed", "failed", "cancelled")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", default=",".join(PARTS), help="parts, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small sizes (development)")
    parser.add_argument("--jobs", type=int, default=None, help="e2e jobs (2000)")
    parser.add_argument("--growth", default=None, help="growth runs (500,2000,10000)")
    parser.add_argument("--duration", type=float, default=None, help="s per API phase (5)")
    parser.add_argument("--large-rows", type=int, default=None, help="rows COPYed (1000000)")
    parser.add_argument("--large-owners", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=None, help="jobs before measuring (200)")
    parser.add_argument(
        "--burst", type=int, default=None, help="peak-RSS run's jobs (--concurrency)"
    )
    parser.add_argument("--burst-latency-ms", type=float, default=5000.0, help="stub, per call")
    parser.add_argument("--post-clients", type=int, default=64, help="throughput phase")
    parser.add_argument("--latency-clients", type=int, default=16, help="latency phases")
    parser.add_argument("--concurrency", type=int, default=500, help="WORKER_CONCURRENCY")
    parser.add_argument("--api-workers", type=int, default=1)
    parser.add_argument("--latency-ms", type=float, default=1000.0, help="stub, per call")
    parser.add_argument("--db-pool-size", type=int, default=20)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--keep-logs", action="store_true", help="print the log directory")
    parser.add_argument(
        "--py-spy",
        default=None,
        metavar="PATH",
        help="py-spy binary: record the worker and the API during the e2e run",
    )
    parser.add_argument("--py-spy-native", action="store_true", help="py-spy --native")
    args = parser.parse_args()
    quick = args.quick
    defaults = {
        "jobs": (200, 2000),
        "growth": ("100,200,400", "500,2000,10000"),
        "duration": (2.0, 5.0),
        "large_rows": (20000, 1_000_000),
        "warmup": (50, 200),
    }
    for name, (small, full) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, small if quick else full)
    if args.burst is None:
        args.burst = args.concurrency
    args.parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if "large" in args.parts and "api" not in args.parts:
        args.parts.append("api")  # the large pass compares with the empty-table figures
    args.growth_sizes = [int(n) for n in args.growth.split(",") if n.strip()]
    return args


# -- used by bench/waiters.py -------------------------------------------------


async def post_many(
    url: str, key: str, total: int, clients: int
) -> tuple[float, list[float], Counter[int]]:
    """POST `total` jobs from `clients` concurrent aiohttp clients (bench/waiters.py).

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


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


# -- results --------------------------------------------------------------------


@dataclass
class JobsRun:
    jobs: int
    wall_s: float
    submit: WrkResult
    statuses: dict[str, int]
    worker_cpu_s: float
    api_cpu_s: float  # the whole run
    api_cpu_after_s: float  # of it, after the last POST was answered
    stub_calls: int
    max_in_flight: int
    worker_peak_rss: int  # VmHWM since the worker started
    worker_rss_sampled: int  # the highest VmRSS seen during this run (every 0.25 s)
    stuck: bool

    @property
    def completed(self) -> int:
        return self.statuses.get("completed", 0)

    @property
    def worker_ms_per_job(self) -> float:
        return self.worker_cpu_s * 1000 / max(1, self.completed)

    @property
    def api_ms_per_post(self) -> float:
        return self.api_cpu_s * 1000 / max(1, self.submit.posts)

    @property
    def jobs_per_s(self) -> float:
        return self.completed / self.wall_s if self.wall_s > 0 else 0.0


@dataclass
class Phase:
    name: str  # e.g. "POST /jobs"
    clients: int
    result: WrkResult
    handled: int  # requests the API handled (POST: jobs created)
    api_cpu_s: float

    @property
    def key(self) -> str:
        return f"{self.name} @{self.clients}"

    @property
    def cpu_ms(self) -> float:
        return self.api_cpu_s * 1000 / max(1, self.handled)

    @property
    def wrk_cpu_ms(self) -> float:
        return self.result.cpu_s * 1000 / max(1, self.result.requests)


@dataclass
class Report:
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def add(self, figure: str, measured: str, target: str, met: bool | None) -> None:
        self.rows.append((figure, measured, target, met))


# -- the bench --------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, stack: Stack, stub: StubControl, redis_url: str):
        self.args = args
        self.stack = stack
        self.stub = stub
        self.redis_url = redis_url
        self.database_url = stack.database_url
        self.api = next(p for p in stack.procs if p.name == "api").popen.pid
        self.worker = next(p for p in stack.procs if p.name == "worker").popen.pid
        self.paused = False
        self.report = Report()
        self._conn: psycopg.Connection | None = None
        self.owner = str(self.scalar("SELECT owner FROM api_keys LIMIT 1"))

    def query(self, query: str, *params: object) -> list[tuple[object, ...]]:
        """Runs `query` on the bench's one connection (autocommit). PostgreSQL's
        connection slots are shared with whatever else runs on this machine: when
        they run out, it waits and tries again rather than losing the run."""
        for attempt in range(30):
            try:
                if self._conn is None or self._conn.closed or self._conn.broken:
                    self._conn = psycopg.connect(self.database_url, autocommit=True)
                cursor = self._conn.execute(query, params)
                return cursor.fetchall() if cursor.description else []
            except psycopg.OperationalError as exc:
                if attempt == 29:
                    raise
                print(f"    (database: {str(exc).strip().splitlines()[-1]}; retrying)", flush=True)
                time.sleep(1)
        raise AssertionError("unreachable")

    def scalar(self, query: str, *params: object) -> object:
        rows = self.query(query, *params)
        return rows[0][0] if rows else None

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    def pause_worker(self) -> None:
        if not self.paused:
            os.kill(self.worker, signal.SIGSTOP)
            self.paused = True

    def resume_worker(self) -> None:
        if self.paused:
            os.kill(self.worker, signal.SIGCONT)
            self.paused = False

    # -- jobs end to end -------------------------------------------------------------

    def run_jobs(
        self,
        total: int,
        label: str,
        profile: bool = False,
        burst: bool = False,
        latency_ms: float | None = None,
    ) -> JobsRun:
        """POSTs `total` jobs from 64 clients and waits until none is unfinished.

        `burst`: the worker is paused while they are POSTed and let go after, so
        it takes as many at once as its concurrency allows (the peak-RSS run).
        `latency_ms`: the stub's for this run (then back to the start-up one)."""
        self.stub.reset()
        if latency_ms is not None:
            self.stub.configure(latency_ms=latency_ms)
        timeout = 60 + 0.05 * total
        profilers = self._start_profilers() if profile else []
        api0, worker0 = procstat.cpu_seconds(self.api), procstat.cpu_seconds(self.worker)
        if burst:
            self.pause_worker()
        started_at = datetime.now(UTC)
        submit = run_wrk(
            self.stack.api_url,
            self.stack.api_key,
            "post",
            SUBMIT_CLIENTS,
            quota=total,
            body={"input_text": GUIDELINE},
            timeout_s=timeout,
        )
        api_submitted = procstat.cpu_seconds(self.api)
        self.resume_worker()
        deadline = time.monotonic() + timeout
        stuck = False
        rss_sampled = 0
        while True:
            rss_sampled = max(rss_sampled, procstat.rss_bytes(self.worker))
            unfinished = self.scalar(
                "SELECT count(*) FROM jobs WHERE status IN ('pending', 'processing')"
            )
            if unfinished == 0:
                break
            if time.monotonic() > deadline:
                stuck = True
                break
            time.sleep(0.25)
        api1, worker1 = procstat.cpu_seconds(self.api), procstat.cpu_seconds(self.worker)
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            profiler.wait(60)
        statuses = {
            str(status): int(count)
            for status, count in self.query(
                "SELECT status, count(*) FROM jobs WHERE created_at >= %s GROUP BY status",
                started_at,
            )
        }
        last = self.scalar("SELECT max(finished_at) FROM jobs WHERE created_at >= %s", started_at)
        finished_at = last if isinstance(last, datetime) else datetime.now(UTC)
        stats = self.stub.stats()
        run = JobsRun(
            jobs=total,
            wall_s=(finished_at - started_at).total_seconds(),
            submit=submit,
            statuses=statuses,
            worker_cpu_s=worker1 - worker0,
            api_cpu_s=api1 - api0,
            api_cpu_after_s=api1 - api_submitted,
            stub_calls=int(stats["calls"]),
            max_in_flight=int(stats["max_in_flight"]),
            worker_peak_rss=procstat.peak_rss_bytes(self.worker),
            worker_rss_sampled=rss_sampled,
            stuck=stuck,
        )
        if submit.bad_answers or any(submit.socket_errors.values()):
            self.report.problems.append(
                f"{label}: POST answers {dict(submit.codes)}, socket errors {submit.socket_errors}"
            )
        if stuck or run.completed != total:
            self.report.problems.append(
                f"{label}: {total} jobs submitted, statuses {statuses}"
                + (f" (still unfinished after {timeout:.0f} s)" if stuck else "")
            )
        return run

    def _start_profilers(self) -> list[subprocess.Popen[bytes]]:
        profilers = []
        for name, pid in (("api", self.api), ("worker", self.worker)):
            out = self.stack.log_dir / f"{name}.py-spy.txt"
            command = [
                self.args.py_spy,
                "record",
                "--pid",
                str(pid),
                "--format",
                "raw",
                "--output",
                str(out),
                "--rate",
                "200",
                "--threads",
                "--gil",  # only samples that hold the GIL: where the CPU goes
                "--subprocesses",
                "--nonblocking",
            ]
            if self.args.py_spy_native:
                command.append("--native")
            profilers.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
            print(f"    py-spy: {name} -> {out}", flush=True)
        time.sleep(1.0)  # py-spy attaches
        return profilers

    # -- the API alone -------------------------------------------------------------------

    def api_phases(self, label: str, get_ids: list[str]) -> dict[str, Phase]:
        """The API's figures with the worker paused; the jobs POSTed are deleted after."""
        if not get_ids:
            raise RuntimeError(f"{label}: no completed job of the bench's owner to GET")
        self.pause_worker()
        ids_file = self.stack.log_dir / f"ids-{label}.txt"
        ids_file.write_text("\n".join(get_ids) + "\n")
        clients = self.args.latency_clients
        plan = [
            ("GET /jobs/{id}", "get", clients),
            ("GET /jobs", "list", clients),
            ("POST /jobs", "post", self.args.post_clients),
            ("POST /jobs", "post", clients),
        ]
        since = self.scalar("SELECT now()")
        phases: dict[str, Phase] = {}
        for name, mode, connections in plan:
            self._settle()
            created0 = self._created_since(since)
            cpu0 = procstat.cpu_seconds(self.api)
            result = run_wrk(
                self.stack.api_url,
                self.stack.api_key,
                mode,
                connections,
                duration_s=self.args.duration,
                body={"input_text": GUIDELINE},
                ids_file=ids_file if mode == "get" else None,
            )
            self._settle()  # the API's deferred work for these requests is theirs
            cpu1 = procstat.cpu_seconds(self.api)
            handled = self._created_since(since) - created0 if mode == "post" else result.requests
            phase = Phase(name, connections, result, handled, cpu1 - cpu0)
            phases[phase.key] = phase
            if result.bad_answers or any(result.socket_errors.values()):
                self.report.problems.append(
                    f"{label} {phase.key}: answers {dict(result.codes)}, "
                    f"socket errors {result.socket_errors}"
                )
        self._forget_posted(since)
        return phases

    def _created_since(self, since: object) -> int:
        count = self.scalar(
            "SELECT count(*) FROM jobs WHERE owner = %s AND created_at >= %s", self.owner, since
        )
        return int(count)

    def _settle(self, timeout: float = 5.0) -> None:
        """Waits until the API has marked what it published (its outbox rows sent)."""
        deadline = time.monotonic() + timeout
        time.sleep(0.2)
        while time.monotonic() < deadline:
            if self.scalar("SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 0:
                return
            time.sleep(0.1)

    def _forget_posted(self, since: object) -> None:
        """Deletes the jobs the POST phases made and their broker messages, so the
        worker does not run them when it resumes."""
        self.query(
            "DELETE FROM jobs WHERE owner = %s AND created_at >= %s AND status = 'pending'",
            self.owner,
            since,
        )
        client = redis.Redis.from_url(self.redis_url)
        try:
            for key in client.scan_iter(match=f"{QueueName.JOBS}*"):
                if client.type(key) == b"list":
                    client.delete(key)
        finally:
            client.close()

    def idle_api_cpu(self, seconds: float = 2.0) -> float:
        """The API's CPU per second with nothing to do (its timers)."""
        cpu0 = procstat.cpu_seconds(self.api)
        time.sleep(seconds)
        return (procstat.cpu_seconds(self.api) - cpu0) / seconds


# -- printing -------------------------------------------------------------------------


def _mb(value: int) -> str:
    return f"{value / MB:.1f} MB ({value / MIB:.1f} MiB)"


def _met(value: float, limit: float, at_most: bool = True) -> bool:
    return value <= limit if at_most else value >= limit


def _pct(new: float, old: float) -> float:
    return (new - old) / old * 100 if old else 0.0


def print_run(run: JobsRun, latency_ms: float) -> None:
    s = run.submit
    print(f"    submitted           {s.posts:,} POSTs from {SUBMIT_CLIENTS} clients in ", end="")
    print(f"{s.wall_s:.2f} s ({s.posts / s.wall_s:,.0f} req/s), answers {dict(s.codes)}")
    print(f"    all finished after  {run.wall_s:.2f} s ({run.jobs_per_s:,.1f} jobs/s)")
    print(f"    statuses            {run.statuses}" + ("  STUCK" if run.stuck else ""))
    print(
        f"    stub                {run.stub_calls:,} calls at {latency_ms:.0f} ms, "
        f"max {run.max_in_flight} in flight"
    )
    print(
        f"    worker CPU          {run.worker_cpu_s:.2f} s = {run.worker_ms_per_job:.2f} ms "
        "per completed job"
    )
    print(
        f"    API CPU             {run.api_cpu_s:.2f} s = {run.api_ms_per_post:.2f} ms per POST "
        f"({run.api_cpu_after_s:.2f} s of it after the last POST was answered)"
    )
    print(f"    wrk CPU             {s.cpu_s:.2f} s")
    print(
        f"    worker RSS          peak {_mb(run.worker_peak_rss)} (VmHWM since it started); "
        f"highest seen in this run {_mb(run.worker_rss_sampled)}"
    )


def print_phases(phases: dict[str, Phase]) -> None:
    header = (
        f"    {'request':<16}{'clients':>8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}{'API CPU ms':>12}{'wrk CPU ms':>12}  answers"
    )
    print(header)
    for p in phases.values():
        r = p.result
        print(
            f"    {p.name:<16}{p.clients:>8}{p.handled:>10,}{r.rate:>9,.0f}{r.p50_ms:>9.1f}"
            f"{r.p99_ms:>9.1f}{r.max_ms:>9.1f}{p.cpu_ms:>12.3f}{p.wrk_cpu_ms:>12.3f}  "
            f"{dict(r.codes)}"
        )
    print("    (API CPU ms and wrk CPU ms: per request; req/s, latency: wrk's)")


def print_comparison(empty: dict[str, Phase], large: dict[str, Phase], rows: int) -> None:
    label = f"{rows:,} rows"
    print(f"    {'request':<22}{'figure':<12}{'empty table':>13}{label:>16}{'diff':>9}")
    for key, big in large.items():
        small = empty[key]
        for figure, old, new in (
            ("API CPU ms", small.cpu_ms, big.cpu_ms),
            ("p50 ms", small.result.p50_ms, big.result.p50_ms),
            ("p99 ms", small.result.p99_ms, big.result.p99_ms),
            ("req/s", small.result.rate, big.result.rate),
            ("wrk CPU ms", small.wrk_cpu_ms, big.wrk_cpu_ms),
        ):
            print(f"    {key:<22}{figure:<12}{old:>13.3f}{new:>16.3f}{_pct(new, old):>+8.1f}%")
    print(
        "    (wrk CPU ms, the load generator's CPU per request, is a control: the table's"
        " size is nothing to it, so when it moves, the machine's load did)"
    )


def print_summary(report: Report) -> None:
    print("\n## Summary\n")
    print("| figure | measured | target | met? |")
    print("|---|---|---|---|")
    for figure, measured, target, met in report.rows:
        mark = "—" if met is None else ("yes" if met else "**no**")
        print(f"| {figure} | {measured} | {target} | {mark} |")
    if report.problems:
        print("\nProblems:")
        for problem in report.problems:
            print(f"  - {problem}")


# -- main -------------------------------------------------------------------------------


def main() -> int:
    args = _args()
    wrk_binary()  # fail before starting anything
    name = f"gi_bench_{uuid.uuid4().hex[:12]}"
    database_url = f"postgresql://postgres@127.0.0.1:5432/{name}"
    log_dir = Path(tempfile.mkdtemp(prefix="gi-bench-"))
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        pg_version = admin.execute("SHOW server_version").fetchone()[0]
    private_redis = PrivateRedis(log_dir)
    stub: StubControl | None = None
    stack: Stack | None = None
    bench: Bench | None = None
    try:
        private_redis.start()
        stub = StubControl(log_dir, latency_ms=args.latency_ms)
        stack = Stack(
            log_dir=log_dir,
            database_url=database_url,
            broker_url=private_redis.url,
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
        bench = Bench(args, stack, stub, private_redis.url)
        report = bench.report
        commit = subprocess.run(
            ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.strip()
        print(f"# make bench — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        print(
            f"host: {os.cpu_count()} CPUs, {platform.system()} {platform.release()}; "
            f"PostgreSQL {pg_version}; {wrk_version()}; code {ROOT / 'src'} ({commit})"
        )
        print(
            f"stack: {args.api_workers} API process(es), 1 worker process (WORKER_CONCURRENCY "
            f"{args.concurrency}), stub {args.latency_ms:.0f} ms per call, DB_POOL_SIZE "
            f"{args.db_pool_size}, LOG_LEVEL {args.log_level}; parts: {', '.join(args.parts)}"
            + (" (quick sizes)" if args.quick else ""),
            flush=True,
        )
        warm = bench.run_jobs(args.warmup, "warm-up")
        print(f"warm-up: {args.warmup} jobs in {warm.wall_s:.1f} s, statuses {warm.statuses}")

        runs: dict[int, JobsRun] = {}
        if "e2e" in args.parts:
            print(
                f"\n[1] {args.jobs:,} jobs end to end, 2 LLM calls each at "
                f"{args.latency_ms:.0f} ms, one worker process",
                flush=True,
            )
            e2e = bench.run_jobs(args.jobs, "e2e", profile=bool(args.py_spy))
            runs[args.jobs] = e2e
            print_run(e2e, args.latency_ms)
            report.add(
                f"{args.jobs:,} jobs at {args.latency_ms:.0f} ms per call, one worker: wall time",
                f"{e2e.wall_s:.1f} s",
                "≤ 15 s",
                _met(e2e.wall_s, 15) and not e2e.stuck,
            )
            report.add(
                "worker CPU per job (2 calls + writes + messages)",
                f"{e2e.worker_ms_per_job:.2f} ms",
                "≤ 4 ms",
                _met(e2e.worker_ms_per_job, 4),
            )
            print(
                f"\n[1b] peak RSS: {args.burst:,} jobs POSTed with the worker paused, then let "
                f"go (it takes up to {args.concurrency} at once); the stub at "
                f"{args.burst_latency_ms:.0f} ms per call, so that the worker has them all "
                "in flight before the first call returns",
                flush=True,
            )
            burst = bench.run_jobs(
                args.burst, "burst", burst=True, latency_ms=args.burst_latency_ms
            )
            print_run(burst, args.burst_latency_ms)
            report.add(
                f"worker peak RSS, {burst.max_in_flight} jobs in flight "
                f"(WORKER_CONCURRENCY {args.concurrency})",
                _mb(burst.worker_peak_rss),
                "≤ 200 MB",
                _met(burst.worker_peak_rss, 200 * MB),
            )

        if "growth" in args.parts:
            print(f"\n[2] growth: jobs end to end at {args.latency_ms:.0f} ms per call", flush=True)
            for size in args.growth_sizes:
                if size not in runs:
                    runs[size] = bench.run_jobs(size, f"growth {size}")
            print(
                f"    {'jobs':>8}{'wall s':>9}{'jobs/s':>9}{'worker ms/job':>15}"
                f"{'API ms/POST':>13}{'after':>8}{'worker HWM MB':>16}{'in flight':>11}"
                "  statuses"
            )
            for size in args.growth_sizes:
                run = runs[size]
                print(
                    f"    {size:>8,}{run.wall_s:>9.1f}{run.jobs_per_s:>9.1f}"
                    f"{run.worker_ms_per_job:>15.2f}{run.api_ms_per_post:>13.3f}"
                    f"{run.api_cpu_after_s * 1000 / max(1, run.submit.posts):>8.3f}"
                    f"{run.worker_peak_rss / MB:>16.1f}{run.max_in_flight:>11}  {run.statuses}"
                    + ("  STUCK" if run.stuck else "")
                )
            print(
                "    (API ms/POST: the API's CPU over the whole run per POST; after: the part"
                " spent after the last POST was answered, while the jobs ran)"
            )
            costs = [runs[s].worker_ms_per_job for s in args.growth_sizes]
            posts = [runs[s].api_ms_per_post for s in args.growth_sizes]
            spread = (max(costs) - min(costs)) / min(costs) * 100 if min(costs) else 0.0
            post_spread = (max(posts) - min(posts)) / min(posts) * 100 if min(posts) else 0.0
            sizes = " / ".join(f"{s:,}" for s in args.growth_sizes)
            report.add(
                f"growth {sizes} jobs: jobs/s",
                " / ".join(f"{runs[s].jobs_per_s:.0f}" for s in args.growth_sizes),
                "—",
                None,
            )
            report.add(
                f"growth {sizes} jobs: worker CPU ms per job",
                " / ".join(f"{c:.2f}" for c in costs) + f" (spread {spread:.0f} %)",
                "flat (spread ≤ 10 %)",
                spread <= 10,
            )
            report.add(
                f"growth {sizes} jobs: API CPU ms per POST",
                " / ".join(f"{c:.3f}" for c in posts) + f" (spread {post_spread:.0f} %)",
                "flat (spread ≤ 10 %)",
                post_spread <= 10,
            )
        if runs and "e2e" not in args.parts:  # else the burst run's row says it
            peak = procstat.peak_rss_bytes(bench.worker)
            report.add(
                "worker peak RSS after every run (VmHWM)",
                f"{_mb(peak)}, up to {max(r.max_in_flight for r in runs.values())} jobs in flight",
                "≤ 200 MB",
                _met(peak, 200 * MB),
            )

        empty: dict[str, Phase] = {}
        if "api" in args.parts:
            rows = bench.scalar("SELECT count(*) FROM jobs")
            ids = [
                str(row[0])
                for row in bench.query(
                    "SELECT event_id FROM jobs WHERE owner = %s AND status = 'completed' "
                    "ORDER BY random() LIMIT 20000",
                    bench.owner,
                )
            ]
            idle = bench.idle_api_cpu()
            print(
                f"\n[3] the API alone (worker paused), {rows:,} jobs in the table; "
                f"{args.duration:.0f} s per phase; GETs of {len(ids):,} completed jobs in turn; "
                f"API idle: {idle * 1000:.1f} ms CPU per s",
                flush=True,
            )
            empty = bench.api_phases("empty", ids)
            print_phases(empty)
            clients, heavy = args.latency_clients, args.post_clients
            post_l, post_t = empty[f"POST /jobs @{clients}"], empty[f"POST /jobs @{heavy}"]
            get = empty[f"GET /jobs/{{id}} @{clients}"]
            report.add(
                f"API CPU per POST /jobs (incl. dispatch), {heavy} / {clients} clients",
                f"{post_t.cpu_ms:.3f} / {post_l.cpu_ms:.3f} ms",
                "≤ 0.8 ms",
                _met(max(post_t.cpu_ms, post_l.cpu_ms), 0.8),
            )
            report.add(
                f"API CPU per GET /jobs/{{id}}, {clients} clients",
                f"{get.cpu_ms:.3f} ms",
                "≤ 0.4 ms",
                _met(get.cpu_ms, 0.4),
            )
            report.add(
                f"POST /jobs at {heavy} clients, worker paused",
                f"{post_t.result.rate:,.0f} req/s",
                "≥ 1,000 req/s",
                _met(post_t.result.rate, 1000, at_most=False),
            )
            report.add(
                f"POST /jobs at {clients} clients, worker paused: p50 / p99",
                f"{post_l.result.p50_ms:.1f} / {post_l.result.p99_ms:.1f} ms",
                "p99 ≤ 50 ms",
                _met(post_l.result.p99_ms, 50),
            )
            listing = empty[f"GET /jobs @{clients}"]
            report.add(
                f"GET /jobs first page, {clients} clients: API CPU, p50 / p99",
                f"{listing.cpu_ms:.3f} ms, {listing.result.p50_ms:.1f} / "
                f"{listing.result.p99_ms:.1f} ms",
                "—",
                None,
            )

        if "large" in args.parts:
            print(
                f"\n[4] large table: {args.large_rows:,} jobs COPYed across "
                f"{args.large_owners} owners (worker paused)",
                flush=True,
            )
            bench.pause_worker()
            filled = fill(database_url, args.large_rows, bench.owner, args.large_owners)
            print(
                f"    COPY: {filled.rows:,} jobs + {filled.outbox_rows:,} outbox rows in "
                f"{filled.seconds:.1f} s ({filled.rows / filled.seconds:,.0f} rows/s); "
                f"statuses {filled.by_status}; {filled.owner_rows:,} of the bench's owner"
            )
            started = time.perf_counter()
            bench.query("VACUUM (ANALYZE) jobs")
            bench.query("VACUUM (ANALYZE) outbox")
            bench.query("CHECKPOINT")  # its writes are not left to land mid-phase
            vacuum_s = time.perf_counter() - started
            total_size = int(bench.scalar("SELECT pg_total_relation_size('jobs')"))
            print(
                f"    VACUUM ANALYZE + CHECKPOINT: {vacuum_s:.1f} s; jobs table with its indexes: "
                f"{total_size / MB:,.0f} MB; GETs of {len(filled.sample_ids):,} "
                "completed jobs of the owner, in random order"
            )
            large = bench.api_phases("large", filled.sample_ids)
            print_phases(large)
            print("    against the empty table:")
            print_comparison(empty, large, filled.rows)
            for key, big in large.items():
                small = empty[key]
                cpu, p50, p99 = (
                    _pct(big.cpu_ms, small.cpu_ms),
                    _pct(big.result.p50_ms, small.result.p50_ms),
                    _pct(big.result.p99_ms, small.result.p99_ms),
                )
                report.add(
                    f"{filled.rows:,} jobs in the table: {key} clients, against the empty table",
                    f"CPU {cpu:+.0f} %, p50 {p50:+.0f} %, p99 {p99:+.0f} %",
                    "CPU and p50 within 10 %",
                    cpu <= 10 and p50 <= 10,
                )

        api_peak = procstat.peak_rss_bytes(bench.api)
        report.add("API peak RSS (whole run)", _mb(api_peak), "≤ 120 MB", _met(api_peak, 120 * MB))
        print_summary(report)
        print(
            "\nMB = 10^6 bytes. CPU: user + system time of the process tree over the phase, "
            "divided by its requests or completed jobs."
        )
        if args.keep_logs or args.py_spy:
            print(f"logs: {log_dir}")
        return 1 if report.problems else 0
    except LoadGeneratorError as exc:
        print(f"load generator failed: {exc}", file=sys.stderr)
        return 2
    finally:
        if bench is not None:
            bench.resume_worker()
            bench.close()
        if stack is not None:
            stack.close()
        if stub is not None:
            stub.close()
        private_redis.stop()
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


if __name__ == "__main__":
    sys.exit(main())
