"""Time and identities, as ports so that tests control them."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol
from uuid import UUID


class Clock(Protocol):
    def now(self) -> datetime:
        """Timezone-aware UTC now."""


class IdFactory(Protocol):
    def new_id(self) -> UUID: ...
