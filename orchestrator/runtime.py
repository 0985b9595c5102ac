"""Ray start-up and the pool of model-worker actors, one per tier.

Each tier's actor asks for a sliver of the custom resource `tier_<name>`, so an operator
decides which Ray nodes host which tiers by what the nodes advertise (`ray start
--resources`); a Ray started by plait itself advertises every configured tier.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from orchestrator.config import Config, tier_resource
from orchestrator.replicas import ReplicaRouter
from plait.errors import ConfigError
from tools.processes import descendants, end, on_lifetime_thread, start_time
from workers.actor import ModelWorker
from workers.types import Usage

# Set before Ray starts from this process: no usage reporting; worker processes (the model
# workers) at normal priority rather than Ray's default niceness of 15; and token auth on the
# client side too, since Ray 2.60 clusters require the token (~/.ray/auth_token, or
# RAY_AUTH_TOKEN for a remote cluster) that a client sends only in this mode.
RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_worker_niceness": "0", "RAY_AUTH_MODE": "token"}
for _name, _value in RAY_ENV.items():
    os.environ.setdefault(_name, _value)

NAMESPACE = "plait"
_TIER_SHARE = 0.001  # of a node's tier resource per actor: many tiers' actors fit on one node


def ensure_ray_token() -> None:
    """Create this user's Ray auth token if there is none: with RAY_AUTH_MODE=token, `ray start`
    and clients refuse to run without one, and a fresh machine has none."""
    if os.environ.get("RAY_AUTH_TOKEN"):
        return
    path = Path(os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token")
    if not path.exists():
        ray_bin = str(Path(sys.executable).with_name("ray"))
        subprocess.run([ray_bin, "get-auth-token", "--generate"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)


def tier_resources(config: Config, amount: float = 1000) -> dict[str, float]:
    return {tier_resource(tier): amount for tier in config.tiers}


def init_ray(config: Config) -> bool:
    """Connect to, or start, Ray; True when this call started a local instance."""
    import ray

    # Ray's daemons die with the thread that forked them: whichever thread asks first (a job
    # thread, an HTTP request's pool thread), they are started from one that lives on.
    return False if ray.is_initialized() else on_lifetime_thread(_init_ray, config)


def _init_ray(config: Config) -> bool:
    import ray

    if ray.is_initialized():
        return False
    ensure_ray_token()
    options: dict = dict(
        # "local" starts a new in-process instance; None would join any `ray start` cluster found.
        address=config.ray.address or "local",
        namespace=NAMESPACE,
        log_to_driver=False,
        logging_level=logging.ERROR,
        ignore_reinit_error=True,
    )
    if config.ray.address is None:  # these only apply when starting a local instance
        options.update(
            num_cpus=config.ray.num_cpus,
            include_dashboard=config.ray.include_dashboard,
            object_store_memory=config.ray.object_store_mb * 1024 * 1024,
            resources=tier_resources(config),
        )
    try:
        ray.init(**options)
    except (ConnectionError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {config.ray.address}: {exc}") from None
    return config.ray.address is None


def shutdown_local_ray() -> None:
    """Stop the Ray this process started, and everything Ray started under it: Ray's own
    shutdown leaves the dashboard and runtime-env agents that the raylet forked running for
    up to a minute and a half."""
    import ray

    if not ray.is_initialized():
        return
    node = ray._private.worker._global_node  # the daemons this process started, by PID
    roots = [info.process.pid for infos in (node.all_processes.values() if node else ()) for info in infos]
    started = [(pid, start_time(pid)) for pid in roots] + [d for pid in roots for d in descendants(pid)]
    ray.shutdown()
    end([(pid, when) for pid, when in started if when is not None])


class WorkerPool:
    """Creates each tier's worker actors (`replicas` of them) on first use and picks one per
    batch (orchestrator.replicas); actors restart if their process dies."""

    def __init__(self, config: Config):
        self.config = config
        self._actors: dict[str, list] = {}
        self._routers: dict[str, ReplicaRouter] = {}
        self._lock = threading.Lock()

    def actor(self, tier: str, replica: int = 0):
        return self._replicas(tier)[replica]

    def route(self, tier: str, texts: list[str]) -> int:
        """The replica of `tier` that should run prompts with these texts; busy until `release`."""
        self._replicas(tier)
        return self._routers[tier].choose(texts)

    def release(self, tier: str, replica: int) -> None:
        router = self._routers.get(tier)
        if router is not None:  # None once the pool is shut down under a running job
            router.release(replica)

    @contextmanager
    def routed(self, tier: str, texts: list[str]):
        """A replica's actor for one synchronous call (the planner's)."""
        replica = self.route(tier, texts)
        try:
            yield self.actor(tier, replica)
        finally:
            self.release(tier, replica)

    def _replicas(self, tier: str) -> list:
        with self._lock:
            if tier not in self._actors:
                self._actors[tier] = self._start(tier)
                self._routers[tier] = ReplicaRouter(len(self._actors[tier]), self.config.scheduler.replica_routing)
            return self._actors[tier]

    def _start(self, tier: str) -> list:
        import ray

        if tier not in self.config.tiers:
            raise ConfigError(f"tier {tier!r} is not defined; defined tiers: {', '.join(self.config.tiers)}")
        init_ray(self.config)
        resource = tier_resource(tier)
        if resource not in ray.cluster_resources():
            raise ConfigError(
                f"no Ray node offers the resource {resource!r} that tier {tier!r} runs on: start a node with "
                f"`ray start --resources '{json.dumps({resource: 1000})}'`"
            )
        tier_config = self.config.tiers[tier]
        env = dict(RAY_ENV)
        if self.config.cache_dir or os.environ.get("PLAIT_CACHE_DIR"):
            env["PLAIT_CACHE_DIR"] = self.config.cache_dir or os.environ["PLAIT_CACHE_DIR"]
        remote = ray.remote(ModelWorker).options(
            num_cpus=tier_config.num_cpus,
            resources={resource: _TIER_SHARE},
            max_restarts=-1,  # a worker comes back however often it dies
            max_task_retries=0,  # the scheduler retries nodes itself, bounded per node
            runtime_env={"env_vars": env},
        )
        spec = replace(tier_config.engine_spec(), kv_cache=self.config.kv_cache.spec(self.config.redis_url))
        return [remote.remote(spec, tier, replica) for replica in range(tier_config.replicas)]

    def describe(self) -> list[dict]:
        import ray

        with self._lock:
            handles = [handle for replicas in self._actors.values() for handle in replicas]
        return ray.get([handle.describe.remote() for handle in handles])

    def routing(self) -> dict[str, dict[str, int]]:
        """Per tier with actors, how many batches went where by prefix and by load."""
        with self._lock:
            return {tier: dict(router.routed) for tier, router in self._routers.items()}

    def shutdown(self) -> None:
        import ray

        with self._lock:
            for replicas in self._actors.values():
                for handle in replicas:
                    ray.kill(handle)
            self._actors.clear()
            self._routers.clear()


class ActorEngine:
    """The Engine protocol over a tier's worker actor, for code that runs outside it (the
    planner): the model stays loaded once, in the actor. Its `usage` adds up what the calls
    cost, so the job can bill the planner's call too."""

    def __init__(self, actor):
        self.actor = actor
        self.usage = Usage()
        self._info = None

    def generate(self, prompts, params):
        import ray

        outputs = ray.get(self.actor.generate.remote(prompts, params))
        info = self.info()
        for group in outputs:
            for completion in group:
                self.usage.charge(completion, info)
        return outputs

    def score(self, prompt, continuation: str) -> float:
        import ray

        return ray.get(self.actor.score.remote(prompt, continuation))

    def info(self):
        import ray

        if self._info is None:
            self._info = ray.get(self.actor.info.remote())
        return self._info
