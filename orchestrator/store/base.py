"""The Store protocol: job records, status transitions, results (written as the job finishes), per-job event streams, cancel
flags, per-node results and leases (for a controller to resume another's job), and
idempotency keys (for safe retries of a submission). Every method naming a job raises
JobNotFound when there is no such job.

Both backends refuse the same records: whatever cannot be stored as JSON and read back
(`encode_job` and friends) is an InvalidInput before anything is written."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, TypeVar

from orchestrator.job import STATUSES, Job, NodeResult, Result
from plait.errors import InvalidInput, PlaitError

T = TypeVar("T")


class StoreUnavailable(PlaitError):
    """The store's backend cannot be reached; the message says where and what to do."""


@dataclass
class KeyClaim:
    """What an idempotency key holds: the fingerprint of the request it was first used with and
    the job that request created (None while it is still being submitted). `token` is set only
    for the caller whose claim took the key, which then binds or releases it."""

    fingerprint: str
    job_id: str | None = None
    token: str | None = None


class Store(Protocol):
    def create(self, job: Job) -> None:
        """Record a new job; ValueError if its id is taken."""

    def get(self, job_id: str) -> Job:
        """The job, or JobNotFound."""

    def transition(self, job_id: str, status: str) -> Job:
        """Move a job to `status`; IllegalTransition (job unchanged) if the status machine forbids it."""

    def finish(self, result: Result) -> Job:
        """Record the job's result and move it to the result's status, in one step (a job in
        that status already only gets the result); IllegalTransition, with nothing written, if
        the status machine forbids the move, so a late runner cannot overwrite a finished
        job's result."""

    def result(self, job_id: str) -> Result | None: ...

    def put_node_result(self, job_id: str, node: NodeResult) -> None:
        """Keep a finished node's full result (trace included), replacing one of the same node id."""

    def node_results(self, job_id: str) -> dict[str, NodeResult]:
        """The job's kept node results by node id ({} if none)."""

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

    def acquire_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        """Atomically take the job's lease for `ttl` seconds if nobody holds it or its holder's
        lease has expired, or renew it if `owner` holds it; False (nothing changed) if another
        owner holds a live lease or the job has finished (a finished job has nothing to run)."""

    def release_lease(self, job_id: str, owner: str) -> None:
        """Drop the job's lease if `owner` holds it; otherwise change nothing."""

    def lease_holder(self, job_id: str) -> str | None:
        """The owner of the job's live lease, or None."""

    def claim_idempotency_key(self, key: str, fingerprint: str, ttl: float) -> KeyClaim:
        """Atomically claim an unused (or expired) key for `ttl` seconds for a request with this
        fingerprint, returning a claim with a token; of concurrent claims exactly one gets it.
        A key in use returns what it holds, without a token."""

    def bind_idempotency_key(self, key: str, token: str, job_id: str, ttl: float) -> None:
        """The claimed key names `job_id` for `ttl` seconds; nothing if `token`'s claim is gone."""

    def release_idempotency_key(self, key: str, token: str) -> None:
        """Give up a claim whose request failed, so a retry can claim the key; nothing if
        `token`'s claim is gone."""

    def ping(self) -> None:
        """StoreUnavailable if the backend cannot be reached."""


def check_ttl(ttl: float) -> None:
    if not (math.isfinite(ttl) and ttl > 0):
        raise ValueError(f"a ttl is a positive number of seconds, not {ttl!r}")


def _round_trip(what: str, value: T, to_dict: Callable[[T], dict], from_dict: Callable[[dict], Any]) -> str:
    try:
        raw = json.dumps(to_dict(value))
        from_dict(json.loads(raw))
    except (TypeError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        raise InvalidInput(f"{what} cannot be stored: {exc}") from exc
    return raw


def encode_job(job: Job) -> str:
    """The job as stored, checked to read back, so a bad job never reaches a store."""
    if not isinstance(job.id, str) or not job.id:
        raise InvalidInput(f"job id must be a non-empty string, not {job.id!r}")
    if job.status not in STATUSES:
        raise InvalidInput(f"job {job.id} has unknown status {job.status!r}; expected one of {', '.join(STATUSES)}")
    if not isinstance(job.created, (int, float)) or not math.isfinite(job.created):
        raise InvalidInput(f"job {job.id} has a bad created time {job.created!r}")
    return _round_trip(f"job {job.id}", job, Job.to_dict, Job.from_dict)


def encode_result(result: Result) -> str:
    return _round_trip(f"result of job {result.job_id}", result, Result.to_dict, Result.from_dict)


def encode_node(job_id: str, node: NodeResult) -> str:
    return _round_trip(f"result of node {node.id} of job {job_id}", node, NodeResult.to_dict, NodeResult.from_dict)
