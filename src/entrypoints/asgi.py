"""The ASGI app factory: settings → container → Litestar app with its lifespan.

`uvicorn --factory entrypoints.asgi:create_app` or `guideline-ingest serve`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import structlog
from litestar import Litestar
from litestar.di import Provide

from adapters.http.app import create_http_app
from adapters.http.limits import RateLimits
from adapters.persistence.engine import masked_url
from adapters.persistence.health import DatabaseProbe
from adapters.persistence.migrate import upgrade
from entrypoints.container import Container, build_container, close_resources
from entrypoints.periodic import every
from entrypoints.settings import Settings, load_settings

log = structlog.get_logger(__name__)

PURGE_INTERVAL_S = 3600.0
USE_CASES = ("submit_job", "get_job", "list_jobs", "cancel_job", "retry_job", "delete_job")


def _provide(provider: Callable[[], Any]) -> Provide:
    def dependency() -> Any:
        return provider()

    return Provide(dependency, sync_to_thread=False, use_cache=True)


def _lifespan(
    container: Container, settings: Settings
) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
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
        periodic: list[tuple[float, Callable[[], Awaitable[object]], str]] = [
            (settings.recovery_interval_s, container.relay_outbox().catch_up, "relay"),
        ]
        if settings.embedded:
            # With a broker, the Celery workers run recovery and purging.
            dispatcher.start()
            resumed = await container.recover_stuck_jobs().resume_all()
            await container.relay_outbox().execute(limit=100_000)
            if resumed:
                log.info("unfinished jobs resumed", jobs=resumed)
            periodic += [
                (settings.recovery_interval_s, container.recover_stuck_jobs().execute, "recover"),
                (PURGE_INTERVAL_S, container.purge_expired_jobs().execute, "purge"),
                (PURGE_INTERVAL_S, container.prune_outbox().execute, "prune-outbox"),
            ]
        chores = [asyncio.create_task(every(*chore)) for chore in periodic]
        try:
            yield
        finally:
            for task in chores:
                task.cancel()
            await asyncio.gather(*chores, return_exceptions=True)
            if settings.embedded:
                await dispatcher.stop(settings.shutdown_grace_s)
            await container.relay_outbox().flush()
            await close_resources(container)
            log.info("service stopped")

    return lifespan


def create_app(settings: Settings | None = None, container: Container | None = None) -> Litestar:
    settings = settings or load_settings()
    container = container or build_container(settings)
    from adapters.observability.logging import configure_logging

    configure_logging(settings.log_format, settings.log_level)
    metrics = container.metrics()
    engine = container.engine()
    checks: dict[str, Callable[[], Awaitable[bool]]] = {"database": DatabaseProbe(engine)}
    if not settings.embedded:
        from entrypoints.celery_app import broker_ready

        checks["broker"] = lambda: broker_ready(settings)
    authenticate = None if settings.auth_disabled else container.authenticate_api_key().execute
    app = create_http_app(
        dependencies={name: _provide(getattr(container, name)) for name in USE_CASES},
        authenticate=authenticate,
        rate_limits=RateLimits(
            container.rate_limiter(),
            settings.rate_limit_submit_per_min,
            settings.rate_limit_read_per_min,
            settings.rate_limit_auth_failures_per_min,
        ),
        readiness_checks=checks,
        metrics_exposition=metrics.exposition,
        lifespan=[_lifespan(container, settings)],
        observe_request=metrics.http_request,
        callbacks_allow_http=settings.callbacks_allow_http,
        request_timeout_s=settings.request_timeout_s,
    )
    app.state.container = container
    return app
