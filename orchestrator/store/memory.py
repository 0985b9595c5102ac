"""In-process store: the local default. Thread-safe; gone when the process exits."""

from __future__ import annotations

import copy
import threading
import time

from orchestrator.job import Job, JobNotFound, Result, check_transition


class MemoryStore:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._appended = threading.Condition(self._lock)  # wakes wait_events
        self._jobs: dict[str, Job] = {}
        self._results: dict[str, Result] = {}
        self._events: dict[str, list[dict]] = {}
        self._cancel: set[str] = set()

    def _job(self, job_id: str) -> Job:
        try:
            return self._jobs[job_id]
        except KeyError:
            raise JobNotFound(f"no job {job_id!r}: list jobs with `plait jobs`") from None

    def create(self, job: Job) -> None:
        with self._lock:
            if job.id in self._jobs:
                raise ValueError(f"job {job.id} already exists")
            self._jobs[job.id] = copy.deepcopy(job)
            self._events[job.id] = []

    def get(self, job_id: str) -> Job:
        with self._lock:
            return copy.deepcopy(self._job(job_id))

    def transition(self, job_id: str, status: str) -> Job:
        with self._lock:
            job = self._job(job_id)
            check_transition(job_id, job.status, status)
            job.status, job.updated = status, time.time()
            return copy.deepcopy(job)

    def put_result(self, result: Result) -> None:
        with self._lock:
            self._job(result.job_id)
            self._results[result.job_id] = copy.deepcopy(result)

    def result(self, job_id: str) -> Result | None:
        with self._lock:
            self._job(job_id)
            return copy.deepcopy(self._results.get(job_id))

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

    def ping(self) -> None:
        """Always reachable."""
