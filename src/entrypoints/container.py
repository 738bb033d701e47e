"""The composition root: which adapter plays each port, decided once from the settings.

Built by the app / worker / CLI factories, never at import time; one container,
so one engine, one LLM client and one Celery app, per process. Whatever a
provider opens (engine, LLM client, thread pools, Redis clients) it registers
with `resources`, and `shutdown(container)` closes it all. Tests swap an adapter
by overriding a provider (`container.llm.override(...)`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID, uuid4

from celery import Celery
from dependency_injector import containers, providers
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http.schemas import callback_body, job_document
from adapters.llm.offline import OfflineLLM

if TYPE_CHECKING:
    from adapters.llm.openai_gateway import OpenAIGateway
from adapters.notify.local import LocalChangeFeed, LocalRevocationFeed
from adapters.notify.redis import RedisChangeFeed
from adapters.notify.redis_revocations import RedisRevocationFeed
from adapters.observability.metrics import PrometheusMetrics
from adapters.persistence.api_keys import SqlApiKeyStore
from adapters.persistence.engine import make_engine
from adapters.persistence.unit_of_work import sql_unit_of_work_factory
from adapters.queue.celery_app import TaskName, create_celery_app, visibility_timeout_s
from adapters.queue.celery_dispatcher import CeleryDispatcher
from adapters.queue.inprocess import InProcessDispatcher
from adapters.ratelimit.memory import MemoryRateLimiter
from adapters.ratelimit.redis import RedisRateLimiter
from adapters.webhooks.sender import HttpWebhookSender
from application.events import (
    announce_changes,
    announce_revocations,
    count_statuses,
    publishing,
    schedule_callbacks,
)
from application.llm_retry import LLMRetryPolicy, RetrySettings
from application.ports import JobDispatcher, ManagedDispatcher, UnitOfWorkFactory
from application.use_cases.api_keys import (
    AuthenticateApiKey,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
)
from application.use_cases.cancel_job import CancelJob
from application.use_cases.count_jobs import CountJobs
from application.use_cases.delete_job import DeleteJob
from application.use_cases.deliver_callbacks import CallbackSettings, DeliverCallbacks
from application.use_cases.get_job import GetJob
from application.use_cases.list_jobs import ListJobs
from application.use_cases.process_job import ProcessJob, ProcessSettings
from application.use_cases.prune_outbox import PruneOutbox
from application.use_cases.purge_expired_jobs import PurgeExpiredJobs
from application.use_cases.recover_stuck_jobs import RecoverStuckJobs, RecoverySettings
from application.use_cases.redeliver_callback import RedeliverCallback
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.retry_job import RetryJob
from application.use_cases.submit_job import SubmitJob
from application.use_cases.watch_job import FollowJob, WaitForJob
from entrypoints.chores import ChoreWork, declare_chores
from entrypoints.resources import Resources
from entrypoints.settings import Settings

PUBLISH_TIMEOUT_S = 2.0


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    def new_id(self) -> UUID:
        return uuid4()


# -- resources: each registers how it is closed -----------------------------------


def _engine(resources: Resources, settings: Settings) -> AsyncEngine:
    engine = make_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_pool_max_overflow,
        pool_timeout_s=settings.db_pool_timeout_s,
        statement_timeout_s=settings.db_statement_timeout_s,
        lock_timeout_s=settings.db_lock_timeout_s,
    )
    return resources.opened("database engine", engine, engine.dispose)


def _openai_gateway(resources: Resources, settings: Settings) -> OpenAIGateway:
    # Imported here: the `openai` package (~50 MB of modules and models) is loaded
    # only by a process that makes LLM calls, never by the API.
    from adapters.llm.openai_gateway import OpenAIGateway, make_openai_client

    client = make_openai_client(
        api_key=settings.openai_api_key or "unused",
        base_url=settings.openai_base_url,
        timeout_s=settings.llm_timeout_s,
        max_connections=max(settings.worker_concurrency * 2, 100),
    )
    resources.opened("LLM client", client, client.close)
    return OpenAIGateway(
        client,
        settings.openai_model,
        summary_max_tokens=settings.llm_max_output_tokens_summary,
        checklist_max_tokens=settings.llm_max_output_tokens_checklist,
        max_tokens_field="max_tokens"
        if settings.llm_max_tokens_field == "max_tokens"
        else "max_completion_tokens",
    )


def _celery_app(settings: Settings) -> Celery:
    assert settings.celery_broker_url is not None  # only built in production mode
    return create_celery_app(
        settings.celery_broker_url,
        visibility_timeout_s(
            settings.llm_max_attempts, settings.llm_timeout_s, settings.llm_retry_after_max_s
        ),
    )


def _celery_dispatcher(
    resources: Resources, settings: Settings, celery_app: Celery
) -> CeleryDispatcher:
    assert settings.celery_broker_url is not None
    dispatcher = CeleryDispatcher(
        celery_app,
        settings.celery_broker_url,
        TaskName.PROCESS_JOB,
        publish_timeout_s=PUBLISH_TIMEOUT_S,
    )
    return resources.opened("broker publisher", dispatcher, dispatcher.aclose)


PEEK_CACHE_S = 1.0


def _redis_rate_limiter(resources: Resources, settings: Settings) -> RedisRateLimiter:
    assert settings.celery_broker_url is not None
    # Every request peeks at its address's failed-authentication counter: keep what was
    # read for a second (a block made by another API process shows within it).
    limiter = RedisRateLimiter(settings.celery_broker_url, peek_cache_s=PEEK_CACHE_S)
    return resources.opened("rate-limit Redis client", limiter, limiter.aclose)


def _webhook_sender(resources: Resources, settings: Settings) -> HttpWebhookSender:
    sender = HttpWebhookSender(
        settings.signing_secrets,
        settings.webhook_timeout_s,
        allow_private=settings.callbacks_allow_private,
    )
    return resources.opened("callback HTTP client", sender, sender.aclose)


def _redis_change_feed(resources: Resources, settings: Settings) -> RedisChangeFeed:
    assert settings.celery_broker_url is not None
    feed = RedisChangeFeed(settings.celery_broker_url)
    return resources.opened("change feed Redis client", feed, feed.aclose)


def _redis_revocations(resources: Resources, settings: Settings) -> RedisRevocationFeed:
    assert settings.celery_broker_url is not None
    feed = RedisRevocationFeed(settings.celery_broker_url)
    return resources.opened("revocation feed Redis clients", feed, feed.aclose)


def _relay(
    resources: Resources,
    uow_factory: UnitOfWorkFactory,
    dispatcher: JobDispatcher,
    clock: SystemClock,
    metrics: PrometheusMetrics,
) -> RelayOutbox:
    relay = RelayOutbox(uow_factory, dispatcher, clock, metrics=metrics)
    # Closed before the engine (opened after it): what the fast path published is marked sent.
    return resources.opened("outbox relay", relay, relay.flush)


def _run_mode(settings: Settings) -> str:
    return "embedded" if settings.embedded else "celery"


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)
    resources = providers.Singleton(Resources)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    metrics = providers.Singleton(PrometheusMetrics)

    engine = providers.Singleton(_engine, resources, settings)
    # Live progress: in-process in embedded mode, Redis pub/sub across processes.
    change_feed = providers.Selector(
        providers.Callable(_run_mode, settings),
        embedded=providers.Singleton(LocalChangeFeed),
        celery=providers.Singleton(_redis_change_feed, resources, settings),
    )
    # A change that takes a running job from its worker (a cancel, a hand-back, a
    # takeover) stops the step's LLM call at once: in-process in embedded mode; in
    # production a small Redis channel of its own (no documents), one subscription
    # per worker process. The heartbeat (lease/4) remains the fallback.
    revocations = providers.Selector(
        providers.Callable(_run_mode, settings),
        embedded=providers.Singleton(LocalRevocationFeed),
        celery=providers.Singleton(_redis_revocations, resources, settings),
    )
    # Every unit of work records a terminal job's callback delivery in the same
    # transaction, then publishes its jobs' events after commit (metrics count
    # them; live-progress waiters hear of the change; so does the worker of a job
    # taken from it).
    event_handlers = providers.List(
        providers.Callable(count_statuses, metrics),
        providers.Callable(announce_changes, change_feed, providers.Object(job_document)),
        providers.Callable(announce_revocations, revocations),
    )
    before_commit = providers.List(providers.Callable(schedule_callbacks, ids))
    uow_factory = providers.Singleton(
        publishing,
        providers.Singleton(sql_unit_of_work_factory, engine),
        event_handlers,
        before_commit,
    )
    api_key_store = providers.Singleton(SqlApiKeyStore, engine)

    llm = providers.Selector(
        settings.provided.llm_provider,
        openai=providers.Singleton(_openai_gateway, resources, settings),
        offline=providers.Singleton(OfflineLLM),
    )
    llm_retry = providers.Singleton(
        LLMRetryPolicy,
        providers.Singleton(
            RetrySettings,
            max_attempts=settings.provided.llm_max_attempts,
            backoff_base_s=settings.provided.llm_backoff_base_s,
            retry_after_max_s=settings.provided.llm_retry_after_max_s,
        ),
        metrics,
    )
    process_job = providers.Singleton(
        ProcessJob,
        uow_factory=uow_factory,
        llm=llm,
        clock=clock,
        retry=llm_retry,
        metrics=metrics,
        settings=providers.Singleton(
            ProcessSettings,
            lease_s=settings.provided.job_lease_s,
            max_deliveries=settings.provided.max_deliveries,
        ),
        revocations=revocations,
    )

    celery_app = providers.Singleton(_celery_app, settings)
    dispatcher: providers.Provider[ManagedDispatcher] = providers.Selector(
        providers.Callable(_run_mode, settings),
        embedded=providers.Singleton(
            InProcessDispatcher, process_job.provided.execute, settings.provided.worker_concurrency
        ),
        celery=providers.Singleton(_celery_dispatcher, resources, settings, celery_app),
    )

    relay_outbox = providers.Singleton(_relay, resources, uow_factory, dispatcher, clock, metrics)
    recover_stuck_jobs = providers.Singleton(
        RecoverStuckJobs,
        uow_factory,
        relay_outbox,
        clock,
        providers.Singleton(
            RecoverySettings,
            pending_redispatch_s=settings.provided.job_pending_redispatch_s,
            pending_redispatch_max_s=settings.provided.job_pending_redispatch_max_s,
        ),
    )
    purge_expired_jobs = providers.Singleton(
        PurgeExpiredJobs, uow_factory, clock, settings.provided.job_retention_days
    )
    prune_outbox = providers.Singleton(
        PruneOutbox, uow_factory, clock, settings.provided.outbox_retention_s
    )
    deliver_callbacks = providers.Singleton(
        DeliverCallbacks,
        uow_factory,
        providers.Singleton(_webhook_sender, resources, settings),
        providers.Object(callback_body),
        clock,
        metrics,
        providers.Singleton(
            CallbackSettings,
            timeout_s=settings.provided.webhook_timeout_s,
            backoff_base_s=settings.provided.webhook_backoff_base_s,
            max_attempts=settings.provided.webhook_max_attempts,
        ),
    )
    chores = providers.Singleton(
        declare_chores,
        settings,
        providers.Singleton(
            ChoreWork,
            relay=relay_outbox.provided.catch_up,
            recover=recover_stuck_jobs.provided.execute,
            purge=purge_expired_jobs.provided.execute,
            deliver=deliver_callbacks.provided.execute,
            prune=prune_outbox.provided.execute,
        ),
    )

    submit_job = providers.Singleton(
        SubmitJob,
        uow_factory,
        relay_outbox,
        clock,
        ids,
        max_inflight_per_owner=settings.provided.max_inflight_per_owner,
        callbacks_allow_http=settings.provided.callbacks_allow_http,
        callbacks_enabled=providers.Callable(lambda s: bool(s.signing_secrets), settings),
        callbacks_allow_private=settings.provided.callbacks_allow_private,
    )
    # Shared by every API process through Redis where there is one; else per process.
    rate_limiter = providers.Selector(
        providers.Callable(_run_mode, settings),
        embedded=providers.Singleton(MemoryRateLimiter),
        celery=providers.Singleton(_redis_rate_limiter, resources, settings),
    )
    get_job = providers.Singleton(GetJob, uow_factory)
    list_jobs = providers.Singleton(ListJobs, uow_factory)
    cancel_job = providers.Singleton(CancelJob, uow_factory, clock)
    retry_job = providers.Singleton(
        RetryJob,
        uow_factory,
        relay_outbox,
        clock,
        max_retries=settings.provided.max_retries_per_job,
        max_inflight_per_owner=settings.provided.max_inflight_per_owner,
    )
    delete_job = providers.Singleton(DeleteJob, uow_factory, clock)
    count_jobs = providers.Singleton(CountJobs, uow_factory)
    wait_for_job = providers.Singleton(WaitForJob, uow_factory, change_feed)
    follow_job = providers.Singleton(
        FollowJob, uow_factory, change_feed, providers.Object(job_document)
    )
    redeliver_callback = providers.Singleton(RedeliverCallback, uow_factory, clock)

    create_api_key = providers.Singleton(CreateApiKey, api_key_store, clock)
    authenticate_api_key = providers.Singleton(
        AuthenticateApiKey, api_key_store, cache_ttl_s=settings.provided.api_key_cache_s
    )
    list_api_keys = providers.Singleton(ListApiKeys, api_key_store)
    revoke_api_key = providers.Singleton(RevokeApiKey, api_key_store, clock, authenticate_api_key)


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


async def shutdown(container: Container) -> None:
    """Close everything this process's container opened, newest first."""
    await container.resources().close_all()
