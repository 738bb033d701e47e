"""SubmitJob: store a guideline as a pending job and make sure a worker will run it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from application.destinations import is_ip_literal, refusal
from application.errors import (
    CallbacksDisabled,
    DuplicateIdempotencyKey,
    IdempotencyMismatch,
    InsecureCallback,
    RefusedDestination,
    TooManyJobsInFlight,
)
from application.ports import Clock, IdFactory, JobQueries, UnitOfWorkFactory
from application.use_cases.relay_outbox import RelayOutbox
from domain import Job


@dataclass(frozen=True, slots=True)
class SubmitJobCommand:
    owner: str
    input_text: str
    metadata: dict[str, str] = field(default_factory=dict)
    callback_url: str | None = None
    idempotency_key: str | None = None
    # A digest of the request body, compared when the idempotency key is reused.
    request_fingerprint: str | None = None


@dataclass(frozen=True, slots=True)
class SubmitJobResult:
    job: Job
    created: bool


class SubmitJob:
    """Rules:
    - the job and its outbox row are written in one transaction, so a broker
      outage delays the job and never loses it;
    - after the commit the job is dispatched at once (fast path); a failed
      dispatch is left to the periodic outbox relay;
    - the same owner + Idempotency-Key with the same body returns the existing
      job (created=False); with another body, IdempotencyMismatch. A racing
      duplicate loses on the database's unique constraint and gets the winner;
    - a callback URL needs the operator's signing secret (WEBHOOK_SIGNING_SECRET);
      it must be https:// unless the operator allows http://, and a literal IP
      host must be one callbacks may go to (global unicast) unless the operator
      allows private destinations (names are checked again at delivery);
    - with `max_inflight_per_owner`, an owner with that many pending or
      processing jobs gets TooManyJobsInFlight (checked in the same transaction;
      two racing submits may overshoot by one each).
    """

    def __init__(
        self,
        uow_factory: UnitOfWorkFactory,
        relay: RelayOutbox,
        clock: Clock,
        ids: IdFactory,
        max_inflight_per_owner: int | None = None,
        callbacks_allow_http: bool = False,
        callbacks_enabled: bool = True,
        callbacks_allow_private: bool = False,
    ) -> None:
        self._callbacks_allow_http = callbacks_allow_http
        self._callbacks_enabled = callbacks_enabled
        self._callbacks_allow_private = callbacks_allow_private
        self._uow_factory = uow_factory
        self._max_inflight = max_inflight_per_owner
        self._relay = relay
        self._clock = clock
        self._ids = ids

    async def execute(self, command: SubmitJobCommand) -> SubmitJobResult:
        if command.callback_url is not None:
            self._check_callback(command.callback_url)
        if command.idempotency_key is not None:
            existing = await self._existing(command)
            if existing is not None:
                return SubmitJobResult(existing, created=False)
        now = self._clock.now()
        job = Job.submit(
            event_id=self._ids.new_id(),
            owner=command.owner,
            input_text=command.input_text,
            now=now,
            metadata=command.metadata,
            callback_url=command.callback_url,
            idempotency_key=command.idempotency_key,
            request_fingerprint=command.request_fingerprint,
        )
        try:
            async with self._uow_factory() as uow:
                await self._check_inflight(uow.queries, command.owner)
                await uow.jobs.add(job)
                await uow.outbox.add(job.event_id, now)
                await uow.commit()
        except DuplicateIdempotencyKey:
            existing = await self._existing(command)
            if existing is None:  # the winner was deleted in between
                raise
            return SubmitJobResult(existing, created=False)
        await self._relay.publish_now([job.event_id])
        return SubmitJobResult(job, created=True)

    def _check_callback(self, url: str) -> None:
        if not self._callbacks_enabled:
            raise CallbacksDisabled(
                "This service sends no callbacks: its operator has not set "
                "WEBHOOK_SIGNING_SECRET, so callback_url is refused."
            )
        if not self._callbacks_allow_http and not url.lower().startswith("https://"):
            raise InsecureCallback("callback_url must be an https:// URL on this service.")
        try:
            parts = urlsplit(url)
            host = parts.hostname or ""
        except ValueError:
            raise InsecureCallback("callback_url is not a valid URL.") from None
        if parts.username is not None or parts.password is not None:
            raise InsecureCallback("callback_url must not carry a user name or password.")
        if not self._callbacks_allow_private and is_ip_literal(host):
            reason = refusal(host)
            if reason is not None:
                raise RefusedDestination(f"callback_url is refused: {reason}.")

    async def _check_inflight(self, jobs: JobQueries, owner: str) -> None:
        if self._max_inflight is None:
            return
        if await jobs.count_unfinished(owner) >= self._max_inflight:
            raise TooManyJobsInFlight(
                f"This key already has {self._max_inflight} unfinished jobs; "
                "wait for some to finish, or cancel them."
            )

    async def _existing(self, command: SubmitJobCommand) -> Job | None:
        assert command.idempotency_key is not None
        async with self._uow_factory() as uow:
            job = await uow.queries.get_by_idempotency_key(command.owner, command.idempotency_key)
        if job is not None and job.request_fingerprint != command.request_fingerprint:
            raise IdempotencyMismatch(
                "This Idempotency-Key was already used with a different request body."
            )
        return job
