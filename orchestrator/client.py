"""The Python API: the same verbs as the CLI (solve, submit, status, result, events, cancel,
jobs). Jobs run on a background thread of this process that drives the Ray workers; the
job store holds everything a caller can ask about."""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

from orchestrator.config import Config, load_config
from orchestrator.job import TERMINAL, Job, Result, new_job_id
from orchestrator.runtime import WorkerPool
from orchestrator.scheduler import Scheduler
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore, Store
from workers.strategies import make_strategy


class Client:
    def __init__(self, address: str | None = None, *, config: Config | None = None, store: Store | None = None):
        self.config = config or load_config()
        if address:
            self.config = self.config.model_copy(update={"ray": self.config.ray.model_copy(update={"address": address})})
        self.store = store or MemoryStore()
        self.pool = WorkerPool(self.config)
        self.scheduler = Scheduler(self.store, self.pool, self.config)
        self._threads: dict[str, threading.Thread] = {}
        self._cancels: dict[str, threading.Event] = {}

    def submit(self, spec: JobSpec | dict | str) -> str:
        """Validate and queue a job (a str is the problem text); it starts at once on a background
        thread. Returns its id."""
        spec = JobSpec.parse({"problem": spec} if isinstance(spec, str) else spec)
        make_strategy(spec.strategy.name, spec.strategy.params)  # bad parameters fail here, not in a worker
        job = Job(id=new_job_id(), spec=spec)
        self.store.create(job)
        self.store.append_event(job.id, {"type": "submitted", "strategy": spec.strategy.name})
        cancel = self._cancels[job.id] = threading.Event()
        thread = threading.Thread(target=self.scheduler.run, args=(job.id, cancel), name=f"plait-{job.id}", daemon=True)
        self._threads[job.id] = thread
        thread.start()
        return job.id

    def solve(self, spec: JobSpec | dict | str, on_event: Callable[[dict], Any] | None = None) -> Result:
        """Submit and wait; `on_event` sees every event of the job as it happens."""
        job_id = self.submit(spec)
        offset = 0
        while True:
            done = self.status(job_id).status in TERMINAL and self.store.result(job_id) is not None
            for event in self.store.events(job_id, offset):
                offset = event["seq"] + 1
                if on_event:
                    on_event(event)
            if done:
                self._threads[job_id].join()
                return self.store.result(job_id)
            time.sleep(0.1)

    def status(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def result(self, job_id: str, wait: bool = False, timeout: float | None = None) -> Result | None:
        if wait and job_id in self._threads:
            self._threads[job_id].join(timeout)
        return self.store.result(job_id)

    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        return self.store.events(job_id, offset)

    def cancel(self, job_id: str) -> Job:
        """Stop a job: nodes not yet started never run. A finished job stays as it is."""
        job = self.store.get(job_id)
        if job.status not in TERMINAL and job_id in self._cancels:
            self._cancels[job_id].set()
            self.store.append_event(job_id, {"type": "cancel_requested"})
        return self.store.get(job_id)

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        return self.store.jobs(status, limit)

    def close(self) -> None:
        """Release the worker actors (Ray itself stays up for the rest of the process)."""
        self.pool.shutdown()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
