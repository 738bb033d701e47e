"""The retry policy of one LLM step: transient faults are tried again, with backoff."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol, TypeVar

from application.errors import LLMError, TransientLLMError
from application.ports import Metrics
from domain import Usage

log = logging.getLogger(__name__)


class _Reply(Protocol):
    @property
    def usage(self) -> Usage: ...


R = TypeVar("R", bound=_Reply)


@dataclass(frozen=True, slots=True)
class RetrySettings:
    max_attempts: int = 4
    backoff_base_s: float = 1.0
    backoff_max_s: float = 30.0
    retry_after_max_s: float = 60.0


class LLMRetryPolicy:
    """Rules:
    - a transient error (429, 5xx, timeout, lost connection) is tried again, up to
      `max_attempts` calls in all; then it is raised;
    - the wait before the next try is the provider's Retry-After when it gave one
      (capped at `retry_after_max_s`), else exponential backoff with full jitter:
      uniform(0, min(backoff_max_s, backoff_base_s * 2**(attempt-1)));
    - a permanent error is raised at once;
    - every call is counted in the metrics, with its usage when it succeeded.
    """

    def __init__(
        self,
        settings: RetrySettings,
        metrics: Metrics,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._sleep = sleep
        self._rng = rng or random.Random()

    async def call(self, attempt: Callable[[], Awaitable[R]], log_extra: dict[str, str]) -> R:
        tries = self._settings.max_attempts
        for number in range(1, tries + 1):
            try:
                result = await attempt()
            except TransientLLMError as exc:
                self._metrics.llm_call(exc.code, None)
                if number == tries:
                    raise
                delay = self.delay(number, exc.retry_after)
                log.info(
                    "llm call will be retried",
                    extra={
                        **log_extra,
                        "llm_attempt": number,
                        "error_code": exc.code,
                        "retry_in_s": round(delay, 3),
                    },
                )
                await self._sleep(delay)
                continue
            except LLMError as exc:
                self._metrics.llm_call(exc.code, None)
                raise
            self._metrics.llm_call(None, result.usage)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to wait after failed try number `attempt`."""
        if retry_after is not None:
            return min(max(retry_after, 0.0), self._settings.retry_after_max_s)
        ceiling = min(
            self._settings.backoff_max_s, self._settings.backoff_base_s * 2 ** (attempt - 1)
        )
        return self._rng.uniform(0, ceiling)
