"""Ports: what the application needs from the outside world, one small Protocol a role.

Each module holds one concern; this package re-exports them all.
"""

from application.ports.api_keys import ApiKeyStore
from application.ports.callbacks import CallbackBodies, CallbackStore, SendResult, WebhookSender
from application.ports.changes import ChangeFeed, ChangeStream, JobChange, JobRenderer
from application.ports.clock import Clock, IdFactory
from application.ports.dispatch import JobDispatcher, Lifecycle, ManagedDispatcher
from application.ports.jobs import JobQueries, JobStore, JobSweeps, PageAfter
from application.ports.llm import Checklist, LLMGateway, Summary
from application.ports.metrics import Metrics
from application.ports.outbox import Outbox
from application.ports.ratelimit import RateDecision, RateLimiter
from application.ports.revocations import Revocation, RevocationFeed, RevocationHandler
from application.ports.unit_of_work import UnitOfWork, UnitOfWorkFactory

__all__ = [
    "ApiKeyStore",
    "CallbackBodies",
    "CallbackStore",
    "ChangeFeed",
    "ChangeStream",
    "Checklist",
    "Clock",
    "IdFactory",
    "JobChange",
    "JobDispatcher",
    "JobQueries",
    "JobRenderer",
    "JobStore",
    "JobSweeps",
    "LLMGateway",
    "Lifecycle",
    "ManagedDispatcher",
    "Metrics",
    "Outbox",
    "PageAfter",
    "RateDecision",
    "RateLimiter",
    "Revocation",
    "RevocationFeed",
    "RevocationHandler",
    "SendResult",
    "Summary",
    "UnitOfWork",
    "UnitOfWorkFactory",
    "WebhookSender",
]
