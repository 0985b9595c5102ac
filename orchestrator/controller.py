"""The job controller: a detached Ray actor that runs jobs inside the cluster, so a job
outlives the client that submitted it. One per cluster (named, in plait's namespace); its
threads run several jobs at once while the tier actors batch their model calls."""

from __future__ import annotations

import threading

from orchestrator.config import Config
from orchestrator.runtime import NAMESPACE, WorkerPool
from orchestrator.scheduler import Scheduler
from orchestrator.store import open_store

CONTROLLER_NAME = "plait-controller"


class JobController:
    def __init__(self, config: dict):
        self.config = Config.model_validate(config)
        self.store = open_store(self.config.redis_url)
        self.scheduler = Scheduler(self.store, WorkerPool(self.config), self.config)
        self._threads: dict[str, threading.Thread] = {}

    def start(self, job_id: str) -> str:
        """Begin running a stored job; returns at once."""
        thread = threading.Thread(target=self.scheduler.run, args=(job_id,), name=f"plait-{job_id}", daemon=True)
        self._threads[job_id] = thread
        thread.start()
        return job_id

    def running(self) -> list[str]:
        return [job_id for job_id, thread in self._threads.items() if thread.is_alive()]


def controller(config: Config):
    """The cluster's controller actor, created on first use with this client's config."""
    import ray

    return (
        ray.remote(JobController)
        .options(
            name=CONTROLLER_NAME,
            namespace=NAMESPACE,
            lifetime="detached",
            get_if_exists=True,
            max_concurrency=256,
            num_cpus=0,
            # On the head: the node that is there as long as the cluster is, and reaches its Redis.
            resources={"node:__internal_head__": 0.001},
            max_restarts=-1,
        )
        .remote(config.model_dump(mode="json"))
    )
