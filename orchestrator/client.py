"""The Python API: the same verbs as the CLI and the HTTP API (solve, submit, status, result,
events, watch, cancel, jobs), one implementation under all three.

Two modes. Local (the default): Ray starts in this process and jobs run on threads here,
with the in-memory store unless PLAIT_REDIS_URL names a Redis. Cluster (an address from
`--address`, RAY_ADDRESS, the config, or a cluster started by `plait up`): jobs are stored
in Redis and run by the cluster's detached controller actor, so they keep running after
this client exits and any client can query them.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Iterator

from orchestrator import cluster
from orchestrator.config import Config, load_config
from orchestrator.job import TERMINAL, Job, Result, new_job_id
from orchestrator.runtime import WorkerPool, init_ray, shutdown_local_ray
from orchestrator.scheduler import Scheduler
from orchestrator.spec import JobSpec
from orchestrator.store import MemoryStore, Store, open_store
from plait.errors import ConfigError
from plait.events import event
from workers.strategies import make_strategy

START_TIMEOUT = 30.0  # seconds the controller may take to accept a stored job
log = logging.getLogger(__name__)


class Client:
    def __init__(
        self, address: str | None = None, *, config: Config | None = None, store: Store | None = None, discover: bool = True
    ):
        """`discover=False` ignores a `plait up` cluster and stays local unless an address is given."""
        config = config or load_config()
        if address:
            config = config.model_copy(update={"ray": config.ray.model_copy(update={"address": address})})
        elif discover and config.ray.address is None and (up := cluster.read_state()):
            config = config.model_copy(
                update={"ray": config.ray.model_copy(update={"address": up.ray_address}), "redis_url": config.redis_url or up.redis_url}
            )
        self.config = config
        self.mode = "cluster" if config.ray.address else "local"
        self.store = store or open_store(config.redis_url)
        if self.mode == "cluster" and isinstance(self.store, MemoryStore):
            raise ConfigError(
                f"cluster mode ({config.ray.address}) needs a job store every client can reach: "
                "set PLAIT_REDIS_URL (or use `plait up`, which starts one)"
            )
        self.pool = WorkerPool(config)
        self._scheduler = Scheduler(self.store, self.pool, config)
        self._owns_ray = False  # whether this client started the local Ray it runs on

    def submit(self, spec: JobSpec | dict | str) -> str:
        """Validate and store a job (a str is the problem text) and start it. Returns its id."""
        spec = JobSpec.parse({"problem": spec} if isinstance(spec, str) else spec)
        make_strategy(spec.strategy.name, spec.strategy_params())  # bad parameters fail here, not in a worker
        self.store.ping()
        job = Job(id=new_job_id(), spec=spec)
        self.store.create(job)
        self.store.append_event(job.id, event("submitted", strategy=spec.strategy.name, mode=self.mode))
        if self.mode == "cluster":
            from orchestrator.controller import controller

            init_ray(self.config)
            import ray

            try:
                ray.get(controller(self.config).start.remote(job.id), timeout=START_TIMEOUT)
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError) as exc:  # dead, restarting, or slow
                # The job is stored, so it is submitted: a controller that is restarting finds it
                # among the jobs nobody holds a lease on and starts it. Raising here would make a
                # careful client submit it a second time.
                log.warning("job %s is stored but its controller did not answer (%s): it starts when the controller is back", job.id, type(exc).__name__)
        else:
            self._owns_ray |= init_ray(self.config)
            self._scheduler.start(job.id)
        return job.id

    def solve(self, spec: JobSpec | dict | str, on_event: Callable[[dict], Any] | None = None) -> Result:
        """Submit and wait; `on_event` sees every event of the job as it happens."""
        job_id = self.submit(spec)
        for happened in self.watch(job_id):
            if on_event:
                on_event(happened)
        return self.result(job_id)

    def watch(self, job_id: str, offset: int = 0, poll: float = 1.0) -> Iterator[dict]:
        """The job's events from `offset` on, as they happen, until the job is finished."""
        while True:
            events = self.store.wait_events(job_id, offset, poll)
            for happened in events:
                offset = happened["seq"] + 1
                yield happened
                if happened["type"] == "done":
                    return
            if not events and self.status(job_id).status in TERMINAL:
                return  # finished before we looked, and its "done" is behind `offset`

    def status(self, job_id: str) -> Job:
        return self.store.get(job_id)

    def result(self, job_id: str, wait: bool = False, timeout: float | None = None) -> Result | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while wait and (self.status(job_id).status not in TERMINAL or self.store.result(job_id) is None):
            if deadline is not None and time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        return self.store.result(job_id)

    def events(self, job_id: str, offset: int = 0) -> list[dict]:
        return self.store.events(job_id, offset)

    def cancel(self, job_id: str) -> Job:
        """Stop a job: nodes not yet started never run. A finished job stays as it is."""
        job = self.store.get(job_id)
        if job.status not in TERMINAL:
            self.store.request_cancel(job_id)
            self.store.append_event(job_id, event("cancel_requested"))
        return self.store.get(job_id)

    def jobs(self, status: str | None = None, limit: int = 100) -> list[Job]:
        return self.store.jobs(status, limit)

    def close(self) -> None:
        """Release this client's worker actors (local mode), and the local Ray if this client
        started it; cluster actors stay up."""
        if self.mode == "local":
            self.pool.shutdown()
            if self._owns_ray:
                shutdown_local_ray()
                self._owns_ray = False

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
