"""The console script against a real embedded server process: keys, submit --wait, exit codes."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.support.served import BIN, clean_env, free_port, key_parts, served

GUIDELINE = """\
Adults with asthma should use an inhaled corticosteroid every day.
Clinicians must check inhaler technique at every review.
Avoid long-acting beta agonists without an inhaled corticosteroid.
Asthma is common in primary care.
"""


def cli(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/cli.sqlite3", LLM_PROVIDER="offline", LOG_FORMAT="json"
    )


@pytest.fixture
def server(env: dict[str, str], tmp_path: Path) -> Iterator[str]:
    with served(env, tmp_path / "serve.log") as url:
        yield url


def test_keys_create_prints_the_key_alone_on_its_last_line(env: dict[str, str]) -> None:
    created = cli("keys", "create", "alice", env=env)
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    assert key.startswith("gi_")
    assert " " not in key

    key_id, secret = key_parts(key)
    listed = cli("keys", "list", env=env)
    assert "alice" in listed.stdout
    assert key_id in listed.stdout
    assert secret not in listed.stdout  # never the secret

    assert cli("keys", "revoke", key_id, env=env).returncode == 0
    assert "revoked" in cli("keys", "list", env=env).stdout
    assert cli("keys", "revoke", "nosuchkey", env=env).returncode == 1


def test_submit_wait_prints_progress_and_the_result(
    server: str, env: dict[str, str], tmp_path: Path
) -> None:
    key = cli("keys", "create", "alice", env=env).stdout.strip().splitlines()[-1]
    guideline = tmp_path / "guideline.txt"
    guideline.write_text(GUIDELINE)

    done = cli(
        "submit",
        str(guideline),
        "--wait",
        "--url",
        server,
        env=env | {"GUIDELINE_INGEST_API_KEY": key},
    )

    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    event_id = lines[0]
    assert len(event_id) == 36
    assert "Summary:" in lines
    assert "1. Ensure adults with asthma use an inhaled corticosteroid every day." in lines
    assert "3. Avoid long-acting beta agonists without an inhaled corticosteroid." in lines
    assert f"{event_id}: completed" in done.stderr
    assert key not in done.stdout + done.stderr


def test_submit_from_stdin_with_json(server: str, env: dict[str, str]) -> None:
    key = cli("keys", "create", "alice", env=env).stdout.strip().splitlines()[-1]

    done = cli(
        "submit", "-", "--wait", "--json", "--url", server, "--key", key, env=env, stdin=GUIDELINE
    )

    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "completed"
    assert job["input_text"] == GUIDELINE


def test_a_refused_request_exits_1_with_one_line(
    server: str, env: dict[str, str], tmp_path: Path
) -> None:
    guideline = tmp_path / "g.txt"
    guideline.write_text(GUIDELINE)

    refused = cli("submit", str(guideline), "--url", server, "--key", "gi_wrong_key", env=env)

    assert refused.returncode == 1
    assert refused.stderr.count("\n") == 1
    assert "401" in refused.stderr
    assert "gi_wrong_key" not in refused.stderr


def test_usage_errors_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    missing = cli("submit", str(tmp_path / "nope.txt"), env=env)
    assert missing.returncode == 2
    assert missing.stderr.count("\n") == 1
    assert cli("submit", env=env).returncode == 2
    assert cli("frobnicate", env=env).returncode == 2
    bad_setting = cli("migrate", env=env | {"LLM_TIMEOUT_S": "soon"})
    assert bad_setting.returncode == 2
    assert "LLM_TIMEOUT_S" in bad_setting.stderr


def test_an_unreachable_service_exits_1(env: dict[str, str], tmp_path: Path) -> None:
    guideline = tmp_path / "g.txt"
    guideline.write_text(GUIDELINE)
    down = cli("submit", str(guideline), "--url", f"http://127.0.0.1:{free_port()}", env=env)
    assert down.returncode == 1
    assert "cannot reach" in down.stderr
