"""`guideline-ingest jobs list|show|cancel|retry|delete`: the rest of the API from a shell.

Plain lines by default (a job's text with its control characters escaped), or the raw
JSON with `--json`. The key and URL options are those of `submit`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from entrypoints.api_client import ApiClient, Job, resolve_key
from entrypoints.terminal import one_line, safe, safe_json

STATUSES = ("pending", "processing", "completed", "failed", "cancelled")


def add_arguments(jobs: argparse.ArgumentParser, common: argparse.ArgumentParser) -> None:
    actions = jobs.add_subparsers(dest="jobs_command", required=True, metavar="ACTION")
    listing = actions.add_parser("list", parents=[common], help="my jobs, newest first")
    listing.add_argument("--status", action="append", choices=STATUSES, default=[])
    listing.add_argument("--limit", type=int, default=20, help="1 to 100 (default 20)")
    listing.add_argument("--cursor", default=None, help="next page (printed after a list)")
    for name, text in (
        ("show", "one job, with its summary and checklist"),
        ("cancel", "cancel a pending or processing job"),
        ("retry", "retry a failed or cancelled job"),
        ("delete", "erase a job for good"),
    ):
        action = actions.add_parser(name, parents=[common], help=text)
        action.add_argument("event_id", metavar="ID")


def _line(job: Job) -> str:
    state = job["status"] + (f" ({job['step']})" if job.get("step") else "")
    summary = one_line(job.get("summary") or "")
    summary = summary[:77] + "…" if len(summary) > 78 else summary
    return f"{job['event_id']}\t{state}\t{job['created_at']}\t{summary}"


def _show(job: Job) -> None:
    print(f"event_id:  {job['event_id']}")
    print(f"status:    {job['status']}" + (f" ({job['step']})" if job.get("step") else ""))
    for name in ("created_at", "started_at", "finished_at"):
        print(f"{name + ':':<10} {job.get(name) or '-'}")
    print(f"attempts:  {job.get('attempts')}")
    usage = job.get("usage") or {}
    print(
        f"tokens:    {usage.get('prompt_tokens', 0)} prompt + "
        f"{usage.get('completion_tokens', 0)} completion = {usage.get('total_tokens', 0)}"
    )
    for key, value in (job.get("metadata") or {}).items():
        print(f"metadata:  {one_line(key)} = {one_line(value)}")
    if job.get("error"):
        print(f"error:     {job['error'].get('code')}: {one_line(job['error'].get('message'))}")
    if job.get("summary") is not None:
        print("\nSummary:")
        print(safe(job["summary"]))
    if job.get("checklist") is not None:
        print("\nChecklist:")
        for number, item in enumerate(job["checklist"], start=1):
            print(f"{number}. {one_line(item)}")


async def _jobs(args: argparse.Namespace) -> int:
    key = resolve_key(args.key, args.key_file)
    async with ApiClient(args.url, key) as api:
        command = args.jobs_command
        if command == "list":
            page = await api.list_jobs(args.status, args.limit, args.cursor)
            if args.json:
                print(safe_json(page))
                return 0
            for job in page["items"]:
                print(_line(job))
            if page.get("next_cursor"):
                print(f"more: --cursor {page['next_cursor']}", file=sys.stderr)
            return 0
        if command == "delete":
            await api.delete(args.event_id)
            if not args.json:
                print(f"{args.event_id}: deleted")
            return 0
        if command == "show":
            job = await api.get(args.event_id)
        elif command == "cancel":
            job = await api.cancel(args.event_id)
        else:
            job = await api.retry(args.event_id)
        if args.json:
            print(safe_json(job))
        elif command == "show":
            _show(job)
        else:
            print(f"{job['event_id']}: {job['status']}")
        return 0


def run_jobs(args: argparse.Namespace) -> int:
    return asyncio.run(_jobs(args))
