"""The ASGI app factory: settings → container → Litestar app with its lifespan.

`uvicorn --factory entrypoints.asgi:create_app` or `guideline-ingest serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from litestar import Litestar

from adapters.http.app import create_http_app
from adapters.http.jobs import JobUseCases
from adapters.http.limits import RateLimits
from adapters.observability.logging import configure_logging
from adapters.persistence.engine import masked_url
from adapters.persistence.health import database_ready
from adapters.persistence.migrate import upgrade
from adapters.queue.health import broker_ready
from application.errors import StorageUnavailable
from entrypoints.chores import API_CHORES, JOB_HOST_CHORES, ChoreHost
from entrypoints.container import Container, build_container, shutdown
from entrypoints.settings import Settings, load_settings

log = structlog.get_logger(__name__)


def _lifespan(
    container: Container, settings: Settings
) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    # The embedded server runs the jobs, so it hosts every chore; with a broker
    # the workers do, and an API process only relays what it could not publish.
    hosted = JOB_HOST_CHORES if settings.embedded else API_CHORES
    chores = ChoreHost(c for c in container.chores() if c.name in hosted)

    @contextlib.asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if settings.auth_disabled:
            log.warning("AUTH_DISABLED=true: every /jobs route is open to anonymous callers")
        if settings.is_sqlite:
            await asyncio.to_thread(upgrade, settings.database_url)
        log.info(
            "service starting",
            mode="embedded" if settings.embedded else "celery",
            database=masked_url(settings.database_url),
            llm_provider=settings.llm_provider,
        )
        dispatcher = container.dispatcher()
        await dispatcher.start()
        if settings.embedded:
            # One embedded server per database: what the last run left unfinished is ours.
            resumed = await container.recover_stuck_jobs().resume_all()
            await container.relay_outbox().execute(limit=100_000)
            if resumed:
                log.info("unfinished jobs resumed", jobs=resumed)
        await chores.start()
        try:
            yield
        finally:
            await chores.stop(settings.shutdown_grace_s)
            await dispatcher.stop(settings.shutdown_grace_s)
            await shutdown(container)
            log.info("service stopped")

    return lifespan


def _readiness_checks(
    container: Container, settings: Settings
) -> dict[str, Callable[[], Awaitable[bool]]]:
    engine = container.engine()
    checks: dict[str, Callable[[], Awaitable[bool]]] = {"database": lambda: database_ready(engine)}
    broker_url = settings.celery_broker_url
    if broker_url is not None:
        checks["broker"] = lambda: broker_ready(broker_url)
    return checks


def create_app(settings: Settings | None = None, container: Container | None = None) -> Litestar:
    settings = settings or load_settings()
    container = container or build_container(settings)
    configure_logging(settings.log_format, settings.log_level)
    metrics = container.metrics()
    count_jobs = container.count_jobs()

    async def exposition() -> tuple[bytes, str]:
        # The jobs-by-status gauge is read from the database: all processes' jobs.
        with contextlib.suppress(StorageUnavailable):  # the rest is still worth serving
            metrics.stored_jobs(await count_jobs.execute())
        return metrics.exposition()

    app = create_http_app(
        use_cases=JobUseCases(
            submit_job=container.submit_job(),
            get_job=container.get_job(),
            list_jobs=container.list_jobs(),
            cancel_job=container.cancel_job(),
            retry_job=container.retry_job(),
            delete_job=container.delete_job(),
            wait_for_job=container.wait_for_job(),
            follow_job=container.follow_job(),
            redeliver_callback=container.redeliver_callback(),
        ),
        authenticate=None if settings.auth_disabled else container.authenticate_api_key().execute,
        rate_limits=RateLimits(
            container.rate_limiter(),
            settings.rate_limit_submit_per_min,
            settings.rate_limit_read_per_min,
        ),
        readiness_checks=_readiness_checks(container, settings),
        metrics_exposition=exposition,
        lifespan=[_lifespan(container, settings)],
        observe_request=metrics.http_request,
        callbacks_allow_http=settings.callbacks_allow_http,
        callbacks_enabled=bool(settings.signing_secrets),
    )
    app.state.container = container
    return app
