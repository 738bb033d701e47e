"""Prometheus metrics (family names are the contract in ARCHITECTURE.md)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

from domain import CallbackStatus, ErrorCode, JobStatus, Step, Usage


class PrometheusMetrics:
    """Implements the application's `Metrics` port, plus HTTP request counting.

    With `PROMETHEUS_MULTIPROC_DIR` set (several API processes), values are
    written to that folder and the exposition aggregates every process.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._jobs = Counter(
            "guideline_jobs", "Jobs reaching each status.", ["status"], registry=self.registry
        )
        self._steps = Histogram(
            "guideline_job_step_seconds",
            "Time a step took, LLM retries included.",
            ["step"],
            buckets=(0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300),
            registry=self.registry,
        )
        self._tokens = Counter(
            "guideline_llm_tokens", "LLM tokens used.", ["kind"], registry=self.registry
        )
        self._calls = Counter(
            "guideline_llm_calls", "LLM calls by outcome.", ["outcome"], registry=self.registry
        )
        self._backlog = Gauge(
            "guideline_outbox_backlog",
            "Outbox rows not yet published.",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        # Read from the database (every process's jobs), so kept apart from the
        # per-process families: its name would clash with the counter's in one registry.
        self.stored_registry = CollectorRegistry()
        self._stored = Gauge(
            "guideline_jobs",
            "Jobs in each status now, read from the database (all processes).",
            ["status"],
            registry=self.stored_registry,
        )
        self._callbacks = Counter(
            "guideline_webhook_deliveries",
            "Callback delivery tries by outcome (delivered, waiting to try again, failed).",
            ["outcome"],
            registry=self.registry,
        )
        self._http = Counter(
            "guideline_http_requests",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=self.registry,
        )

    def job_reached(self, status: JobStatus) -> None:
        self._jobs.labels(status=status.value).inc()

    def step_finished(self, step: Step, seconds: float) -> None:
        self._steps.labels(step=step.value).observe(seconds)

    def llm_call(self, failure: ErrorCode | None, usage: Usage | None) -> None:
        self._calls.labels(outcome="ok" if failure is None else failure.value).inc()
        if usage is not None:
            self._tokens.labels(kind="prompt").inc(usage.prompt_tokens)
            self._tokens.labels(kind="completion").inc(usage.completion_tokens)

    def outbox_backlog(self, rows: int) -> None:
        self._backlog.set(rows)

    def http_request(self, method: str, route: str, status: int, seconds: float) -> None:
        self._http.labels(method=method, route=route, status=str(status)).inc()

    def serve(self, port: int) -> None:
        """Serve this process's metrics on `port` (a worker has no HTTP API)."""
        start_http_server(port, addr="0.0.0.0", registry=self.registry)  # noqa: S104 - scraped over the network

    def callback_try(self, outcome: CallbackStatus) -> None:
        self._callbacks.labels(outcome=outcome.value).inc()

    def stored_jobs(self, counts: Mapping[JobStatus, int]) -> None:
        """The jobs in each status now (`guideline_jobs{status}`), as read from the database."""
        for status in JobStatus:
            self._stored.labels(status=status.value).set(counts.get(status, 0))

    def exposition(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        else:
            registry = self.registry
        text = generate_latest(registry) + generate_latest(self.stored_registry)
        return text, CONTENT_TYPE_LATEST
