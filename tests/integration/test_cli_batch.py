"""The command line for many guidelines, against real embedded servers.

A folder of 50 through `submit DIR --wait --out OUT`, a rerun that submits nothing
(counted through the API), the progress bar on a terminal, Ctrl-C and resume, the
`jobs` commands, `--key-file`, and no control character from a job on the terminal.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.support.openai_stub import StubServer
from tests.support.served import BIN, clean_env, make_key, served

TOPICS = (
    ("asthma", "an inhaled corticosteroid every day"),
    ("diabetes", "metformin as first-line therapy"),
    ("hypertension", "a blood pressure check every year"),
    ("heart failure", "an ACE inhibitor and a beta blocker"),
    ("depression", "a validated questionnaire at diagnosis"),
)
CONTROL = ("\x1b", "\x9b", "\u202e", "\x07", "\r")


def guideline(number: int) -> str:
    topic, treatment = TOPICS[number % len(TOPICS)]
    return (
        f"# Guideline {number}: {topic}\n\n"
        f"Adults with {topic} should be offered {treatment}.\n"
        f"Clinicians must review adults with {topic} every {number % 12 + 1} months.\n"
        f"Avoid stopping treatment for {topic} without a review.\n"
        f"{topic.capitalize()} is common in primary care (case {number}).\n"
    )


def cli(
    *args: str, env: dict[str, str], stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN), *args], env=env, input=stdin, capture_output=True, text=True, timeout=timeout
    )


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, str]]]:
    """One embedded server (offline LLM) for the module; each test uses its own owner."""
    folder = tmp_path_factory.mktemp("batch")
    env = clean_env(
        DATABASE_URL=f"sqlite:///{folder}/batch.sqlite3",
        LLM_PROVIDER="offline",
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
    )
    with served(env, folder / "serve.log") as url:
        yield url, env


def owner_env(env: dict[str, str], owner: str, tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A fresh owner's key, in a key file (so it never shows in `ps`)."""
    key_file = tmp_path / f"{owner}.key"
    key_file.write_text(make_key(env, owner) + "\n")
    return env, key_file


def all_jobs(url: str, key: str) -> list[dict[str, object]]:
    jobs: list[dict[str, object]] = []
    cursor = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        while True:
            params: dict[str, str | int] = {"limit": 100}
            if cursor:
                params["cursor"] = cursor
            page = api.get("/jobs", params=params).json()
            jobs += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return jobs


def write_folder(root: Path, count: int) -> None:
    for number in range(count):
        sub = root / ("cardio" if number % 3 == 0 else "general") / f"part{number % 2}"
        sub.mkdir(parents=True, exist_ok=True)
        suffix = ".md" if number % 2 else ".txt"
        (sub / f"guideline-{number:02d}{suffix}").write_text(guideline(number))
    (root / "notes.json").write_text("{}")  # neither .txt nor .md: left out
    (root / ".hidden").mkdir()
    (root / ".hidden" / "draft.txt").write_text("A hidden draft.")  # hidden: left out


