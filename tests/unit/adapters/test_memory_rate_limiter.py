"""The in-memory fixed-window rate limiter."""

from __future__ import annotations

from adapters.ratelimit.memory import MemoryRateLimiter


class Ticker:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_hits_past_the_limit_are_refused_until_the_window_turns() -> None:
    ticker = Ticker()
    limiter = MemoryRateLimiter(clock=ticker)
    decisions = [await limiter.hit("k", 3, 60) for _ in range(4)]

    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 0 < decisions[-1].reset_s <= 60

    ticker.now += decisions[-1].reset_s
    assert (await limiter.hit("k", 3, 60)).allowed


async def test_keys_are_counted_apart() -> None:
    limiter = MemoryRateLimiter(clock=Ticker())
    assert (await limiter.hit("a", 1, 60)).allowed
    assert not (await limiter.hit("a", 1, 60)).allowed
    assert (await limiter.hit("b", 1, 60)).allowed


async def test_peek_tells_whether_one_more_hit_is_allowed_without_counting() -> None:
    ticker = Ticker()
    limiter = MemoryRateLimiter(clock=ticker)
    assert (await limiter.peek("k", 2, 60)).allowed
    await limiter.hit("k", 2, 60)
    for _ in range(3):  # peeking counts nothing
        peeked = await limiter.peek("k", 2, 60)
        assert (peeked.allowed, peeked.remaining) == (True, 1)
    await limiter.hit("k", 2, 60)
    refused = await limiter.peek("k", 2, 60)
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert 0 < refused.reset_s <= 60
    ticker.now += refused.reset_s
    assert (await limiter.peek("k", 2, 60)).allowed  # a new window
