"""The in-flight cap holds under a burst of concurrent submits (serialized per owner)."""

from __future__ import annotations

import asyncio

from builders import Storage, job_count
from fakes import FakeClock, SequentialIds

from application.errors import TooManyJobsInFlight
from application.use_cases.relay_outbox import RelayOutbox
from application.use_cases.submit_job import SubmitJob, SubmitJobCommand


async def test_racing_submits_never_overshoot_the_cap(
    uow: Storage, relay: RelayOutbox, clock: FakeClock, ids: SequentialIds
) -> None:
    submit = SubmitJob(uow, relay, clock, ids, max_inflight_per_owner=3)

    async def one() -> str:
        try:
            await submit.execute(SubmitJobCommand(owner="alice", input_text="Wash hands."))
        except TooManyJobsInFlight:
            return "refused"
        return "created"

    outcomes = await asyncio.gather(*(one() for _ in range(12)))

    assert outcomes.count("created") == 3, outcomes
    assert await job_count(uow) == 3
