"""Rate-limit sequences that do not depend on where they fall in the limiter's window.

The limiters count in fixed one-minute windows. A sequence of requests that happened
to straddle the end of a window would find its counts reset halfway; `in_one_window`
runs it again in that case (the next window has a minute left, ample for a sequence).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import httpx


def _resets(responses: Sequence[httpx.Response]) -> list[int]:
    return [int(r.headers["ratelimit-reset"]) for r in responses]


def one_window(responses: Sequence[httpx.Response]) -> bool:
    """Whether every counted response came from the same window: the seconds left
    (`RateLimit-Reset`) never go up from one response to the next."""
    resets = _resets(responses)
    return all(earlier >= later for earlier, later in itertools.pairwise(resets))


def in_one_window(run: Callable[[int], Sequence[httpx.Response]]) -> list[httpx.Response]:
    """`run(attempt)` until its responses all fall in one window (twice at most).

    `run` gets the attempt number (0, 1) so it can use fresh callers on a second run."""
    responses: list[httpx.Response] = []
    for attempt in range(2):
        responses = list(run(attempt))
        if one_window(responses):
            return responses
    raise AssertionError(f"two runs straddled a window: {_resets(responses)}")
