"""In-process store: the local default. Thread-safe; gone when the process exits. Leases and
idempotency keys expire on the monotonic clock."""

from __future__ import annotations

import copy
import threading
import time
import uuid

from orchestrator.job import TERMINAL, Job, JobNotFound, NodeResult, Result, check_transition
from orchestrator.store.base import KeyClaim, check_ttl, encode_job, encode_node, encode_result


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)  # wakes wait_events
        self._jobs: dict[str, Job] = {}
        self._results: dict[str, Result] = {}
        self._nodes: dict[str, dict[str, NodeResult]] = {}
        self._events: dict[str, list[dict]] = {}
        self._cancel: set[str] = set()
        self._leases: dict[str, tuple[str, float]] = {}  # job id -> (owner, monotonic expiry)
        self._keys: dict[str, tuple[KeyClaim, float]] = {}  # idempotency key -> (claim, monotonic expiry)

    def _job(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id!r}: list jobs with `plait jobs`") from None

    def create(self, job: Job) -> None:
        encode_job(job)  # refuse what the Redis store would refuse
        with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} already exists")
            self._jobs[job.id] = copy.deepcopy(job)
            self._events[job.id] = []
            self._nodes[job.id] = {}

    def get(self, job_id: str) -> Job:
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def transition(self, job_id: str, status: str) -> Job:
        with self._lock:
            job = self._job(job_id)
            check_transition(job_id, job.status, status)
            job.status, job.updated = status, time.time()
            return copy.deepcopy(job)

    def finish(self, result: Result) -> Job:
        encode_result(result)
        with self._lock:
            job = self._job(result.job_id)
            if job.status != result.status:
                check_transition(job.id, job.status, result.status)
                job.status, job.updated = result.status, time.time()
            self._results[job.id] = copy.deepcopy(result)
            return copy.deepcopy(job)

    def result(self, job_id: str) -> Result | None:
        with self._lock:
            self._job(job_id)
            return copy.deepcopy(self._results.get(job_id))

    def put_node_result(self, job_id: str, node: NodeResult) -> None:
        encode_node(job_id, node)
        with self._lock:
            self._nodes[self._job(job_id).id][node.id] = copy.deepcopy(node)

    def node_results(self, job_id: str) -> dict[str, NodeResult]:
        with self._lock:
            return copy.deepcopy(self._nodes[self._job(job_id).id])

    def append_event(self, job_id: str, event: dict) -> int:
        with self._lock:
            stream = self._events[self._job(job_id).id]
            stream.append({**event, "seq": len(stream), "ts": event.get("ts", time.time())})
            self._appended.notify_all()
            return len(stream) - 1

    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        with self._lock:
            return copy.deepcopy(self._events[self._job(job_id).id][max(offset, 0) :])

    def wait_events(self, job_id: str, offset: int, timeout: float) -> list[dict]:
        offset = max(offset, 0)
        with self._lock:
            stream = self._events[self._job(job_id).id]
            self._appended.wait_for(lambda: len(stream) > offset, timeout)
            return copy.deepcopy(stream[offset:])

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        with self._lock:
            found = [j for j in self._jobs.values() if status is None or j.status == status]
            return copy.deepcopy(sorted(found, key=lambda j: j.created, reverse=True)[:limit])

    def request_cancel(self, job_id: str) -> None:
        with self._lock:
            self._cancel.add(self._job(job_id).id)

    def cancel_requested(self, job_id: str) -> bool:
        with self._lock:
            return self._job(job_id).id in self._cancel

    def _live_holder(self, job_id: str) -> str | None:
        owner, expires = self._leases.get(self._job(job_id).id, (None, 0.0))
        return owner if expires > time.monotonic() else None

    def acquire_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        check_ttl(ttl)
        with self._lock:
            if self._job(job_id).status in TERMINAL or self._live_holder(job_id) not in (None, owner):
                return False
            self._leases[job_id] = (owner, time.monotonic() + ttl)
            return True

    def release_lease(self, job_id: str, owner: str) -> None:
        with self._lock:
            if self._live_holder(job_id) == owner:
                del self._leases[job_id]

    def lease_holder(self, job_id: str) -> str | None:
        with self._lock:
            return self._live_holder(job_id)

    def _held(self, key: str, token: str) -> bool:
        claim, expires = self._keys.get(key, (None, 0.0))
        return claim is not None and claim.token == token and expires > time.monotonic()

    def claim_idempotency_key(self, key: str, fingerprint: str, ttl: float) -> KeyClaim:
        check_ttl(ttl)
        with self._lock:
            now = time.monotonic()
            self._keys = {k: held for k, held in self._keys.items() if held[1] > now}  # what Redis expires by itself
            if key in self._keys:
                held = self._keys[key][0]
                return KeyClaim(held.fingerprint, held.job_id)
            claim = KeyClaim(fingerprint, token=uuid.uuid4().hex)
            self._keys[key] = (claim, now + ttl)
            return copy.copy(claim)

    def bind_idempotency_key(self, key: str, token: str, job_id: str, ttl: float) -> None:
        check_ttl(ttl)
        with self._lock:
            if self._held(key, token):
                self._keys[key] = (KeyClaim(self._keys[key][0].fingerprint, job_id), time.monotonic() + ttl)

    def release_idempotency_key(self, key: str, token: str) -> None:
        with self._lock:
            if self._held(key, token):
                del self._keys[key]

    def ping(self) -> None:
        """Always reachable."""