@pytest.mark.slow
def test_a_folder_of_50_then_a_rerun_that_submits_nothing(
    embedded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = embedded
    env, key_file = owner_env(env, "batch50", tmp_path)
    key = key_file.read_text().strip()
    folder, out = tmp_path / "guidelines", tmp_path / "out"
    write_folder(folder, 50)
    args = ("submit", str(folder), "--wait", "--out", str(out), "--url", url)

    first = cli(*args, "--key-file", str(key_file), "--parallel", "8", env=env)

    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == 50
    assert all(line.startswith("completed\t") for line in lines), lines
    assert first.stderr.strip() == "50 inputs: 50 completed, 0 failed, 0 skipped"
    assert len(all_jobs(url, key)) == 50
    assert len(list(out.rglob("*.json"))) == 50
    assert len(list(out.rglob("*.md"))) == 50

    job = json.loads((out / "cardio" / "part0" / "guideline-00.json").read_text())
    assert job["status"] == "completed"
    assert job["input_text"] == guideline(0)
    page = (out / "general" / "part1" / "guideline-01.md").read_text()
    assert page.startswith("# Guideline 1: diabetes\n")
    summary = page.split("\n## Summary\n\n")[1].split("\n## Checklist\n\n")[0]
    assert "Clinicians must review adults with diabetes every 2 months." in summary
    checklist = page.split("\n## Checklist\n\n")[1]
    assert checklist.startswith(
        "- [ ] Ensure adults with diabetes are offered metformin as first-line therapy.\n"
    )
    assert "- [ ] Review adults with diabetes every 2 months." in page

    rerun = cli(*args, "--key-file", str(key_file), env=env)

    assert rerun.returncode == 0, rerun.stderr
    assert [line.split("\t")[0] for line in rerun.stdout.splitlines()] == ["skipped"] * 50
    assert rerun.stderr.strip() == "50 inputs: 0 completed, 0 failed, 50 skipped"
    assert len(all_jobs(url, key)) == 50

    # Without --out the same texts meet their Idempotency-Key: the same jobs, none new.
    again = cli("submit", str(folder), "--url", url, env=env | {"GUIDELINE_INGEST_API_KEY": key})
    assert again.returncode == 0, again.stderr
    ids = {line.split("\t")[2] for line in again.stdout.splitlines()}
    assert ids == {str(j["event_id"]) for j in all_jobs(url, key)}
    assert len(all_jobs(url, key)) == 50


@pytest.mark.slow
def test_a_progress_bar_on_a_terminal(embedded: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = embedded
    env, key_file = owner_env(env, "terminal", tmp_path)
    folder = tmp_path / "few"
    write_folder(folder, 6)
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [str(BIN), "submit", str(folder), "--wait", "--url", url, "--key-file", str(key_file)],
        env=env | {"COLUMNS": "160", "TERM": "xterm"},
        stdin=subprocess.DEVNULL,
        stdout=terminal,
        stderr=terminal,
    )
    os.close(terminal)
    shown = b""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([controller], [], [], 1)
        if ready:
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif process.poll() is not None:
            break
    os.close(controller)
    assert process.wait(30) == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert "6/6" in text
    assert "6 done" in text
    assert "0 failed" in text
    assert "in flight" in text
    assert "/s" in text
    assert "completed\t" not in text  # the bar, not one line per input
    assert "6 inputs: 6 completed, 0 failed, 0 skipped" in text


@pytest.mark.slow
def test_the_jobs_commands(embedded: tuple[str, dict[str, str]], tmp_path: Path) -> None:
    url, env = embedded
    env, key_file = owner_env(env, "jobs", tmp_path)
    common = ("--url", url, "--key-file", str(key_file))
    source = tmp_path / "one.txt"
    source.write_text(guideline(3))
    submitted = cli("submit", str(source), "--wait", *common, env=env)
    assert submitted.returncode == 0, submitted.stderr
    event_id = submitted.stdout.splitlines()[0]

    listed = cli("jobs", "list", *common, env=env)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith(f"{event_id}\tcompleted\t")
    as_json = json.loads(
        cli("jobs", "list", "--status", "completed", "--json", *common, env=env).stdout
    )
    assert [j["event_id"] for j in as_json["items"]] == [event_id]
    assert cli("jobs", "list", "--status", "failed", *common, env=env).stdout == ""

    shown = cli("jobs", "show", event_id, *common, env=env)
    assert shown.returncode == 0, shown.stderr
    assert "status:    completed" in shown.stdout
    assert (
        "\nChecklist:\n1. Ensure adults with heart failure are offered an ACE inhibitor"
        in shown.stdout
    )
    assert json.loads(cli("jobs", "show", event_id, "--json", *common, env=env).stdout)[
        "input_text"
    ] == guideline(3)

    finished = cli("jobs", "cancel", event_id, *common, env=env)
    assert finished.returncode == 1
    assert finished.stderr.count("\n") == 1
    assert "409" in finished.stderr

    deleted = cli("jobs", "delete", event_id, *common, env=env)
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == f"{event_id}: deleted\n"
    gone = cli("jobs", "show", event_id, *common, env=env)
    assert gone.returncode == 1
    assert "404" in gone.stderr
    assert gone.stderr.count("\n") == 1

    assert cli("jobs", "show", *common, env=env).returncode == 2  # no ID
    both = cli("jobs", "list", "--key", "k", "--key-file", str(key_file), "--url", url, env=env)
    assert both.returncode == 2
    assert both.stderr.count("\n") == 1
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    assert cli("jobs", "list", "--url", url, "--key-file", str(empty), env=env).returncode == 2


@pytest.mark.slow
def test_no_control_character_from_a_job_reaches_the_terminal(
    embedded: tuple[str, dict[str, str]], tmp_path: Path
) -> None:
    url, env = embedded
    env, key_file = owner_env(env, "hostile", tmp_path)
    key = key_file.read_text().strip()
    hostile = (
        "Adults with asthma should use an inhaled \x1b[2J\x1b]0;pwned\x07corticosteroid daily.\n"
        "Clinicians must check the \x9b31m inhaler \u202etechnique at every review.\r\n"
    )
    source = tmp_path / "hostile.txt"
    source.write_text(hostile, newline="")
    common = ("--url", url, "--key-file", str(key_file))

    done = cli("submit", str(source), "--wait", "--out", str(tmp_path / "out"), *common, env=env)

    assert done.returncode == 0, done.stderr
    event_id = done.stdout.splitlines()[0]
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        job = api.get(f"/jobs/{event_id}").json()
    # The job itself holds the characters (the precondition of this test) ...
    assert any(c in "".join([job["summary"], *job["checklist"]]) for c in CONTROL)
    # ... and nothing printed, nor the Markdown file, passes one on.
    outputs = {
        "submit": done.stdout + done.stderr,
        "show": cli("jobs", "show", event_id, *common, env=env).stdout,
        "show --json": cli("jobs", "show", event_id, "--json", *common, env=env).stdout,
        "list": cli("jobs", "list", *common, env=env).stdout,
        "md": (tmp_path / "out" / "hostile.md").read_text(),
    }
    for name, text in outputs.items():
        assert not [c for c in CONTROL if c in text], name
    assert "\\x1b[2J" in outputs["submit"]
    # Read as text (universal newlines): the CRLF reached the service as LF.
    assert json.loads(outputs["show --json"])["input_text"] == hostile.replace("\r\n", "\n")


@pytest.fixture
def slow_server(openai_stub: StubServer, tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    openai_stub.configure(latency_ms=1500)
    env = clean_env(
        DATABASE_URL=f"sqlite:///{tmp_path}/slow.sqlite3",
        LLM_PROVIDER="openai",
        OPENAI_API_KEY="sk-test-batch",
        OPENAI_BASE_URL=openai_stub.url,
        LOG_FORMAT="json",
        LOG_LEVEL="WARNING",
        SHUTDOWN_GRACE_S="1",
    )
    with served(env, tmp_path / "serve.log") as url:
        yield url, env


@pytest.mark.slow
def test_ctrl_c_leaves_jobs_running_and_a_rerun_resumes(
    slow_server: tuple[str, dict[str, str]], openai_stub: StubServer, tmp_path: Path
) -> None:
    url, env = slow_server
    env, key_file = owner_env(env, "interrupted", tmp_path)
    key = key_file.read_text().strip()
    folder, out = tmp_path / "ten", tmp_path / "out"
    write_folder(folder, 10)
    args = [str(BIN), "submit", str(folder), "--out", str(out), "--parallel", "2"]
    args += ["--url", url, "--key-file", str(key_file)]
    process = subprocess.Popen(
        args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 60
    while len(all_jobs(url, key)) < 2:
        assert time.monotonic() < deadline, "nothing was submitted"
        time.sleep(0.1)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)

    assert process.returncode == 130, stderr
    assert "Run the same command again to resume" in stderr
    assert "Traceback" not in stderr
    submitted = all_jobs(url, key)
    assert 2 <= len(submitted) < 10
    assert "cancelled" not in {j["status"] for j in submitted}  # left running

    openai_stub.configure(latency_ms=0)
    resumed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)

    assert resumed.returncode == 0, resumed.stderr
    assert len(all_jobs(url, key)) == 10  # nothing submitted twice
    assert len(list(out.rglob("*.md"))) == 10
    assert stdout.count("\n") + resumed.stdout.count("\n") >= 10


@pytest.mark.slow
def test_failures_are_named_with_their_codes_and_a_rerun_retries_them(
    slow_server: tuple[str, dict[str, str]], openai_stub: StubServer, tmp_path: Path
) -> None:
    url, env = slow_server
    env, key_file = owner_env(env, "failing", tmp_path)
    key = key_file.read_text().strip()
    folder, out = tmp_path / "three", tmp_path / "out"
    folder.mkdir()
    (folder / "a.txt").write_text(guideline(1))
    (folder / "b.txt").write_text("x" * 200_001)  # over the limit: the service says 422
    args = ["submit", str(folder), "--out", str(out), "--url", url, "--key-file", str(key_file)]
    openai_stub.configure(latency_ms=0, script=["400"])  # a.txt's first call is rejected

    first = cli(*args, env=env)

    assert first.returncode == 1, first.stderr
    assert (
        first.stderr.strip()
        == "2 inputs: 0 completed, 2 failed (http_422: 1, llm_rejected: 1), 0 skipped"
    )
    lines = sorted(line.split("\t") for line in first.stdout.splitlines())
    assert [(kind, Path(label).name, code) for kind, label, _, code in lines] == [
        ("failed", "a.txt", "llm_rejected"),
        ("failed", "b.txt", "http_422"),
    ]
    failed_id = lines[0][2]

    (folder / "b.txt").unlink()
    rerun = cli(*args, env=env)

    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.strip().split("\t") == ["completed", str(folder / "a.txt"), failed_id]
    assert [j["event_id"] for j in all_jobs(url, key)] == [failed_id]  # retried, not new
    assert (out / "a.md").read_text().startswith("# Guideline 1: diabetes\n")
