"""`guideline-ingest submit PATH...`: submits guidelines to a running service.

PATH is a file, a folder (its `*.txt` and `*.md`, recursively) or `-` (stdin).

- One file or `-`: prints the event id; with `--wait` one line per status/step change
  on stderr, then the summary and checklist (or `--json`, the job) on stdout.
- Several inputs or a folder: `--parallel` jobs in flight; on a terminal a progress bar
  on stderr, else one line per finished input on stdout; a summary at the end.
- `--out DIR` (implies `--wait`) writes `<name>.json` (the finished job) and `<name>.md`.
- Safe to rerun: each text is sent with an `Idempotency-Key` derived from its content
  (so the service returns the job it already has), an earlier failed or cancelled job
  is retried, and inputs whose completed result in `--out` holds the same text are
  skipped without a request.
- Exit 0 when every input completed (or, without `--wait`, was accepted); 1 when any
  failed; 2 for a usage error; 130 after Ctrl-C, which stops submitting, leaves the
  service's jobs running and says how to resume.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO

from entrypoints.api_client import (
    ApiClient,
    ClientError,
    Job,
    Refused,
    WaitTimedOut,
    resolve_key,
)
from entrypoints.terminal import one_line, safe, safe_json

SUFFIXES = (".txt", ".md")


@dataclass(frozen=True, slots=True)
class Input:
    """One guideline to submit: where it comes from, and the name of its results."""

    label: str  # as shown to the user
    name: str  # <name>.json / <name>.md under --out
    path: Path | None  # None: standard input


@dataclass(slots=True)
class Outcome:
    kind: str  # completed | failed | cancelled | submitted | skipped
    event_id: str | None = None
    code: str | None = None  # why it failed: the job's error code, or http_<status>, ...
    message: str = ""


def collect_inputs(paths: list[str]) -> list[Input]:
    """Files as given, folders' `*.txt` / `*.md` (sorted, hidden ones left out), `-`."""
    inputs: list[Input] = []
    for given in paths:
        if given == "-":
            inputs.append(Input("-", "stdin", None))
            continue
        path = Path(given)
        if path.is_dir():
            found = sorted(
                p
                for p in path.rglob("*")
                if p.suffix.lower() in SUFFIXES
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
            if not found:
                raise ClientError(f"no .txt or .md files in {safe(given)}", 2)
            for file in found:
                name = file.relative_to(path).with_suffix("").as_posix()
                inputs.append(Input(str(file), name, file))
        elif path.is_file():
            inputs.append(Input(given, path.stem, path))
        else:
            raise ClientError(f"no such file or folder: {safe(given)}", 2)
    if sum(1 for i in inputs if i.path is None) > 1:
        raise ClientError("- (standard input) can be given once", 2)
    return inputs


def _check_names(inputs: list[Input]) -> None:
    names: dict[str, Input] = {}
    for item in inputs:
        other = names.setdefault(item.name, item)
        if other is not item:
            raise ClientError(
                f"{safe(other.label)} and {safe(item.label)} would both write "
                f"{safe(item.name)}.json in --out",
                2,
            )


def read_text(item: Input, stdin: TextIO) -> str:
    try:
        text = stdin.read() if item.path is None else item.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ClientError(f"cannot read {safe(item.label)}: {type(exc).__name__}", 2) from None
    if not text.strip():
        raise ClientError(f"{safe(item.label)} holds no text", 2)
    return text


def idempotency_key(text: str) -> str:
    """The same text always gets the same key, so a rerun finds the job it made."""
    return "gi-sha256-" + hashlib.sha256(text.encode("utf-8")).hexdigest()


# --- results on disk --------------------------------------------------------------------


def _result_paths(out: Path, item: Input) -> tuple[Path, Path]:
    return out / f"{item.name}.json", out / f"{item.name}.md"


def already_done(out: Path, item: Input, text: str) -> str | None:
    """The event id of a completed result in `out` for this very text, if there is one."""
    json_path, md_path = _result_paths(out, item)
    try:
        job = json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(job, dict) or not md_path.is_file():
        return None
    if job.get("status") != "completed" or job.get("input_text") != text:
        return None
    return str(job.get("event_id"))


def markdown(job: Job, title: str, source: str) -> str:
    """Title, summary and the checklist as a task list (control characters escaped)."""
    lines = [
        f"# {one_line(title)}",
        "",
        f"Source: `{one_line(source)}` · job `{job['event_id']}` · completed {job['finished_at']}",
        "",
        "## Summary",
        "",
        safe(job.get("summary") or "").strip(),
        "",
        "## Checklist",
        "",
        *(f"- [ ] {one_line(item)}" for item in job.get("checklist") or []),
    ]
    return "\n".join(lines) + "\n"


def title_of(text: str, fallback: str) -> str:
    """The text's first Markdown heading, else `fallback` (the file's name)."""
    for line in text.splitlines()[:50]:
        stripped = line.strip()
        if stripped.startswith("#") and stripped.lstrip("#").strip():
            return stripped.lstrip("#").strip()
    return fallback


def write_results(out: Path, item: Input, job: Job) -> None:
    json_path, md_path = _result_paths(out, item)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    text = job.get("input_text") or ""
    fallback = Path(item.name).name.replace("-", " ").replace("_", " ")
    # The .md last: an input counts as done only once both files exist.
    json_path.write_text(safe_json(job) + "\n", encoding="utf-8")
    md_path.write_text(markdown(job, title_of(text, fallback), item.label), encoding="utf-8")


# --- progress ---------------------------------------------------------------------------


class Progress(Protocol):
    def started(self) -> None: ...
    def finished(self, item: Input, outcome: Outcome) -> None: ...
    def close(self) -> None: ...


class PlainLines:
    """Not a terminal: one tab-separated line per finished input, on stdout."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def started(self) -> None:
        pass

    def finished(self, item: Input, outcome: Outcome) -> None:
        fields = [outcome.kind, one_line(item.label), outcome.event_id or "-"]
        if outcome.code:
            fields.append(outcome.code)
        self._stream.write("\t".join(fields) + "\n")
        self._stream.flush()

    def close(self) -> None:
        pass


class ProgressBar:
    """A terminal: one rich progress bar on stderr (done / failed / in flight, rate, ETA)."""

    def __init__(self, total: int, stream: TextIO) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self._counts: Counter[str] = Counter()
        # Fits 80 columns: bar, n/total, the counts, rate, time left.
        self._progress = Progress(
            BarColumn(bar_width=16),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[done]} done[/] · [red]{task.fields[failed]} failed[/] · "
                "[cyan]{task.fields[in_flight]} in flight[/] · {task.fields[rate]} · ETA"
            ),
            TimeRemainingColumn(),
            console=Console(file=stream),
            transient=False,
        )
        self._task = self._progress.add_task(
            "guidelines", total=total, done=0, failed=0, in_flight=0, rate="-/s"
        )
        self._progress.start()

    def _refresh(self, advance: int = 0) -> None:
        task = self._progress.tasks[0]
        speed = task.finished_speed or task.speed
        self._progress.update(
            self._task,
            advance=advance,
            done=self._counts["done"],
            failed=self._counts["failed"],
            in_flight=self._counts["in_flight"],
            rate=f"{speed:.1f}/s" if speed else "-/s",
        )

    def started(self) -> None:
        self._counts["in_flight"] += 1
        self._refresh()

    def finished(self, item: Input, outcome: Outcome) -> None:
        if outcome.kind != "skipped":
            self._counts["in_flight"] -= 1
        self._counts["failed" if outcome.kind in ("failed", "cancelled") else "done"] += 1
        self._refresh(advance=1)

    def close(self) -> None:
        self._refresh()
        self._progress.stop()


# --- the run ----------------------------------------------------------------------------


@dataclass
class Batch:
    inputs: list[Input]
    wait: bool
    out: Path | None
    parallel: int
    timeout_s: float
    progress: Progress
    outcomes: dict[Input, Outcome] = field(default_factory=dict)
    in_flight: set[str] = field(default_factory=set)


async def _one(api: ApiClient, batch: Batch, item: Input, texts: dict[Input, str]) -> None:
    text = texts[item]
    if batch.out is not None and (done := already_done(batch.out, item, text)):
        batch.outcomes[item] = Outcome("skipped", done)
        batch.progress.finished(item, batch.outcomes[item])
        return
    batch.progress.started()
    try:
        outcome = await _submit_and_follow(api, batch, item, text)
    except Refused as exc:
        if exc.http_status in (401, 403):
            raise
        outcome = Outcome("failed", code=f"http_{exc.http_status}", message=str(exc))
    except WaitTimedOut as exc:  # still running on the service: a rerun picks it up
        outcome = Outcome("failed", exc.event_id, "wait_timed_out", str(exc))
    batch.outcomes[item] = outcome
    batch.progress.finished(item, outcome)


async def _submit_and_follow(api: ApiClient, batch: Batch, item: Input, text: str) -> Outcome:
    job, created = await api.submit(text, idempotency_key(text))
    if not created and job["status"] in ("failed", "cancelled"):
        job = await api.retry(job["event_id"])  # a rerun gives earlier failures another go
    if not batch.wait:
        return Outcome("submitted", job["event_id"])
    batch.in_flight.add(job["event_id"])
    job = await api.follow(job, timeout_s=batch.timeout_s)
    batch.in_flight.discard(job["event_id"])
    if job["status"] == "completed":
        if batch.out is not None:
            write_results(batch.out, item, await api.get(job["event_id"]))
        return Outcome("completed", job["event_id"])
    error = job.get("error") or {}
    code = error.get("code") if job["status"] == "failed" else "cancelled"
    return Outcome(job["status"], job["event_id"], code, one_line(error.get("message") or ""))


async def _run_batch(api: ApiClient, batch: Batch, texts: dict[Input, str]) -> None:
    gate = asyncio.Semaphore(batch.parallel)

    async def gated(item: Input) -> None:
        async with gate:
            await _one(api, batch, item, texts)

    tasks = [asyncio.create_task(gated(item)) for item in batch.inputs]
    try:
        await asyncio.gather(*tasks)  # the first error (a refused key, no service) ends all
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _summary(batch: Batch, interrupted: bool) -> str:
    kinds = Counter(o.kind for o in batch.outcomes.values())
    failed = Counter(
        o.code or o.kind
        for o in batch.outcomes.values()
        if o.kind != "completed" and o.kind not in ("submitted", "skipped")
    )
    parts = [f"{len(batch.inputs)} inputs:"]
    if batch.wait:
        parts.append(f"{kinds['completed']} completed,")
    else:
        parts.append(f"{kinds['submitted']} submitted,")
    failures = ", ".join(f"{code}: {count}" for code, count in sorted(failed.items()))
    parts.append(f"{sum(failed.values())} failed" + (f" ({failures})," if failures else ","))
    parts.append(f"{kinds['skipped']} skipped")
    not_done = len(batch.inputs) - len(batch.outcomes)
    if interrupted:
        parts.append(f"; {not_done} not finished")
    return " ".join(parts)


def run_batch(args: argparse.Namespace, inputs: list[Input], key: str | None) -> int:
    out = Path(args.out) if args.out else None
    if out is not None:
        _check_names(inputs)
        out.mkdir(parents=True, exist_ok=True)
    texts = {item: read_text(item, sys.stdin) for item in inputs}
    tty = sys.stderr.isatty()
    progress: Progress = ProgressBar(len(inputs), sys.stderr) if tty else PlainLines(sys.stdout)
    batch = Batch(inputs, args.wait or out is not None, out, args.parallel, args.timeout, progress)

    async def main() -> None:
        async with ApiClient(args.url, key) as api:
            await _run_batch(api, batch, texts)

    interrupted = False
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        interrupted = True
    finally:
        progress.close()
    print(_summary(batch, interrupted), file=sys.stderr)
    if tty:  # the bar counted them; name them
        for item, outcome in batch.outcomes.items():
            if outcome.kind in ("failed", "cancelled"):
                print(f"failed: {safe(item.label)}: {outcome.code}", file=sys.stderr)
    if interrupted:
        running = len(batch.in_flight) + sum(
            1 for o in batch.outcomes.values() if o.kind == "submitted"
        )
        print(
            f"guideline-ingest: interrupted; {running} submitted jobs keep running on the "
            "service. Run the same command again to resume: completed results are skipped "
            "and nothing is submitted twice.",
            file=sys.stderr,
        )
        return 130
    ok = all(o.kind in ("completed", "submitted", "skipped") for o in batch.outcomes.values())
    return 0 if ok and len(batch.outcomes) == len(inputs) else 1


# --- one input --------------------------------------------------------------------------


def _print_result(job: Job) -> None:
    print("Summary:")
    print(safe(job["summary"]))
    print()
    print("Checklist:")
    for number, item in enumerate(job["checklist"] or [], start=1):
        print(f"{number}. {one_line(item)}")


def _show_state(job: Job) -> None:
    state = job["status"] + (f" ({job['step']})" if job.get("step") else "")
    print(f"{job['event_id']}: {state}", file=sys.stderr, flush=True)


def run_single(args: argparse.Namespace, item: Input, key: str | None) -> int:
    text = read_text(item, sys.stdin)
    out = Path(args.out) if args.out else None
    wait = args.wait or out is not None
    if out is not None and (done := already_done(out, item, text)):
        print(
            f"skipped {safe(item.label)}: its result is in {safe(out)} (job {done})",
            file=sys.stderr,
        )
        return 0

    async def main() -> Job:
        async with ApiClient(args.url, key) as api:
            job, created = await api.submit(text, args.idempotency_key or idempotency_key(text))
            if not created and job["status"] in ("failed", "cancelled"):
                job = await api.retry(job["event_id"])
            if not args.json:
                print(job["event_id"], flush=True)
            if wait:
                job = await api.follow(job, timeout_s=args.timeout, on_change=_show_state)
                if out is not None and job["status"] == "completed":
                    write_results(out, item, await api.get(job["event_id"]))
            return job

    job = asyncio.run(main())
    if args.json:
        print(safe_json(job))
    if not wait:
        return 0
    if job["status"] == "completed":
        if not args.json:
            _print_result(job)
        return 0
    if job["status"] == "failed":
        error = job.get("error") or {}
        raise ClientError(
            f"job {job['event_id']} failed: {error.get('code')}: {one_line(error.get('message'))}"
        )
    raise ClientError(f"job {job['event_id']} was cancelled")


def run_submit(args: argparse.Namespace) -> int:
    key = resolve_key(args.key, args.key_file)
    inputs = collect_inputs(args.paths)
    single = len(inputs) == 1 and not any(Path(p).is_dir() for p in args.paths if p != "-")
    if not single and args.idempotency_key:
        raise ClientError("--idempotency-key needs a single input", 2)
    if not single and args.json:
        raise ClientError("--json needs a single input (see --out for many)", 2)
    if single:
        return run_single(args, inputs[0], key)
    return run_batch(args, inputs, key)


def _parallel(value: str) -> int:
    number = int(value)
    if not 1 <= number <= 64:
        raise argparse.ArgumentTypeError("must be 1 to 64")
    return number


def add_arguments(submit: argparse.ArgumentParser) -> None:
    submit.add_argument("paths", nargs="+", metavar="PATH", help="files, folders or - (stdin)")
    submit.add_argument("--wait", action="store_true", help="follow the jobs until they end")
    submit.add_argument("--out", metavar="DIR", help="write <name>.json and <name>.md (waits)")
    submit.add_argument(
        "--parallel", type=_parallel, default=4, metavar="N", help="jobs in flight (default 4)"
    )
    submit.add_argument("--idempotency-key", default=None, help="(one input) instead of the text's")
    submit.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait per job")
