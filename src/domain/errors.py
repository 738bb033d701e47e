"""Errors raised by the domain when a rule is broken."""


class DomainError(Exception):
    """Base of every error the domain raises."""


class IllegalTransition(DomainError):
    """A status change the job's rules do not allow."""


class InvalidOutput(DomainError):
    """A step output the job cannot keep (a blank summary, an empty checklist)."""


class RetryLimitReached(DomainError):
    """The job was retried as many times as allowed."""
