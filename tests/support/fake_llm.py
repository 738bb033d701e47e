"""A scripted `LLMGateway` for tests: set outputs, queue failures, hold a step mid-flight.

Standard library plus the application's own types, so unit tests of use cases can
use it without any provider library.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence

from application.ports import Checklist, Summary
from domain import Step, Usage

DEFAULT_USAGE = Usage(prompt_tokens=10, completion_tokens=5, total_tokens=15)


class FakeLLM:
    """Answers from a script and records every call.

    - `summary` / `checklist`: fixed outputs; by default both are derived from the input
      (the summary is the text's start, the checklist names the summary).
    - `fail_next(step, exc, times=1)`: the next call(s) of `step` raise `exc`.
    - `hold(step)` / `release(step)`: calls of `step` wait at the gate until released;
      `await wait_entered(step)` returns once a call is waiting there.
    - `calls`: `("summarize", text)` and `("checklist", summary, source_text)` tuples.
    """

    def __init__(
        self,
        *,
        summary: str | None = None,
        checklist: Sequence[str] | None = None,
        usage: Usage = DEFAULT_USAGE,
    ) -> None:
        self.summary = summary
        self.checklist = tuple(checklist) if checklist is not None else None
        self.usage = usage
        self.calls: list[tuple[str, ...]] = []
        self._failures: dict[Step, deque[BaseException]] = {step: deque() for step in Step}
        self._gates: dict[Step, asyncio.Event] = {}
        self._entered: dict[Step, asyncio.Event] = {}

    # -- scripting -------------------------------------------------------------

    def fail_next(self, step: Step | str, exc: BaseException, times: int = 1) -> None:
        self._failures[Step(step)].extend([exc] * times)

    def hold(self, step: Step | str) -> None:
        self._gates.setdefault(Step(step), asyncio.Event())

    def release(self, step: Step | str) -> None:
        gate = self._gates.pop(Step(step), None)
        if gate is not None:
            gate.set()

    async def wait_entered(self, step: Step | str) -> None:
        """Wait until a call of `step` has started (and is held, if the step is held)."""
        await self._entered.setdefault(Step(step), asyncio.Event()).wait()

    def calls_of(self, step: Step | str) -> list[tuple[str, ...]]:
        return [call for call in self.calls if call[0] == Step(step).value]

    # -- the port --------------------------------------------------------------

    async def summarize(self, text: str) -> Summary:
        self.calls.append((Step.SUMMARIZE.value, text))
        await self._step(Step.SUMMARIZE)
        summary = self.summary if self.summary is not None else _default_summary(text)
        return Summary(text=summary, usage=self.usage)

    async def write_checklist(self, summary: str, source_text: str) -> Checklist:
        self.calls.append((Step.CHECKLIST.value, summary, source_text))
        await self._step(Step.CHECKLIST)
        items = self.checklist if self.checklist is not None else _default_checklist(summary)
        return Checklist(items=items, usage=self.usage)

    async def _step(self, step: Step) -> None:
        self._entered.setdefault(step, asyncio.Event()).set()
        gate = self._gates.get(step)
        if gate is not None:
            await gate.wait()
        failures = self._failures[step]
        if failures:
            raise failures.popleft()


def _default_summary(text: str) -> str:
    start = " ".join(text.split())[:120]
    return f"Summary: {start}" if start else "Summary: (empty text)"


def _default_checklist(summary: str) -> tuple[str, ...]:
    return (f"Review the summary ({len(summary)} characters).", "Record the review.")
