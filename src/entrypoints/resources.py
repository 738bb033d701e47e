"""What a process opened (engine, clients, thread pools), closed by one call at its end."""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

Close = Callable[[], Awaitable[None] | None]


class Resources:
    """Each resource factory of the container registers how to close what it made.

    `close_all` closes everything in the reverse order of opening, so a thing is
    closed before what it was built on (the relay flushes before the engine goes);
    one failing close is logged and the others still run. Nothing is made twice:
    the container's providers are singletons.
    """

    def __init__(self) -> None:
        self._opened: list[tuple[str, Close]] = []

    def opened(self, name: str, resource: T, close: Close) -> T:
        self._opened.append((name, close))
        return resource

    async def close_all(self) -> None:
        while self._opened:
            name, close = self._opened.pop()
            try:
                result = close()
                if inspect.isawaitable(result):
                    await result
            except Exception:  # close the rest regardless
                log.warning("closing a resource failed", extra={"resource": name}, exc_info=True)

    @property
    def names(self) -> list[str]:
        """What is open now, oldest first."""
        return [name for name, _ in self._opened]
