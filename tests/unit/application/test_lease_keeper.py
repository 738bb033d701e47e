"""LeaseKeeper: beats while the block runs, through the injected sleep (no real waiting)."""

from __future__ import annotations

import asyncio

from application.lease_keeper import LeaseKeeper


class Beats:
    """A `sleep` that returns only when the test lets a beat through; records the delays."""

    def __init__(self) -> None:
        self.delays: list[float] = []
        self._beats: asyncio.Queue[None] = asyncio.Queue()

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await self._beats.get()

    def beat(self) -> None:
        self._beats.put_nowait(None)


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_renews_once_per_beat_at_the_interval() -> None:
    beats = Beats()
    renewals: list[int] = []

    async def renew() -> bool:
        renewals.append(len(renewals) + 1)
        return True

    async with LeaseKeeper(15.0, beats).kept(renew, {}):
        await settle()
        assert renewals == []  # nothing before the first interval has passed
        beats.beat()
        await settle()
        beats.beat()
        await settle()
        assert renewals == [1, 2]
    assert set(beats.delays) == {15.0}


async def test_stops_when_the_job_is_no_longer_ours() -> None:
    beats = Beats()
    calls = 0

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        return False

    async with LeaseKeeper(1.0, beats).kept(renew, {}):
        beats.beat()
        await settle()
        beats.beat()
        beats.beat()
        await settle()
    assert calls == 1


async def test_a_failed_renewal_is_tried_again_at_the_next_beat() -> None:
    beats = Beats()
    outcomes = iter([RuntimeError("db hiccup"), True])
    calls = 0

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        result = next(outcomes)
        if isinstance(result, Exception):
            raise result
        return result

    async with LeaseKeeper(1.0, beats).kept(renew, {"event_id": "x"}):
        beats.beat()
        await settle()
        beats.beat()
        await settle()
    assert calls == 2


async def test_leaving_the_block_stops_the_beats() -> None:
    beats = Beats()
    calls = 0

    async def renew() -> bool:
        nonlocal calls
        calls += 1
        return True

    async with LeaseKeeper(1.0, beats).kept(renew, {}):
        await settle()
    beats.beat()
    await settle()
    assert calls == 0
