"""The Celery app of production mode: every routing, ack and retry choice in one place.

Built from plain values by `create_celery_app`; the container owns one per
process (the API's dispatcher and the worker use the same one). Tasks are
registered on it by the worker entrypoint.
"""

from __future__ import annotations

from enum import StrEnum

from celery import Celery


class QueueName(StrEnum):
    JOBS = "guideline-ingest.jobs"


class TaskName(StrEnum):
    PROCESS_JOB = "guideline_ingest.process_job"


BROKER_CONNECT_TIMEOUT_S = 2.0
# Above kombu's BRPOP timeout (1 s), so an idle consumer is not mistaken for a dead one.
BROKER_SOCKET_TIMEOUT_S = 5.0


def visibility_timeout_s(
    llm_max_attempts: int, llm_timeout_s: float, llm_retry_after_max_s: float
) -> int:
    """Longer than the longest possible job, so Redis never hands a running job's
    message to a second worker: two steps, each up to `llm_max_attempts` calls that
    may time out and wait out a capped Retry-After; doubled, and at least an hour."""
    per_step = llm_max_attempts * (llm_timeout_s + llm_retry_after_max_s)
    return int(max(3600.0, 2 * 2 * per_step))


def create_celery_app(broker_url: str, visibility_timeout_s: int) -> Celery:
    """A Celery app on `broker_url` (redis:// or rediss://)."""
    app = Celery("guideline_ingest", broker=broker_url, set_as_current=False)
    app.conf.update(
        # At-least-once: ack after the job ran; a lost worker's message is redelivered.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        worker_cancel_long_running_tasks_on_connection_loss=True,
        broker_transport_options={
            "visibility_timeout": visibility_timeout_s,
            "socket_connect_timeout": BROKER_CONNECT_TIMEOUT_S,
            "socket_timeout": BROKER_SOCKET_TIMEOUT_S,
            # Publishing fails at once on a refused connection instead of retrying
            # (the outbox relay retries); the consumer has its own retry policy below.
            "max_retries": 0,
        },
        broker_connection_timeout=BROKER_CONNECT_TIMEOUT_S,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,
        task_serializer="json",
        accept_content=["json"],
        result_serializer="json",
        result_backend=None,
        task_ignore_result=True,
        task_default_queue=QueueName.JOBS,
        task_routes={TaskName.PROCESS_JOB: {"queue": QueueName.JOBS}},
        task_create_missing_queues=True,
        task_publish_retry=False,
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
        worker_send_task_events=False,
        enable_utc=True,
    )
    return app
