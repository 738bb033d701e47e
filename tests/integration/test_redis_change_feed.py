"""The Redis change feed on the local Redis: two feeds stand for two processes."""

from __future__ import annotations

import asyncio
import uuid

from adapters.notify.redis import RedisChangeFeed
from application.ports import JobChange
from domain import JobStatus, Step

URL = "redis://127.0.0.1:6379/0"


async def test_changes_committed_together_all_reach_the_other_process_in_order() -> None:
    sender, receiver = RedisChangeFeed(URL), RedisChangeFeed(URL)
    event_id = uuid.uuid4()
    changes = [
        JobChange(event_id, 1, JobStatus.PENDING, None, b'{"v":1}'),
        JobChange(event_id, 2, JobStatus.PROCESSING, Step.SUMMARIZE, b'{"v":2}'),
        JobChange(event_id, 3, JobStatus.PROCESSING, Step.CHECKLIST, b'{"v":3}'),
    ]
    try:
        async with receiver.watch(event_id) as stream:
            sender.publish(changes[:1])  # three commits in one loop turn: one pipeline
            sender.publish(changes[1:2])
            sender.publish(changes[2:])
            sender.publish([JobChange(uuid.uuid4(), 1, JobStatus.PENDING, None, b"{}")])
            got = [await stream.next(5.0) for _ in changes]
            assert got == changes
            assert await stream.next(0.3) is None  # another job's change is not this one's
            sender.publish(changes[2:])  # a later turn: sent on its own, still delivered
            assert await stream.next(5.0) == changes[2]
    finally:
        await sender.aclose()
        await receiver.aclose()


async def test_an_unreachable_redis_loses_the_announcement_and_nothing_fails() -> None:
    feed = RedisChangeFeed("redis://127.0.0.1:1/0")
    try:
        feed.publish([JobChange(uuid.uuid4(), 1, JobStatus.PENDING, None, b"{}")])
    finally:
        await feed.aclose()  # waits for the failed send: it logs, it does not raise


async def test_a_send_cancelled_before_it_ran_does_not_stop_later_announcements() -> None:
    sender, receiver = RedisChangeFeed(URL), RedisChangeFeed(URL)
    event_id = uuid.uuid4()
    change = JobChange(event_id, 1, JobStatus.PENDING, None, b"{}")
    try:
        async with receiver.watch(event_id) as stream:
            sender.publish([change])
            assert sender._sender is not None
            sender._sender.cancel()  # a loop shutting down, say
            await asyncio.sleep(0)
            sender.publish([change])  # a later commit is still announced
            assert await stream.next(5.0) == change
    finally:
        await sender.aclose()
        await receiver.aclose()
