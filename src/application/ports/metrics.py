"""What the application reports for monitoring, in the domain's words."""

from __future__ import annotations

from typing import Protocol

from domain import CallbackStatus, ErrorCode, JobStatus, Step, Usage


class Metrics(Protocol):
    def job_reached(self, status: JobStatus) -> None: ...

    def step_finished(self, step: Step, seconds: float) -> None: ...

    def llm_call(self, failure: ErrorCode | None, usage: Usage | None) -> None:
        """One LLM call: `failure` is None when it succeeded."""

    def outbox_backlog(self, rows: int) -> None: ...

    def callback_try(self, outcome: CallbackStatus) -> None:
        """One delivery try ended: delivered, waiting (to try again) or failed."""
