"""An API key's public record: who it belongs to, and whether it still opens the door."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class ApiKey:
    """The secret is never stored, only its hash."""

    key_id: str
    owner: str
    secret_hash: str
    created_at: datetime
    revoked_at: datetime | None = None
