"""The pure core: the job entity and its rules. Standard library only."""

from domain.errors import DomainError, IllegalTransition, InvalidOutput
from domain.job import (
    ALLOWED_TRANSITIONS,
    TERMINAL_STATUSES,
    ErrorCode,
    Job,
    JobError,
    JobResult,
    JobStatus,
    Step,
    Usage,
)

__all__ = [
    "ALLOWED_TRANSITIONS",
    "TERMINAL_STATUSES",
    "DomainError",
    "ErrorCode",
    "IllegalTransition",
    "InvalidOutput",
    "Job",
    "JobError",
    "JobResult",
    "JobStatus",
    "Step",
    "Usage",
]
