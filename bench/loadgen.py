"""The load generator: wrk (C, epoll) with bench/load.lua.

A Python client (aiohttp) spends more CPU per request than the API does, and on
a 2-core machine it would take that CPU from the server it measures; wrk spends
a small fraction of it (each run reports its own CPU, so this stays checked).
`make bench` installs wrk (Debian package) when it is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

LUA = Path(__file__).resolve().with_name("load.lua")


class LoadGeneratorError(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise LoadGeneratorError(
            "wrk is not installed: `make bench` installs it (apt-get install -y wrk)"
        )
    return found


def wrk_version() -> str:
    done = subprocess.run([wrk_binary(), "-v"], capture_output=True, text=True, check=False)
    first = (done.stdout or done.stderr).splitlines()
    return first[0].split(" [")[0] if first else "wrk"


@dataclass(frozen=True)
class WrkResult:
    requests: int  # answers received (in quota mode: POSTs and health checks)
    duration_s: float  # wrk's own measure of the run
    wall_s: float  # from start to exit, measured here
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    posts: int  # answers to POSTs (post mode)
    codes: Counter[int]  # POST answers (post mode) or all answers, by status code
    socket_errors: dict[str, int]
    cpu_s: float  # wrk's own CPU (user + system)

    @property
    def rate(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def bad_answers(self) -> int:
        return sum(n for code, n in self.codes.items() if not 200 <= code < 300)


def run_wrk(
    url: str,
    api_key: str,
    mode: str,
    connections: int,
    *,
    duration_s: float | None = None,
    quota: int = 0,
    body: dict[str, object] | None = None,
    ids_file: Path | None = None,
    threads: int = 1,
    timeout_s: float = 600.0,
) -> WrkResult:
    """Runs wrk once: `mode` post / get / list, for `duration_s` or, in post mode,
    until `quota` POSTs are answered (then at most `timeout_s`)."""
    if quota:
        threads = max(1, min(threads, quota))
    threads = max(1, min(threads, connections))
    env = dict(os.environ)
    env.update(
        BENCH_MODE=mode,
        BENCH_API_KEY=api_key,
        BENCH_BODY=json.dumps(body or {}),
        BENCH_QUOTA=str(quota),
        BENCH_THREADS=str(threads),
    )
    if ids_file is not None:
        env["BENCH_IDS"] = str(ids_file)
    run_for = duration_s if duration_s is not None else timeout_s
    command = [
        wrk_binary(),
        "-t",
        str(threads),
        "-c",
        str(connections),
        "-d",
        f"{max(1, round(run_for))}s",
        "--timeout",
        "30s",
        "-s",
        str(LUA),
        url,
    ]
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    assert proc.stdout is not None
    assert proc.stderr is not None
    stderr_lines: list[bytes] = []
    drain = threading.Thread(target=lambda: stderr_lines.extend(proc.stderr), daemon=True)
    drain.start()
    lines: list[str] = []
    finished_threads = 0
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        if line == "THREAD_DONE":
            finished_threads += 1
            if quota and finished_threads == threads:
                proc.send_signal(signal.SIGINT)  # wrk then reports and exits
            continue
        lines.append(line)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    drain.join(5)
    report = next((line for line in lines if line.startswith("BENCH ")), None)
    if proc.returncode != 0 or report is None:
        raise LoadGeneratorError(
            f"wrk exited with {proc.returncode}: "
            + "\n".join(lines[-20:])
            + b"".join(stderr_lines).decode(errors="replace")[-2000:]
        )
    if quota and finished_threads < threads:
        raise LoadGeneratorError(
            f"wrk stopped before {quota} POSTs were answered (timeout {timeout_s:.0f} s)"
        )
    fields = dict(part.split("=", 1) for part in report.split()[1:])
    codes: Counter[int] = Counter()
    for item in filter(None, fields["codes"].split(",")):
        code, n = item.split(":")
        codes[int(code)] += int(n)

    def ms(name: str) -> float:
        return int(fields[name]) / 1000

    return WrkResult(
        requests=int(fields["requests"]),
        duration_s=int(fields["duration_us"]) / 1e6,
        wall_s=wall,
        p50_ms=ms("p50_us"),
        p90_ms=ms("p90_us"),
        p99_ms=ms("p99_us"),
        max_ms=ms("max_us"),
        mean_ms=ms("mean_us"),
        posts=int(fields["posts"]),
        codes=codes,
        socket_errors={k: int(fields[k]) for k in ("connect", "read", "write", "timeout")},
        cpu_s=usage.ru_utime + usage.ru_stime,
    )
