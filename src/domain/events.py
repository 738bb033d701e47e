"""What happened to a job, recorded by the entity at the change and read after commit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from uuid import UUID

from domain.status import JobStatus, Step


@dataclass(frozen=True, slots=True)
class StatusChanged:
    """The job reached `target` (from `source`; None when it was just submitted)."""

    event_id: UUID
    source: JobStatus | None
    target: JobStatus
    at: datetime


@dataclass(frozen=True, slots=True)
class StepStarted:
    """A processing job moved on to `step` (the summary was saved)."""

    event_id: UUID
    step: Step
    at: datetime


JobEvent = StatusChanged | StepStarted
