"""The console script as a real process: a free port, a clean environment, `serve`, keys."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

BIN = Path(sys.executable).parent / "guideline-ingest"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without OpenAI or client settings, plus `settings`."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "GUIDELINE"))}
    return inherited | settings


def make_key(env: dict[str, str], owner: str = "alice") -> str:
    """`guideline-ingest keys create OWNER`; the key is the last line it prints."""
    created = subprocess.run(
        [str(BIN), "keys", "create", owner],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return created.stdout.strip().splitlines()[-1]


def key_parts(key: str) -> tuple[str, str]:
    """(key id, secret) of a `gi_<id>_<secret>` key. The id is 16 hex digits; the secret
    (`secrets.token_urlsafe(32)`, 43 characters) may itself hold `_`, so split twice only."""
    prefix, key_id, secret = key.split("_", 2)
    assert prefix == "gi", key
    assert len(key_id) == 16, key
    assert len(secret) == 43, key
    return key_id, secret


def start_serving(
    env: dict[str, str], log_path: Path, timeout_s: float = 90.0
) -> tuple[subprocess.Popen[bytes], str]:
    """`guideline-ingest serve` on a free port, ready; the process and its base URL.

    Output is appended to `log_path` (several servers may share one log)."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(BIN), "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError(f"the server did not start: {log_path.read_text()[-3000:]}")
        time.sleep(0.1)


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if it does not end within 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def served(env: dict[str, str], log_path: Path, timeout_s: float = 90.0) -> Iterator[str]:
    """`guideline-ingest serve` on a free port until ready; yields its base URL."""
    process, url = start_serving(env, log_path, timeout_s)
    try:
        yield url
    finally:
        stop(process)
