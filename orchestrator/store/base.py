"""The Store protocol: job records, status transitions, results, per-job event streams and
cancel flags. Every method naming a job raises JobNotFound when there is no such job."""

from __future__ import annotations

from typing import Protocol

from orchestrator.job import Job, Result
from plait.errors import PlaitError


class StoreUnavailable(PlaitError):
    """The store's backend cannot be reached; the message says where and what to do."""


class Store(Protocol):
    def create(self, job: Job) -> None:
        """Record a new job; ValueError if its id is taken."""

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""

    def transition(self, job_id: str, status: str) -> Job:
        """Move a job to `status`; IllegalTransition (job unchanged) if the status machine forbids it."""

    def put_result(self, result: Result) -> None: ...

    def result(self, job_id: str) -> Result | None: ...

    def append_event(self, job_id: str, event: dict) -> int:
        """Append to the job's event stream; returns the event's sequence number (0-based).
        The stored event carries "seq" and "ts" (the caller's "ts" if it gave one)."""

    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        """Events with sequence number >= offset, oldest first."""

    def wait_events(self, job_id: str, offset: int, timeout: float) -> list[dict]:
        """Like `events`, but waits up to `timeout` seconds for at least one; [] on timeout."""

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        """Most recent first."""

    def request_cancel(self, job_id: str) -> None:
        """Raise the job's cancel flag; the scheduler, maybe in another process, polls it."""

    def cancel_requested(self, job_id: str) -> bool: ...

    def ping(self) -> None:
        """StoreUnavailable if the backend cannot be reached."""
