"""The in-process revocation fan-out: by job, in the caller's turn, one fault contained."""

from __future__ import annotations

from uuid import UUID

import pytest

from adapters.notify.local import LocalRevocationFeed
from application.ports import Revocation
from domain import JobStatus

JOB, OTHER = UUID(int=1), UUID(int=2)


def test_a_notice_reaches_every_watcher_of_its_job_and_no_other() -> None:
    feed = LocalRevocationFeed()
    first: list[Revocation] = []
    second: list[Revocation] = []
    elsewhere: list[Revocation] = []
    notice = Revocation(JOB, 1, JobStatus.CANCELLED)
    with feed.watch(JOB, first.append), feed.watch(JOB, second.append):
        with feed.watch(OTHER, elsewhere.append):
            feed.publish([notice])
        assert feed.watching == 2
    assert (first, second, elsewhere) == ([notice], [notice], [])
    assert feed.watching == 0
    feed.publish([notice])  # nobody watches: nothing happens
    assert first == [notice]


def test_a_failing_watcher_does_not_keep_the_notice_from_the_others(
    caplog: pytest.LogCaptureFixture,
) -> None:
    feed = LocalRevocationFeed()
    heard: list[Revocation] = []

    def broken(_: Revocation) -> None:
        raise RuntimeError("boom")

    with feed.watch(JOB, broken), feed.watch(JOB, heard.append):
        feed.publish([Revocation(JOB, 1, JobStatus.PENDING)])
    assert heard == [Revocation(JOB, 1, JobStatus.PENDING)]
    assert "revocation handler failed" in caplog.text
