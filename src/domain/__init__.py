"""The pure core: the job entity, its state machine and events; API keys. Standard library only."""

from domain.api_key import ApiKey
from domain.callback import EVENT_TYPES, CallbackDelivery, CallbackStatus
from domain.errors import DomainError, IllegalTransition, InvalidOutput
from domain.events import JobEvent, StatusChanged, StepStarted
from domain.job import (
    ALLOWED_TRANSITIONS,
    MOVES,
    ErrorCode,
    Job,
    JobError,
    JobResult,
    Usage,
)
from domain.status import TERMINAL_STATUSES, JobStatus, Step

__all__ = [
    "ALLOWED_TRANSITIONS",
    "EVENT_TYPES",
    "MOVES",
    "TERMINAL_STATUSES",
    "ApiKey",
    "CallbackDelivery",
    "CallbackStatus",
    "DomainError",
    "ErrorCode",
    "IllegalTransition",
    "InvalidOutput",
    "Job",
    "JobError",
    "JobEvent",
    "JobResult",
    "JobStatus",
    "StatusChanged",
    "Step",
    "StepStarted",
    "Usage",
]
