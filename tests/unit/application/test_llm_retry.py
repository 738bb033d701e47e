"""LLMRetryPolicy: which faults are tried again, how long it waits, what it counts."""

from __future__ import annotations

import random
from dataclasses import dataclass

import pytest

from application.errors import PermanentLLMError, TransientLLMError
from application.llm_retry import LLMRetryPolicy, RetrySettings
from domain import ErrorCode, Usage

SETTINGS = RetrySettings(max_attempts=4, backoff_base_s=1, backoff_max_s=3, retry_after_max_s=20)


@dataclass
class Reply:
    usage: Usage


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


class CountingMetrics:
    def __init__(self) -> None:
        self.calls: list[tuple[ErrorCode | None, Usage | None]] = []

    def job_reached(self, status: object) -> None: ...

    def step_finished(self, step: object, seconds: float) -> None: ...

    def outbox_backlog(self, rows: int) -> None: ...

    def llm_call(self, failure: ErrorCode | None, usage: Usage | None) -> None:
        self.calls.append((failure, usage))


def script(*outcomes: Exception | Reply):  # type: ignore[no-untyped-def]
    remaining = list(outcomes)

    async def attempt() -> Reply:
        outcome = remaining.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return attempt


def policy(sleeps: Sleeps, metrics: CountingMetrics) -> LLMRetryPolicy:
    return LLMRetryPolicy(SETTINGS, metrics, sleeps, random.Random(3))


async def test_transient_faults_are_retried_with_full_jitter_under_a_doubling_cap() -> None:
    sleeps, metrics = Sleeps(), CountingMetrics()
    fault = TransientLLMError(ErrorCode.LLM_UNAVAILABLE, "503")
    reply = Reply(Usage(1, 2, 3))

    assert await policy(sleeps, metrics).call(script(fault, fault, fault, reply), {}) == reply

    assert len(sleeps.delays) == 3
    assert all(0 <= d <= cap for d, cap in zip(sleeps.delays, [1, 2, 3], strict=True))
    assert len(set(sleeps.delays)) == 3  # jittered, not fixed
    unavailable = ErrorCode.LLM_UNAVAILABLE
    assert metrics.calls == [(unavailable, None)] * 3 + [(None, Usage(1, 2, 3))]


async def test_retry_after_is_honoured_and_capped() -> None:
    sleeps, metrics = Sleeps(), CountingMetrics()
    limited = [
        TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429", retry_after=7.5),
        TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429", retry_after=999),
        TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "429", retry_after=-1),
    ]
    await policy(sleeps, metrics).call(script(*limited, Reply(Usage())), {})
    assert sleeps.delays == [7.5, 20, 0.0]


async def test_the_last_transient_fault_is_raised_after_max_attempts() -> None:
    sleeps, metrics = Sleeps(), CountingMetrics()
    faults = [TransientLLMError(ErrorCode.LLM_TIMEOUT, "t") for _ in range(4)]
    with pytest.raises(TransientLLMError) as raised:
        await policy(sleeps, metrics).call(script(*faults), {})
    assert raised.value is faults[-1]
    assert len(sleeps.delays) == 3
    assert len(metrics.calls) == 4


async def test_a_permanent_fault_is_raised_at_once() -> None:
    sleeps, metrics = Sleeps(), CountingMetrics()
    with pytest.raises(PermanentLLMError):
        await policy(sleeps, metrics).call(
            script(PermanentLLMError(ErrorCode.LLM_REJECTED, "400"), Reply(Usage())), {}
        )
    assert sleeps.delays == []
    assert metrics.calls == [(ErrorCode.LLM_REJECTED, None)]
