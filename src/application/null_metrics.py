"""Metrics that go nowhere (the CLI, and use cases built without monitoring)."""

from __future__ import annotations

from domain import CallbackStatus, ErrorCode, JobStatus, Step, Usage


class NoMetrics:
    """Implements `Metrics` by doing nothing."""

    def job_reached(self, status: JobStatus) -> None:
        return None

    def step_finished(self, step: Step, seconds: float) -> None:
        return None

    def llm_call(self, failure: ErrorCode | None, usage: Usage | None) -> None:
        return None

    def outbox_backlog(self, rows: int) -> None:
        return None

    def callback_try(self, outcome: CallbackStatus) -> None:
        return None
