"""Fixtures of the browser test: Debian's Chromium, driven by Playwright, and a served app.

- `chromium`     (session) the path of Debian's `chromium` binary; installed with
                 `apt-get install -y chromium` when missing. The test FAILS, never
                 skips, when it cannot be installed or the browser does not start.
- `browser`      (module) a headless Chromium launched through Playwright with
                 `executable_path` (Playwright never downloads a browser here).
- `console_app`  (function) `guideline-ingest serve` in embedded mode on a SQLite file,
                 its LLM the local OpenAI-compatible stub (whose latency makes the steps
                 visible); yields (base URL, API key).
- `offline_console_app`  the same with the offline provider (the default embedded mode).
- `artifacts`    the folder for screenshots: `test-artifacts/console/` at the repo root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Playwright, sync_playwright
from tests.support.openai_stub import StubServer
from tests.support.served import clean_env, make_key, served

ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = "/usr/bin/chromium"


def _install_chromium() -> None:
    """Debian's package, as root (CI and the dev machines run as root)."""
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "chromium", "fonts-dejavu-core"]
    if subprocess.run(install, env=env, capture_output=True, timeout=900).returncode == 0:
        return
    subprocess.run(["apt-get", "update"], env=env, capture_output=True, timeout=600, check=False)
    done = subprocess.run(install, env=env, capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        pytest.fail(f"cannot install chromium: {done.stderr[-2000:]}", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> str:
    if not Path(CHROMIUM).is_file() and shutil.which("apt-get"):
        _install_chromium()
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"no browser at {CHROMIUM} (apt-get install chromium)", pytrace=False)
    return CHROMIUM


# Module scope, not session: while Playwright's sync API runs it holds an event loop
# in this thread, which the asyncio tests of other modules must not meet.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright, chromium: str) -> Iterator[Browser]:
    try:
        launched = playwright.chromium.launch(executable_path=chromium, headless=True)
    except Exception as error:  # the test fails, never skips, without a browser
        pytest.fail(f"Chromium did not start: {error}", pytrace=False)
    try:
        yield launched
    finally:
        launched.close()


@pytest.fixture
def console_app(openai_stub: StubServer, tmp_path: Path) -> Iterator[tuple[str, str]]:
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/console.sqlite3",
        LLM_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-console",
        OPENAI_BASE_URL=openai_stub.url,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        SHUTDOWN_GRACE_S="1",
    )
    key = make_key(env, "console")
    with served(env, tmp_path / "serve.log") as url:
        yield url, key


@pytest.fixture
def offline_console_app(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The default embedded mode: SQLite and the offline provider."""
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/offline.sqlite3",
        LLM_PROVIDER="offline",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    key = make_key(env, "offline")
    with served(env, tmp_path / "serve.log") as url:
        yield url, key


@pytest.fixture
def artifacts() -> Path:
    folder = ROOT / "test-artifacts" / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder
