"""The Store protocol: job records, status transitions, results and per-job event streams."""

from __future__ import annotations

from typing import Protocol

from orchestrator.job import Job, Result


class Store(Protocol):
    def create(self, job: Job) -> None:
        """Record a new job; its id must be unused."""

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""

    def transition(self, job_id: str, status: str) -> Job:
        """Move a job to `status`; IllegalTransition if the status machine forbids it."""

    def put_result(self, result: Result) -> None: ...

    def result(self, job_id: str) -> Result | None: ...

    def append_event(self, job_id: str, event: dict) -> int:
        """Append to the job's event stream; returns the event's sequence number (0-based)."""

    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        """Events with sequence number >= offset, oldest first."""

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        """Most recent first."""
