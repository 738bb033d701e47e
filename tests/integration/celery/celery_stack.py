"""Production mode as real processes: the stub LLM, Celery workers, the API, a Redis.

Used by the Celery integration tests and by `bench/run_bench.py`. Every process
writes its output to a log file; `Stack.close()` kills whatever is still running.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
CLI = str(BIN / "guideline-ingest")
STUB = Path(__file__).resolve().parents[2] / "support" / "openai_stub.py"
GUIDELINE = (
    "Adults with type 2 diabetes should start metformin unless it is contraindicated. "
    "Check renal function before starting and at least once a year. "
    "Offer structured education at diagnosis. Review glycaemic targets every six months."
)
# Generous: on a loaded 2-core machine a process can take tens of seconds to start.
STARTUP_TIMEOUT_S = 90.0
_SETTING_NAMES = (
    "DATABASE_URL",
    "CELERY_BROKER_URL",
    "LLM_PROVIDER",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "WORKER_CONCURRENCY",
    "JOB_LEASE_S",
    "JOB_PENDING_REDISPATCH_S",
    "RECOVERY_INTERVAL_S",
    "SHUTDOWN_GRACE_S",
    "AUTH_DISABLED",
    "LOG_FORMAT",
    "LOG_LEVEL",
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Calls `check()` until it returns something truthy; raises after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError, httpx.HTTPError):
            result = check()
            if result:
                return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout}s")
        time.sleep(interval)


@dataclass
class Proc:
    """A child process with its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill9(self) -> None:
        if self.alive():
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(10)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait(10)
        return self.popen.returncode


def spawn(name: str, command: list[str], log_dir: Path, env: dict[str, str] | None = None) -> Proc:
    log_path = log_dir / f"{name}-{time.monotonic_ns()}.log"
    with log_path.open("wb") as out:
        popen = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    return Proc(name, popen, log_path)


class StubControl:
    """The OpenAI-compatible stub server, as a child process, and its control endpoints."""

    def __init__(self, log_dir: Path, latency_ms: float = 0.0) -> None:
        self.port = free_port()
        self.proc = spawn(
            "stub",
            [sys.executable, str(STUB), "--port", str(self.port), "--latency-ms", str(latency_ms)],
            log_dir,
        )
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = f"{self.root}/v1"
        self._http = httpx.Client(base_url=self.root, timeout=10)
        wait_until(lambda: "LISTENING" in self.proc.log(), 60, "the stub starting")

    def configure(self, **changes: Any) -> None:
        self._http.post("/_stub/config", json=changes).raise_for_status()

    def stats(self) -> dict[str, Any]:
        response = self._http.get("/_stub/stats")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def reset(self) -> None:
        self._http.post("/_stub/reset").raise_for_status()

    def close(self) -> None:
        self._http.close()
        self.proc.stop(5)


class PrivateRedis:
    """A Redis server this test owns (no persistence), so it may be stopped and restarted.

    With `password`, the server requires it (`requirepass`) and `url` carries it."""

    def __init__(self, log_dir: Path, password: str | None = None) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.password = password
        self.proc: Proc | None = None
        auth = f":{password}@" if password else ""
        self.url = f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        command = [
            "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
        ]
        if self.password:
            command += ["--requirepass", self.password]
        self.proc = spawn("redis", command, self.log_dir)
        wait_until(self.ping, 60, "the private Redis starting")

    def ping(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            request = b"PING\r\n"
            if self.password:
                request = f"AUTH {self.password}\r\n".encode() + request
            sock.sendall(request)
            replies = b""
            while b"\r\n" not in replies or (self.password and replies.count(b"\r\n") < 2):
                chunk = sock.recv(64)
                if not chunk:
                    break
                replies += chunk
            return replies.endswith(b"+PONG\r\n")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill9()
            self.proc = None


@dataclass
class Stack:
    """Settings shared by every process of one production-mode deployment."""

    log_dir: Path
    database_url: str
    broker_url: str
    llm_base_url: str
    extra_env: dict[str, str] = field(default_factory=dict)
    procs: list[Proc] = field(default_factory=list)
    api_url: str = ""
    api_key: str = ""

    @property
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in _SETTING_NAMES}
        env.update(
            DATABASE_URL=self.database_url,
            CELERY_BROKER_URL=self.broker_url,
            LLM_PROVIDER="openai",
            OPENAI_BASE_URL=self.llm_base_url,
            OPENAI_API_KEY="test",
            LOG_FORMAT="json",
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        return env

    def cli(self, *args: str, timeout: float = 60) -> str:
        done = subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"guideline-ingest {' '.join(args)} failed: {done.stderr}")
        return done.stdout

    def prepare(self) -> None:
        """Migrate the database and make an API key."""
        self.cli("migrate")
        self.api_key = self.cli("keys", "create", "tester").strip().splitlines()[-1]

    def start_worker(self, concurrency: int | None = None, wait: bool = True) -> Proc:
        command = [CLI, "worker"]
        if concurrency is not None:
            command += ["--concurrency", str(concurrency)]
        proc = spawn("worker", command, self.log_dir, self.env)
        self.procs.append(proc)
        if wait:
            wait_until(
                lambda: _check_alive(proc) and '"worker ready"' in proc.log(),
                STARTUP_TIMEOUT_S,
                "the worker starting",
            )
        return proc

    def start_api(self, workers: int = 1) -> Proc:
        port = free_port()
        command = [CLI, "serve", "--port", str(port), "--workers", str(workers)]
        proc = spawn("api", command, self.log_dir, self.env)
        self.procs.append(proc)
        self.api_url = f"http://127.0.0.1:{port}"
        wait_until(
            lambda: (
                _check_alive(proc)
                and httpx.get(f"{self.api_url}/health/live", timeout=1).status_code == 200
            ),
            STARTUP_TIMEOUT_S,
            "the API starting",
        )
        return proc

    def client(self, timeout: float = 10.0) -> httpx.Client:
        return httpx.Client(
            base_url=self.api_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=timeout,
        )

    def close(self) -> None:
        for proc in reversed(self.procs):
            with contextlib.suppress(Exception):
                proc.stop(10)


def _check_alive(proc: Proc) -> bool:
    if not proc.alive():
        raise RuntimeError(
            f"{proc.name} exited with {proc.popen.returncode}:\n{proc.log()[-3000:]}"
        )
    return True


@contextlib.contextmanager
def closing_all(*things: Any) -> Iterator[None]:
    try:
        yield
    finally:
        for thing in reversed(things):
            with contextlib.suppress(Exception):
                thing.close()
