"""Helpers of the fault-injection suite: a private PostgreSQL server, job polling."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from psycopg import sql
from tests.integration.celery.celery_stack import free_port

PG_BIN = Path(os.environ.get("GI_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
Job = dict[str, Any]
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class PrivatePostgres:
    """A PostgreSQL server in a temporary directory, run as the `postgres` user when
    this process is root (`initdb` refuses root)."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="gi-faults-pg-"))
        self.data = self.root / "data"
        self.log_path = self.root / "server.log"
        self.port = free_port()
        self.admin_url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_postgres: list[str] = []
        self._frozen: list[int] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, user="postgres", group="postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        self.root.chmod(0o755)

    def _run(self, *command: str, timeout: float = 60) -> None:
        done = subprocess.run(
            [*self._as_postgres, *command], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(command)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}\n"
                f"{self.log()[-2000:]}"
            )

    def init(self) -> None:
        self._run(str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def start(self) -> None:
        self.thaw()
        if self.running():
            return
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c max_connections=200"
        )
        self._run(
            str(PG_BIN / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log_path),
            "-o",
            options,
            "-w",
            "-t",
            "30",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` disconnects clients and shuts down cleanly; `immediate` is a crash."""
        if self.running():
            self._run(str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def pids(self) -> list[int]:
        """The postmaster and every process it started (backends, checkpointer, ...)."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                # "pid (comm) state ppid ...": comm may hold spaces, so split after ")".
                if int(stat.read_text().rpartition(")")[2].split()[1]) == postmaster:
                    children.append(int(stat.parent.name))
        return [postmaster, *children]

    def freeze(self) -> None:
        """SIGSTOP every process of the server: connections stay open and accepted by the
        kernel, but nothing answers (a stuck server, as seen by its clients)."""
        self._frozen = self.pids()
        for pid in self._frozen:  # the postmaster first: it forks no new backend
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)

    def thaw(self) -> None:
        """SIGCONT what `freeze` stopped (a no-op when nothing is frozen)."""
        frozen, self._frozen = self._frozen, []
        for pid in reversed(frozen):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def log(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")
        return ""

    def create_database(self) -> str:
        name = f"gi_faults_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return f"postgresql://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        self.thaw()
        with contextlib.suppress(Exception):
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def wait_for(check: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Polls `check` until it returns something truthy; fails the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout}s")
        time.sleep(interval)


def submit(client: httpx.Client, text: str, **extra: Any) -> Job:
    response = client.post("/jobs", json={"input_text": text, **extra})
    assert response.status_code == 202, response.text
    job: Job = response.json()
    return job


def get_job(client: httpx.Client, event_id: str) -> Job:
    response = client.get(f"/jobs/{event_id}")
    assert response.status_code == 200, response.text
    job: Job = response.json()
    return job


def all_jobs(client: httpx.Client) -> dict[str, Job]:
    """Every job of the key's owner, by event id (lists leave out `input_text`)."""
    found: dict[str, Job] = {}
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        response = client.get("/jobs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        found.update((job["event_id"], job) for job in page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return found


def wait_terminal(client: httpx.Client, event_ids: set[str], timeout: float) -> dict[str, Job]:
    """Waits until every job is terminal; returns them all (fails the test on timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        jobs = all_jobs(client)
        missing = event_ids - set(jobs)
        assert not missing, f"jobs lost from the listing: {sorted(missing)}"
        waiting = {i for i in event_ids if jobs[i]["status"] not in TERMINAL}
        if not waiting:
            return {i: jobs[i] for i in event_ids}
        if time.monotonic() > deadline:
            states = sorted((jobs[i]["status"], jobs[i]["step"]) for i in waiting)
            pytest.fail(f"{len(waiting)} jobs not terminal after {timeout}s: {states[:10]}")
        time.sleep(0.2)


def db_scalar(database_url: str, query: str) -> Any:
    """One value from the database, read directly (not through the service)."""
    with psycopg.connect(database_url, connect_timeout=5) as conn:
        row = conn.execute(query).fetchone()
    assert row is not None
    return row[0]
