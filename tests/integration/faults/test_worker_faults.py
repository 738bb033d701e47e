"""Worker faults through the real processes: a worker killed with `kill -9` mid-run,
and a worker stopped with SIGTERM while its jobs are mid-step."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable

import pytest
from tests.integration.celery.celery_stack import GUIDELINE, Stack, StubControl
from tests.integration.faults.fault_support import (
    all_jobs,
    db_scalar,
    get_job,
    submit,
    wait_for,
    wait_terminal,
)

pytestmark = [pytest.mark.slow, pytest.mark.postgres, pytest.mark.timeout(120)]


def test_kill_9_mid_run_all_complete_and_saved_summaries_are_not_rebilled(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    """Six jobs in two waves; every LLM call takes 1.5 s, and the second wave's summary
    calls hang. The worker is killed once the first wave's summaries are saved and its
    checklist calls are in flight, while the second wave is still in its summary call.
    A new worker then recovers every job (the lease runs out, recovery dispatches it).

    Asserted exactly, with the state read after the kill (a dead worker saves nothing):
    the new worker calls the stub for a summary once per job whose summary was NOT
    saved at the kill, and for a checklist once per job not completed at the kill.
    So a saved summary is never paid for again; the calls in flight at the kill (each
    unsaved summary, each checklist under way) are the only ones repeated, once each."""
    stack = make_stack(WORKER_CONCURRENCY="10")
    stack.start_api()
    worker = stack.start_worker()
    stub.configure(latency_ms=1500, hang_s=30)
    with stack.client() as client:
        first = [submit(client, f"First {n}. {GUIDELINE}")["event_id"] for n in range(3)]
        wait_for(lambda: stub.stats()["in_flight"] == 3, 10, "the first summaries starting")
        stub.configure(script=["hang"] * 3)
        second = [submit(client, f"Second {n}. {GUIDELINE}")["event_id"] for n in range(3)]
        event_ids = {*first, *second}
        wait_for(
            lambda: stub.stats()["by_kind"]["checklist"] == 3 and stub.stats()["in_flight"] == 6,
            10,
            "the first wave's checklist calls starting",
        )
        worker.kill9()
        at_kill = all_jobs(client)
        billed_at_kill = stub.stats()["by_kind"]
        saved = {i for i in event_ids if at_kill[i]["summary"] is not None}
        unfinished = {i for i in event_ids if at_kill[i]["status"] != "completed"}
        assert saved == set(first), at_kill
        assert all(at_kill[i]["status"] == "processing" for i in event_ids), at_kill
        assert billed_at_kill == {"summary": 6, "checklist": 3}

        stack.start_worker()
        jobs = wait_terminal(client, event_ids, timeout=40)

    assert Counter(job["status"] for job in jobs.values()) == {"completed": 6}, jobs
    for event_id in saved:  # a saved summary is kept as it was, not redone
        assert jobs[event_id]["summary"] == at_kill[event_id]["summary"]
    for event_id in unfinished:
        assert jobs[event_id]["attempts"] == 2, jobs[event_id]
    billed = stub.stats()["by_kind"]
    new_summaries = billed["summary"] - billed_at_kill["summary"]
    new_checklists = billed["checklist"] - billed_at_kill["checklist"]
    assert new_summaries == len(event_ids - saved), (billed_at_kill, billed, saved)
    assert new_checklists == len(unfinished), (billed_at_kill, billed)
    assert billed["summary"] == len(event_ids) + len(event_ids - saved)
    assert db_scalar(stack.database_url, "SELECT count(*) FROM jobs") == 6


GRACE_S = 3.0
HANG_S = 30.0


def test_sigterm_lets_running_steps_finish_and_hands_the_rest_back(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    """Two slots: job A's summary call (1 s) is in flight, job B's call hangs (30 s,
    longer than the 3 s grace), job C waits in the queue. On SIGTERM the worker
    stops taking work, lets A's in-flight step finish and be saved, cancels B when
    the grace runs out and hands it back to `pending` (not failed), and exits. A new
    worker completes all three; A's summary is not paid for twice."""
    stack = make_stack(WORKER_CONCURRENCY="2", SHUTDOWN_GRACE_S=str(GRACE_S))
    stack.start_api()
    worker = stack.start_worker()
    stub.configure(latency_ms=1000, hang_s=HANG_S)
    with stack.client() as client:
        job_a = submit(client, f"A. {GUIDELINE}")["event_id"]
        wait_for(lambda: stub.stats()["in_flight"] == 1, 10, "A's summary call starting")
        stub.configure(script=["hang"])
        job_b = submit(client, f"B. {GUIDELINE}")["event_id"]
        wait_for(lambda: stub.stats()["in_flight"] == 2, 10, "B's summary call starting")
        job_c = submit(client, f"C. {GUIDELINE}")["event_id"]
        time.sleep(0.3)  # C is published; no slot is free for it
        assert get_job(client, job_c)["status"] == "pending"
        assert get_job(client, job_a)["summary"] is None  # A's step is still in flight

        stopping = time.monotonic()
        assert worker.stop(timeout=GRACE_S + 15) == 0
        took = time.monotonic() - stopping
        after_stop = {i: get_job(client, i) for i in (job_a, job_b, job_c)}
        billed_at_stop = stub.stats()["by_kind"]

        stack.start_worker()
        jobs = wait_terminal(client, {job_a, job_b, job_c}, timeout=30)

    # It waited for the grace period (B was still hanging), and did not wait for B's
    # call (30 s); the upper bound is generous for a loaded machine.
    assert GRACE_S - 0.5 <= took < GRACE_S + 12.0, took
    a, b, c = (after_stop[i] for i in (job_a, job_b, job_c))
    assert a["summary"] is not None, a  # the in-flight step finished and was saved
    # Then A either finished its checklist within the grace too, or was handed back at
    # the step boundary / when the grace ran out: never failed, never left processing.
    assert a["status"] in {"completed", "pending"}, a
    assert a["error"] is None, a
    assert b["status"] == "pending", b  # handed back, not failed
    assert (b["step"], b["summary"], b["error"]) == (None, None, None), b
    assert c["status"] == "pending", c
    assert c["attempts"] == 0, c
    assert {job["status"] for job in jobs.values()} == {"completed"}, jobs
    assert jobs[job_a]["summary"] == a["summary"]
    assert jobs[job_b]["attempts"] == 2
    assert jobs[job_c]["attempts"] == 1
    billed = stub.stats()["by_kind"]
    # A: one summary ever; B: the hung call and one more; C: one.
    assert billed["summary"] == 1 + 2 + 1, (billed_at_stop, billed)
    # One checklist each, plus A's again only if it was cut in flight by the grace.
    a_checklists_at_stop = billed_at_stop["checklist"]
    assert a_checklists_at_stop <= 1
    cut = a["status"] == "pending" and a_checklists_at_stop == 1
    assert billed["checklist"] == 3 + int(cut), (billed_at_stop, billed)


