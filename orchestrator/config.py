"""Configuration: one TOML file plus PLAIT_* environment variables.

Lookup order for the file: --config, $PLAIT_CONFIG, ./plait.toml; no file means defaults
(two tiers on the embedded models, local Ray). Environment variables override the file:
PLAIT_RAY_ADDRESS (or RAY_ADDRESS), PLAIT_REDIS_URL, PLAIT_CACHE_DIR.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, create_model, field_validator, model_validator

from plait.errors import ConfigError
from orchestrator.replicas import ReplicaPolicy
from orchestrator.spec import describe_errors
from tools.sandbox import SandboxLimits
from planners import route
from plait.options import flat_fields, options
from workers.engines.options import CacheSpec, EngineSpec
from workers.engines.packaged import QWEN_CODER


# Names shared with deploy/ (manifests are tested against these).
API_PORT = 8080  # `plait serve`
REDIS_PORT = 6379
RAY_CLIENT_PORT = 10001
ENV_VARS = ("PLAIT_CONFIG", "PLAIT_REDIS_URL", "PLAIT_RAY_ADDRESS", "RAY_ADDRESS", "PLAIT_CACHE_DIR", "PLAIT_API_TOKEN")


def tier_resource(tier: str) -> str:
    """Ray custom resource a node offers to host the worker actor of `tier`."""
    return f"tier_{tier}"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


# A tier is an engine's options (defined once, in EngineSpec) read flat from [tiers.NAME],
# plus what only the cluster needs; the KV cache is the config's one [kv_cache] section.
_EngineOptions = create_model("_EngineOptions", __base__=_Section, **flat_fields(EngineSpec, exclude=("kv_cache",)))


class TierConfig(_EngineOptions):
    num_cpus: float = Field(default=1.0, ge=0, description="Ray CPUs reserved by each of the tier's worker actors")
    replicas: int = Field(default=1, ge=1, le=64, description="worker actors (model copies) of this tier; [scheduler] replica_routing picks one per batch")

    @field_validator("speculative", "sinks", "cautious", mode="before")
    @classmethod
    def _a_section(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, (str, int, float)):  # the flat options of earlier configs
            raise ValueError(f"{info.field_name} is a section: write its fields under [tiers.<tier>.{info.field_name}] (see deploy/plait.example.toml)")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "TierConfig":
        if self.kind != "transformers":
            # llama-server drafts tokens itself (workers.engines.llamacpp.speculative_args), and
            # plait runs CNTP's trials against it from the outside (workers.engines.llamacpp_cautious).
            openai = self.kind == "openai"
            local_only = {"speculative": self.speculative.on and openai, "sinks": self.sinks.on, "cautious": self.cautious.on and openai}
            wrong = [name for name, on in local_only.items() if on]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only transformers tiers have this option, not {self.kind} tiers")
        self.engine_spec()  # the engine's own rules (an openai engine needs base_url), named with the tier
        return self

    def engine_spec(self) -> EngineSpec:
        return EngineSpec(**{name: getattr(self, name) for name in _EngineOptions.model_fields})


class RayConfig(_Section):
    address: str | None = None  # None: start Ray in-process
    num_cpus: int | None = None
    object_store_mb: int = Field(default=200, ge=50)
    include_dashboard: bool = False


class PlannerConfig(_Section):
    tier: str | None = None  # which tier's model writes skeletons; None: the tier of the hardest difficulty
    max_nodes: int = Field(default=8, ge=2, le=64)
    constrained: bool = True  # JSON-schema constrained decoding of the skeleton


@options
class KVCacheConfig(CacheSpec):
    """The [kv_cache] section: the prefix KV cache of transformers tiers, CacheSpec's fields."""

    def spec(self, default_redis_url: str | None) -> CacheSpec:
        """What a worker's engine opens: a Redis backend without its own URL uses the job store's."""
        return CacheSpec(**{**asdict(self), "redis_url": self.redis_url or default_redis_url or ""})


