"""API keys in storage."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from domain import ApiKey


class ApiKeyStore(Protocol):
    """API keys. Each call is its own transaction (keys change rarely)."""

    async def add(self, key: ApiKey) -> None: ...

    async def get(self, key_id: str) -> ApiKey | None: ...

    async def all(self) -> list[ApiKey]: ...

    async def revoke(self, key_id: str, now: datetime) -> bool: ...
