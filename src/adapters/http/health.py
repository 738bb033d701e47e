"""Liveness, readiness and metrics: no API key needed."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping

from litestar import MediaType, Response, get
from litestar.openapi.datastructures import ResponseSpec

from adapters.http.problems import problem
from adapters.http.schemas import HealthView, Problem

ReadinessCheck = Callable[[], Awaitable[bool]]
MetricsExposition = Callable[[], Awaitable[tuple[bytes, str]]]


@get("/health/live", operation_id="healthLive", summary="Liveness", tags=["health"])
async def live() -> HealthView:
    """200 while the process runs."""
    return HealthView(status="ok")


@get(
    "/health/ready",
    operation_id="healthReady",
    summary="Readiness",
    tags=["health"],
    responses={
        503: ResponseSpec(
            Problem, description="A dependency is down.", media_type="application/problem+json"
        )
    },
)
async def ready(readiness_checks: Mapping[str, ReadinessCheck]) -> Response[HealthView]:
    """200 when the database (and the broker, if any) answer; else 503 naming what is down."""
    names = list(readiness_checks)
    results = await asyncio.gather(*(_safe(readiness_checks[n]) for n in names))
    checks = {n: "ok" if ok else "down" for n, ok in zip(names, results, strict=True)}
    down = [n for n, ok in zip(names, results, strict=True) if not ok]
    if down:
        return problem(503, f"Not ready: {', '.join(down)} down.")  # type: ignore[return-value]
    return Response(HealthView(status="ok", checks=checks))


async def _safe(check: ReadinessCheck) -> bool:
    try:
        return await asyncio.wait_for(check(), timeout=3)
    except Exception:  # a check that fails or hangs means "down"
        return False


@get(
    "/metrics",
    operation_id="metrics",
    summary="Prometheus metrics",
    tags=["health"],
    media_type=MediaType.TEXT,
)
async def metrics(metrics_exposition: MetricsExposition) -> Response[bytes]:
    """Jobs by status, step latency, LLM tokens and calls, outbox backlog, HTTP requests."""
    body, content_type = await metrics_exposition()
    return Response(body, media_type=content_type)
