"""Ray start-up and the pool of model-worker actors, one per tier."""

from __future__ import annotations

import logging
import os
import threading

from orchestrator.config import Config
from plait.errors import ConfigError
from workers.actor import ModelWorker

# Set before Ray is imported anywhere in this process: no usage reporting from plait.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def init_ray(config: Config) -> None:
    import ray

    if ray.is_initialized():
        return
    options: dict = dict(
        address=config.ray.address,
        include_dashboard=config.ray.include_dashboard,
        log_to_driver=False,
        logging_level=logging.WARNING,
        ignore_reinit_error=True,
    )
    if config.ray.address is None:  # these only apply when starting a local instance
        options.update(num_cpus=config.ray.num_cpus, object_store_memory=config.ray.object_store_mb * 1024 * 1024)
    try:
        ray.init(**options)
    except ConnectionError as exc:
        raise ConfigError(f"cannot reach the Ray cluster at {config.ray.address}: {exc}") from None


class WorkerPool:
    """Creates each tier's worker actor on first use; actors restart if their process dies."""

    def __init__(self, config: Config):
        self.config = config
        self._actors: dict[str, object] = {}
        self._lock = threading.Lock()

    def actor(self, tier: str):
        with self._lock:
            if tier not in self._actors:
                self._actors[tier] = self._start(tier)
            return self._actors[tier]

    def _start(self, tier: str):
        import ray

        if tier not in self.config.tiers:
            raise ConfigError(f"tier {tier!r} is not defined; defined tiers: {', '.join(self.config.tiers)}")
        init_ray(self.config)
        tier_config = self.config.tiers[tier]
        env = {"RAY_USAGE_STATS_ENABLED": "0"}
        if self.config.cache_dir or os.environ.get("PLAIT_CACHE_DIR"):
            env["PLAIT_CACHE_DIR"] = self.config.cache_dir or os.environ["PLAIT_CACHE_DIR"]
        remote = ray.remote(ModelWorker).options(
            num_cpus=tier_config.num_cpus,
            max_restarts=1,
            max_task_retries=0,  # the scheduler retries nodes itself, with bounded attempts
            runtime_env={"env_vars": env},
        )
        return remote.remote(tier_config.engine_spec(), tier)

    def forget(self, tier: str) -> None:
        """Drop a tier's actor (after it died for good) so the next use starts a new one."""
        with self._lock:
            self._actors.pop(tier, None)

    def shutdown(self) -> None:
        import ray

        with self._lock:
            for handle in self._actors.values():
                ray.kill(handle)
            self._actors.clear()