class SchedulerConfig(_Section):
    # Ready nodes of one tier go to its worker in batches of at most this many: one engine
    # call decodes a batch together; a cap bounds the batch's KV memory. 1 = one by one.
    max_batch: int = Field(default=16, ge=1, le=256)
    # A tier with several replicas: "prefix" sends a batch where its prompts' prefix was just
    # served (that server's prompt cache holds it), "least_loaded" to the idlest replica.
    replica_routing: ReplicaPolicy = "prefix"


def default_tiers() -> dict[str, "TierConfig"]:
    """Two tiers on the embedded models: the small one on transformers (where the KV cache
    service, attention sinks and CNTP live) and the capable one on llama.cpp."""
    return {"small": TierConfig(), "large": TierConfig(kind="llamacpp", model=QWEN_CODER.name)}


# Difficulty -> tier, from benchmarks/routing.py's measurement (README "Measured"): on 80
# planner-made sub-questions the 135M model was right on 0-20% at every level, the 1.5B model on
# 80-85% of levels 1-2 and 50% of level 3, and faster: every level goes to large. `small` stays a
# tier of its own for jobs and configs that ask for it.
DEFAULT_ROUTING = {1: "large"}


class Config(_Section):
    tiers: dict[str, TierConfig] = Field(default_factory=default_tiers)
    routing: dict[int, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTING))
    ray: RayConfig = Field(default_factory=RayConfig)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    planner: PlannerConfig = Field(default_factory=PlannerConfig)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    kv_cache: KVCacheConfig = Field(default_factory=KVCacheConfig)
    redis_url: str | None = None
    cache_dir: str | None = None

    @field_validator("tiers", mode="before")
    @classmethod
    def _onto_the_defaults(cls, tiers: object) -> object:
        # A [tiers.NAME] section defines that tier; the default tiers it does not name stay.
        if not isinstance(tiers, dict):
            return tiers
        return {**default_tiers(), **tiers}

    @model_validator(mode="after")
    def _routing_targets_exist(self) -> "Config":
        for level, tier in self.routing.items():
            if not 1 <= level <= 5:
                raise ValueError(f"routing: difficulty {level} is not in 1-5")
            if tier not in self.tiers:
                raise ValueError(f"routing: difficulty {level} goes to tier {tier!r}, which is not defined under [tiers]")
        if self.planner.tier is not None and self.planner.tier not in self.tiers:
            raise ValueError(f"planner.tier {self.planner.tier!r} is not defined under [tiers]")
        if 1 not in self.routing:
            raise ValueError("routing: difficulty 1 needs a tier (harder levels fall back to easier ones)")
        return self


    @property
    def planner_tier(self) -> str:
        return self.planner.tier or route(5, self.routing)


def config_path(explicit: str | os.PathLike | None = None) -> Path | None:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    if os.environ.get("PLAIT_CONFIG"):
        return config_path(os.environ["PLAIT_CONFIG"])
    local = Path("plait.toml")
    return local if local.is_file() else None


def load_config(path: str | os.PathLike | None = None) -> Config:
    source = config_path(path)
    data: dict = {}
    if source is not None:
        try:
            data = tomllib.loads(source.read_text())
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source} is not valid TOML: {exc}") from None
    env = {
        ("ray", "address"): os.environ.get("PLAIT_RAY_ADDRESS") or os.environ.get("RAY_ADDRESS"),
        ("redis_url",): os.environ.get("PLAIT_REDIS_URL"),
        ("cache_dir",): os.environ.get("PLAIT_CACHE_DIR"),
    }
    for keys, value in env.items():
        if value:
            section = data
            for key in keys[:-1]:
                section = section.setdefault(key, {})
            section[keys[-1]] = value
    try:
        config = Config.model_validate(data)  # TOML keys are strings; pydantic reads "1" as difficulty 1
    except ValidationError as exc:
        raise ConfigError(f"bad config{f' in {source}' if source else ''}: {describe_errors(exc)}") from None
    return config
