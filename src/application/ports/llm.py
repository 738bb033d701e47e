"""The two LLM steps."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from domain import Usage


@dataclass(frozen=True, slots=True)
class Summary:
    text: str
    usage: Usage


@dataclass(frozen=True, slots=True)
class Checklist:
    items: tuple[str, ...]
    usage: Usage


class LLMGateway(Protocol):
    """The two LLM steps. Raises TransientLLMError / PermanentLLMError only."""

    async def summarize(self, text: str) -> Summary: ...

    async def write_checklist(self, summary: str, source_text: str) -> Checklist: ...
