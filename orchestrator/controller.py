"""The job controller: a detached Ray actor that runs jobs inside the cluster, so a job
outlives the client that submitted it. One per cluster (named, in plait's namespace); its
threads run several jobs at once while the tier actors batch their model calls.

Ray restarts it when its process dies (without a cap). Every job it runs holds a lease in
the store; the controller looks for unfinished jobs whose lease has lapsed, at start and then
every half lease, and resumes them: a controller that came back finishes what its previous
life had started.
"""

from __future__ import annotations

import logging
import os
import threading
import time

from orchestrator.config import Config
from plait.errors import ConfigError
from orchestrator.runtime import NAMESPACE, WorkerPool
from orchestrator.scheduler import Scheduler
from orchestrator.store import StoreUnavailable, open_store

CONTROLLER_NAME = "plait-controller"
log = logging.getLogger(__name__)


class JobController:
    def __init__(self, config: dict, lease_seconds: float | None = None):
        self.config = Config.model_validate(config)
        self.store = open_store(self.config.redis_url)
        options = {} if lease_seconds is None else {"lease_seconds": lease_seconds}
        self.scheduler = Scheduler(self.store, WorkerPool(self.config), self.config, **options)
        threading.Thread(target=self._look_for_orphans, name="plait-orphans", daemon=True).start()

    def _look_for_orphans(self) -> None:
        while True:
            try:
                resumed = self.scheduler.resume_orphans()
                if resumed:
                    log.warning("resumed jobs whose runner had died: %s", ", ".join(resumed))
            except StoreUnavailable:
                pass  # the store is away; look again later
            except Exception:  # the search must outlive any one failure
                log.exception("looking for jobs to resume")
            time.sleep(self.scheduler.lease_seconds / 2)

    def start(self, job_id: str) -> str:
        """Begin running a stored job; returns at once."""
        self.scheduler.start(job_id)
        return job_id

    def running(self) -> list[str]:
        return self.scheduler.running()

    def workers(self) -> list[dict]:
        """Where each tier's worker actor runs (tier, model, node, pid)."""
        return self.scheduler.pool.describe()

    def pid(self) -> int:
        """The process this controller lives in (what an operator, or a fault test, signals)."""
        return os.getpid()


def controller(config: Config, lease_seconds: float | None = None):
    """The cluster's controller actor, created on first use with this client's config."""
    import ray

    if not config.redis_url:  # a controller on a store of its own would find none of the jobs
        raise ConfigError("the cluster's controller needs the job store every client uses: set redis_url (PLAIT_REDIS_URL)")

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
        .remote(config.model_dump(mode="json"), lease_seconds)
    )
