"""Fill the `jobs` table with a million rows, as a long-lived deployment has them.

The rows are streamed to PostgreSQL with COPY (psycopg's `cursor.copy`, text
format, in chunks): nothing holds them all in memory. Every column starts from
a job the real worker completed in this database (read back as text, so a
column added by a later migration is carried along), then each row gets its
own id, owner, text, times and status:

- owners: `owners` of them, the bench's key's owner one of them, in turn;
- statuses: 95 % completed (the worker's summary and checklist), 2.5 % failed
  (an error, no result), 2 % cancelled, 0.25 % pending and 0.25 % processing
  (the newest rows of the fill; a processing one holds a lease for an hour, and
  the bench keeps the worker paused, so recovery takes none of them);
- a pending row has its outbox row, marked sent (it was dispatched);
- 30 % carry an Idempotency-Key and its request fingerprint, as the CLI's do;
- created over the 30 days before the oldest job already in the table, oldest
  first (as they were submitted); the unfinished ones in its last minute. So the
  newest jobs, the first page of a list, are the same before and after the fill,
  and a figure that moves shows the table's size, not other rows to show.
"""

from __future__ import annotations

import hashlib
import random
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

_ESCAPE = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})
NULL = "\\N"
CHUNK_ROWS = 5000
SPAN = timedelta(days=30)


def _text(value: str | None) -> str:
    return NULL if value is None else value.translate(_ESCAPE)


def _ts(moment: datetime) -> str:
    return moment.isoformat()


@dataclass
class Filled:
    rows: int
    outbox_rows: int
    seconds: float
    by_status: dict[str, int]
    owner_rows: int  # rows of the bench's owner
    sample_ids: list[str] = field(default_factory=list)  # completed jobs of that owner


def _template(conn: psycopg.Connection) -> tuple[list[str], dict[str, str]]:
    """Column names, and a completed job's values as COPY text."""
    columns = [
        row[0]
        for row in conn.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = 'jobs' "
            "ORDER BY ordinal_position"
        )
    ]
    casts = ", ".join(f'"{name}"::text' for name in columns)
    row = conn.execute(
        f"SELECT {casts} FROM jobs WHERE status = 'completed' ORDER BY finished_at DESC LIMIT 1"
    ).fetchone()
    if row is None:
        raise RuntimeError("no completed job to model the rows on (the warm-up makes some)")
    return columns, {name: _text(value) for name, value in zip(columns, row, strict=True)}


class _Row:
    """One row's values as COPY text, by column name (a missing column is skipped)."""

    def __init__(self, columns: list[str], template: dict[str, str]) -> None:
        self.index = {name: i for i, name in enumerate(columns)}
        self.base = [template[name] for name in columns]

    def fresh(self) -> list[str]:
        return list(self.base)

    def setter(self, values: list[str]) -> Callable[[str, str], None]:
        index = self.index

        def put(name: str, value: str) -> None:
            i = index.get(name)
            if i is not None:
                values[i] = value

        return put


