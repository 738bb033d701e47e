"""The scripted fake LLM used by use-case tests."""

from __future__ import annotations

import asyncio

import pytest
from tests.support.fake_llm import FakeLLM

from application.errors import TransientLLMError
from domain import ErrorCode, Step, Usage


async def test_records_calls_and_returns_usage() -> None:
    llm = FakeLLM(summary="S.", checklist=["Do A.", "Do B."])
    summary = await llm.summarize("text")
    checklist = await llm.write_checklist(summary.text, "text")
    assert (summary.text, checklist.items) == ("S.", ("Do A.", "Do B."))
    assert summary.usage.total_tokens > 0
    assert summary.usage + checklist.usage == Usage(20, 10, 30)
    assert llm.calls == [("summarize", "text"), ("checklist", "S.", "text")]


async def test_queued_failures_are_raised_once_each() -> None:
    llm = FakeLLM()
    error = TransientLLMError(ErrorCode.LLM_RATE_LIMITED, "slow down", retry_after=1.0)
    llm.fail_next(Step.SUMMARIZE, error, times=2)
    for _ in range(2):
        with pytest.raises(TransientLLMError):
            await llm.summarize("text")
    assert (await llm.summarize("text")).text.startswith("Summary:")
    assert len(llm.calls_of("summarize")) == 3


async def test_hold_keeps_a_step_in_flight_until_released() -> None:
    llm = FakeLLM()
    llm.hold(Step.CHECKLIST)
    task = asyncio.create_task(llm.write_checklist("S.", "text"))
    await llm.wait_entered(Step.CHECKLIST)
    await asyncio.sleep(0)
    assert not task.done()
    llm.release(Step.CHECKLIST)
    assert (await task).items
