"""The periodic chores, declared once, and the host that runs them on an event loop.

Which process hosts which chore: the process that runs jobs (the embedded
server, or each Celery worker) hosts all of them; an API process with a broker
hosts only the relay (to publish what its fast path could not). Running a
chore in several processes at once is harmless by design: the relay takes rows
with `FOR UPDATE SKIP LOCKED`, recovery changes a job only with a
compare-and-set, a duplicate dispatch is a no-op at the claim, erasing an
erased job finds it gone, and a callback delivery is taken with `FOR UPDATE
SKIP LOCKED` and held while it is tried.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import structlog

from entrypoints.settings import Settings

log = structlog.get_logger(__name__)

CHORE_TIMEOUT_S = 60.0


class ChoreName(StrEnum):
    RELAY = "relay"  # publish outbox rows the fast path left behind
    RECOVER = "recover"  # stuck processing jobs and forgotten pending ones
    PURGE = "purge"  # the retention period
    DELIVER = "deliver"  # callbacks that are due


JOB_HOST_CHORES = frozenset(ChoreName)
API_CHORES = frozenset({ChoreName.RELAY})


@dataclass(frozen=True, slots=True)
class Chore:
    name: ChoreName
    interval_s: float
    run: Callable[[], Awaitable[object]]


class ChoreWork:
    """What each chore does; given by the container."""

    def __init__(
        self,
        relay: Callable[[], Awaitable[object]],
        recover: Callable[[], Awaitable[object]],
        purge: Callable[[], Awaitable[object]],
        deliver: Callable[[], Awaitable[object]],
    ) -> None:
        self.by_name = {
            ChoreName.RELAY: relay,
            ChoreName.RECOVER: recover,
            ChoreName.PURGE: purge,
            ChoreName.DELIVER: deliver,
        }


def declare_chores(settings: Settings, work: ChoreWork) -> list[Chore]:
    """Every chore with its interval (RELAY_INTERVAL_S, RECOVERY_INTERVAL_S,
    PURGE_INTERVAL_S, CALLBACK_INTERVAL_S)."""
    intervals = {
        ChoreName.RELAY: settings.relay_interval_s,
        ChoreName.RECOVER: settings.recovery_interval_s,
        ChoreName.PURGE: settings.purge_interval_s,
        ChoreName.DELIVER: settings.callback_interval_s,
    }
    return [Chore(name, intervals[name], work.by_name[name]) for name in ChoreName]


class ChoreHost:
    """Runs the chores it is given, each on its own task, until stopped (a `Lifecycle`)."""

    def __init__(self, chores: Iterable[Chore]) -> None:
        self._chores: Sequence[Chore] = list(chores)
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def names(self) -> list[ChoreName]:
        return [chore.name for chore in self._chores]

    async def start(self) -> None:
        self._tasks = [
            asyncio.create_task(every(c.interval_s, c.run, c.name), name=f"chore-{c.name}")
            for c in self._chores
        ]

    async def stop(self, grace_s: float) -> None:
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=max(grace_s, 1.0))
        self._tasks = []


async def every(interval_s: float, work: Callable[[], Awaitable[object]], name: str) -> None:
    """Run `work` every `interval_s` until cancelled; a failed round is logged, not fatal."""
    # Jitter spreads the chores of several processes apart.
    await asyncio.sleep(random.uniform(0, interval_s))
    while True:
        try:
            # A round that hangs (a lost reply, a stuck lock) must not stop later rounds.
            async with asyncio.timeout(max(CHORE_TIMEOUT_S, interval_s)):
                await work()
        except Exception as exc:  # a chore never takes the process down; next round retries
            log.warning("periodic task failed", task=name, error=type(exc).__name__)
        await asyncio.sleep(interval_s)