MAX_DELIVERIES = 2


def test_a_job_that_keeps_killing_its_worker_fails_as_internal_after_max_deliveries(
    make_stack: Callable[..., Stack], stub: StubControl
) -> None:
    """MAX_DELIVERIES=2: the job's summary call hangs, and its worker is killed with
    `kill -9` during it, once per delivery. Each time a new worker's recovery finds
    the lease run out and delivers the job again. The delivery after the last allowed
    one fails the job with `internal`, without another LLM call (the stub would answer
    this one, so a job run again would complete instead)."""
    stack = make_stack(MAX_DELIVERIES=str(MAX_DELIVERIES), WORKER_CONCURRENCY="2")
    stack.start_api()
    stub.configure(script=["hang"] * MAX_DELIVERIES, hang_s=60)
    deliveries = "SELECT deliveries FROM jobs WHERE status = 'processing'"
    with stack.client() as client:
        event_id = submit(client, GUIDELINE)["event_id"]
        for delivery in range(1, MAX_DELIVERIES + 1):
            worker = stack.start_worker()
            wait_for(
                lambda n=delivery: (
                    stub.stats()["by_action"].get("hang") == n and stub.stats()["in_flight"] == 1
                ),
                30,
                f"delivery {delivery}'s summary call",
            )
            assert db_scalar(stack.database_url, deliveries) == delivery
            worker.kill9()
        stack.start_worker()
        job = wait_terminal(client, {event_id}, timeout=40)[event_id]

    assert job["status"] == "failed", job
    assert job["error"]["code"] == "internal", job
    assert job["summary"] is None
    assert job["attempts"] == MAX_DELIVERIES + 1
    stats = stub.stats()
    assert stats["by_action"] == {"hang": MAX_DELIVERIES}, stats  # no call on the last one
    assert stats["in_flight"] == 0  # the killed workers' calls were cut
