"""Errors raised by the domain when a rule is broken."""


class DomainError(Exception):
    """Base of every error the domain raises."""


class IllegalTransition(DomainError):
    """A status change the job's rules do not allow."""