def fill(
    database_url: str,
    total: int,
    bench_owner: str,
    owners: int,
    *,
    sample: int = 20000,
    seed: int = 13,
) -> Filled:
    """COPY `total` jobs (and the pending ones' outbox rows) in one transaction."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT min(created_at) FROM jobs").fetchone()
    end = (row[0] if row and row[0] else now) - timedelta(seconds=1)
    start = end - SPAN
    step = (SPAN - timedelta(minutes=1)) / max(1, total)
    owner_names = [bench_owner] + [f"tenant-{n:02d}" for n in range(1, owners)]
    by_status: dict[str, int] = {}
    pending: list[tuple[str, str]] = []
    sample_ids: list[str] = []
    eligible = 0
    owner_rows = 0
    started = time.perf_counter()
    with psycopg.connect(database_url) as conn:
        columns, template = _template(conn)
        shape = _Row(columns, template)
        source_text = template["input_text"]

        def lines() -> Iterator[str]:
            nonlocal owner_rows, eligible
            for n in range(total):
                values = shape.fresh()
                put = shape.setter(values)
                event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
                owner = owner_names[n % owners]
                draw = rng.random()
                created = start + step * n
                put("event_id", event_id)
                put("owner", owner)
                put("input_text", f"Guideline {n}. {source_text}")
                if draw < 0.95:
                    status = "completed"
                    finished = created + timedelta(seconds=2 + rng.random())
                    put("started_at", _ts(created + timedelta(milliseconds=20)))
                    put("finished_at", _ts(finished))
                    put("updated_at", _ts(finished))
                elif draw < 0.975:
                    status = "failed"
                    finished = created + timedelta(seconds=30 * rng.random())
                    for name in ("summary", "checklist", "step"):
                        put(name, NULL)
                    put("error_code", "llm_unavailable")
                    put("error_message", "The LLM service did not answer after 4 attempts.")
                    put("started_at", _ts(created + timedelta(milliseconds=20)))
                    put("finished_at", _ts(finished))
                    put("updated_at", _ts(finished))
                elif draw < 0.995:
                    status = "cancelled"
                    finished = created + timedelta(seconds=rng.random())
                    for name in ("summary", "checklist", "step", "started_at"):
                        put(name, NULL)
                    put("finished_at", _ts(finished))
                    put("updated_at", _ts(finished))
                else:
                    # the unfinished jobs are the latest ones
                    created = end - timedelta(seconds=60 * rng.random())
                    for name in ("summary", "checklist", "finished_at"):
                        put(name, NULL)
                    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
                        put(name, "0")
                    if draw < 0.9975:
                        status = "pending"
                        for name in ("step", "started_at", "lease_expires_at"):
                            put(name, NULL)
                        for name in ("attempts", "deliveries", "version"):
                            put(name, "0")
                        pending.append((event_id, _ts(created)))
                    else:
                        status = "processing"
                        put("step", "summarize")
                        put("started_at", _ts(created))
                        put("lease_expires_at", _ts(now + timedelta(hours=1)))
                        for name in ("attempts", "deliveries", "version"):
                            put(name, "1")
                    put("updated_at", _ts(created))
                put("status", status)
                put("created_at", _ts(created))
                put("dispatched_at", _ts(created))
                if rng.random() < 0.3:
                    key = f"guideline-{n:07d}"
                    put("idempotency_key", key)
                    put("request_fingerprint", hashlib.sha256(key.encode()).hexdigest())
                else:
                    put("idempotency_key", NULL)
                    put("request_fingerprint", NULL)
                by_status[status] = by_status.get(status, 0) + 1
                if owner == bench_owner:
                    owner_rows += 1
                    if status == "completed":  # a uniform sample (reservoir) to GET
                        eligible += 1
                        if len(sample_ids) < sample:
                            sample_ids.append(event_id)
                        else:
                            slot = rng.randrange(eligible)
                            if slot < sample:
                                sample_ids[slot] = event_id
                yield "\t".join(values) + "\n"

        names = ", ".join(f'"{name}"' for name in columns)
        with conn.cursor() as cur, cur.copy(f"COPY jobs ({names}) FROM STDIN") as copy:
            chunk: list[str] = []
            for line in lines():
                chunk.append(line)
                if len(chunk) >= CHUNK_ROWS:
                    copy.write("".join(chunk))
                    chunk.clear()
            if chunk:
                copy.write("".join(chunk))
        with (
            conn.cursor() as cur,
            cur.copy("COPY outbox (event_id, created_at, sent_at) FROM STDIN") as copy,
        ):
            for event_id, created in pending:
                copy.write_row((event_id, created, created))
        conn.commit()
    rng.shuffle(sample_ids)
    return Filled(
        rows=total,
        outbox_rows=len(pending),
        seconds=time.perf_counter() - started,
        by_status=by_status,
        owner_rows=owner_rows,
        sample_ids=sample_ids,
    )
