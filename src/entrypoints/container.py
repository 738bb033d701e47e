"""The composition root: which adapter plays each port, decided once from the settings.

Built by the app / worker / CLI factories, never at import time. Tests swap an
adapter by overriding a provider (`container.llm.override(...)`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

from dependency_injector import containers, providers

from adapters.llm.fake import FakeLLM
from adapters.llm.offline import OfflineLLM
from adapters.llm.openai_gateway import OpenAIGateway, make_openai_client
from adapters.observability.metrics import PrometheusMetrics
from adapters.persistence.api_keys import SqlApiKeyStore
from adapters.persistence.engine import make_engine
from adapters.persistence.unit_of_work import sql_unit_of_work_factory
from adapters.queue.inprocess import InProcessDispatcher
from adapters.ratelimit.memory import MemoryRateLimiter
from adapters.ratelimit.redis import RedisRateLimiter
from application.use_cases.api_keys import (
    AuthenticateApiKey,
    CreateApiKey,
    ListApiKeys,
    RevokeApiKey,
)
from application.use_cases.cancel_job import CancelJob
from application.use_cases.delete_job import DeleteJob
from application.use_cases.get_job import GetJob
from application.use_cases.list_jobs import ListJobs
from application.use_cases.process_job import ProcessJob, ProcessSettings
from application.use_cases.purge_expired_jobs import PurgeExpiredJobs
from application.use_cases.recover_stuck_jobs import RecoverStuckJobs, RecoverySettings
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.retry_job import RetryJob
from application.use_cases.submit_job import SubmitJob
from entrypoints.settings import Settings


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class RandomIds:
    def new_id(self) -> UUID:
        return uuid4()


def _openai_gateway(settings: Settings) -> OpenAIGateway:
    client = make_openai_client(
        api_key=settings.openai_api_key or "unused",
        base_url=settings.openai_base_url,
        timeout_s=settings.llm_timeout_s,
        max_connections=max(settings.worker_concurrency * 2, 100),
    )
    return OpenAIGateway(client, settings.openai_model)


def _process_settings(settings: Settings) -> ProcessSettings:
    return ProcessSettings(
        lease_s=settings.job_lease_s,
        llm_max_attempts=settings.llm_max_attempts,
        retry_after_max_s=settings.llm_retry_after_max_s,
        backoff_base_s=settings.llm_backoff_base_s,
        max_deliveries=settings.max_deliveries,
    )


def _in_process_dispatcher(process_job: ProcessJob, settings: Settings) -> InProcessDispatcher:
    return InProcessDispatcher(process_job.execute, settings.worker_concurrency)


def _celery_dispatcher(settings: Settings) -> Any:
    from entrypoints.celery_app import celery_dispatcher

    return celery_dispatcher(settings)


class Container(containers.DeclarativeContainer):
    settings = providers.Dependency(instance_of=Settings)

    clock = providers.Singleton(SystemClock)
    ids = providers.Singleton(RandomIds)
    metrics = providers.Singleton(PrometheusMetrics)

    engine = providers.Singleton(
        make_engine,
        url=settings.provided.database_url,
        pool_size=settings.provided.db_pool_size,
        max_overflow=settings.provided.db_pool_max_overflow,
        pool_timeout_s=settings.provided.db_pool_timeout_s,
    )
    uow_factory = providers.Singleton(sql_unit_of_work_factory, engine)
    api_key_store = providers.Singleton(SqlApiKeyStore, engine)

    llm = providers.Selector(
        settings.provided.llm_provider,
        openai=providers.Singleton(_openai_gateway, settings),
        offline=providers.Singleton(OfflineLLM),
        fake=providers.Singleton(FakeLLM),
    )

    process_job = providers.Singleton(
        ProcessJob,
        uow_factory=uow_factory,
        llm=llm,
        clock=clock,
        settings=providers.Singleton(_process_settings, settings),
        metrics=metrics,
    )
    dispatcher = providers.Selector(
        providers.Callable(lambda s: "embedded" if s.embedded else "celery", settings),
        embedded=providers.Singleton(_in_process_dispatcher, process_job, settings),
        celery=providers.Singleton(_celery_dispatcher, settings),
    )

    relay_outbox = providers.Singleton(RelayOutbox, uow_factory, dispatcher, clock, metrics=metrics)
    recover_stuck_jobs = providers.Singleton(
        RecoverStuckJobs,
        uow_factory,
        relay_outbox,
        clock,
        providers.Singleton(
            RecoverySettings, pending_redispatch_s=settings.provided.job_pending_redispatch_s
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
    )
    purge_expired_jobs = providers.Singleton(
        PurgeExpiredJobs, uow_factory, clock, settings.provided.job_retention_days
    )
    # Shared by every API process through Redis where there is one; else per process.
    rate_limiter = providers.Selector(
        providers.Callable(lambda s: "memory" if s.embedded else "redis", settings),
        memory=providers.Singleton(MemoryRateLimiter),
        redis=providers.Singleton(RedisRateLimiter, settings.provided.celery_broker_url),
    )
    get_job = providers.Singleton(GetJob, uow_factory)
    list_jobs = providers.Singleton(ListJobs, uow_factory)
    cancel_job = providers.Singleton(CancelJob, uow_factory, clock, metrics)
    retry_job = providers.Singleton(RetryJob, uow_factory, relay_outbox, clock)
    delete_job = providers.Singleton(DeleteJob, uow_factory, clock, metrics)

    create_api_key = providers.Singleton(CreateApiKey, api_key_store, clock)
    authenticate_api_key = providers.Singleton(
        AuthenticateApiKey, api_key_store, cache_ttl_s=settings.provided.api_key_cache_s
    )
    list_api_keys = providers.Singleton(ListApiKeys, api_key_store)
    revoke_api_key = providers.Singleton(RevokeApiKey, api_key_store, clock, authenticate_api_key)


def build_container(settings: Settings) -> Container:
    return Container(settings=settings)


async def close_resources(container: Container) -> None:
    """Close what the container opened: the LLM client's pool, the database pool."""
    llm = container.llm()
    aclose = getattr(llm, "aclose", None)
    if aclose is not None:
        await aclose()
    await container.engine().dispose()
