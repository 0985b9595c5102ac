"""Configuration: one TOML file plus PLAIT_* environment variables.

Lookup order for the file: --config, $PLAIT_CONFIG, ./plait.toml; no file means defaults
(two tiers on the embedded models, local Ray). Environment variables override the file:
PLAIT_RAY_ADDRESS (or RAY_ADDRESS), PLAIT_REDIS_URL, PLAIT_CACHE_DIR.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from plait.errors import ConfigError
from orchestrator.spec import describe_errors
from tools.sandbox import SandboxLimits
from planners import route
from workers.engines import EMBEDDED_MODEL, CautiousSpec, EngineSpec, SinkSpec, SpeculativeSpec
from workers.engines.packaged import QWEN_CODER
from workers.kvcache import CacheSpec


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


class TierConfig(_Section):
    kind: Literal["transformers", "openai", "llamacpp"] = "transformers"
    model: str = Field(default=EMBEDDED_MODEL, description="transformers: 'smollm2-135m' or a model directory; llamacpp: a packaged model or a .gguf file")
    base_url: str = Field(default="", description="openai: the server; llamacpp: a running llama-server (empty: plait starts one)")
    api_key_env: str = ""
    parameters: int = Field(default=0, ge=0)
    context_length: int = Field(default=0, ge=0, description="openai: the server's; transformers: a cap below the model's (0: the model's)")
    timeout: float = Field(default=600.0, gt=0, description="seconds one engine request may take")
    max_retries: int = Field(default=4, ge=0, le=20)
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    threads: int = Field(default=0, ge=0)
    parallel: int = Field(default=8, ge=1, le=64, description="llamacpp: server slots, sequences decoded together")
    num_cpus: float = Field(default=1.0, ge=0, description="Ray CPUs reserved by the tier's worker actor")
    # transformers: speculative decoding (greedy output unchanged, sampled distribution unchanged)
    speculative: Literal["off", "prompt_lookup", "draft_model"] = "off"
    draft_tokens: int = Field(default=4, ge=1, le=32, description="speculative: tokens drafted per step")
    draft_ngram: int = Field(default=3, ge=2, le=8, description="prompt_lookup: longest n-gram looked up")
    draft_model: str = Field(default="", description="draft_model: a smaller model with the same tokenizer")
    # transformers: attention sinks (StreamingLLM), so generations can run past the context
    sink_tokens: int = Field(default=0, ge=0, le=64, description="attention sinks: first tokens kept (0: off)")
    window_tokens: int = Field(default=2048, ge=64, description="attention sinks: recent tokens kept")
    evict_tokens: int = Field(default=256, ge=1, description="attention sinks: tokens dropped at once, at most window_tokens/2")
    # transformers: cautious next-token prediction (trials at uncertain steps)
    cautious_entropy: float = Field(default=0.0, ge=0, description="CNTP: entropy (nats) above which a step runs trials (0: off)")
    cautious_trials: int = Field(default=4, ge=2, le=32, description="CNTP: trials at the flattest steps")
    cautious_span: int = Field(default=16, ge=1, le=128, description="CNTP: longest trial, in tokens")
    cautious_temperature: float = Field(default=1.0, gt=0, description="CNTP: trial temperature for greedy requests")

    @model_validator(mode="after")
    def _consistent(self) -> "TierConfig":
        if self.kind == "openai" and not self.base_url:
            raise ValueError("an openai tier needs base_url (e.g. http://vllm:8000/v1)")
        if self.kind != "transformers":
            local_only = {"sink_tokens": 0, "cautious_entropy": 0.0} | ({"speculative": "off"} if self.kind == "openai" else {})
            wrong = [name for name, off in local_only.items() if getattr(self, name) != off]
            if wrong:
                raise ValueError(f"{', '.join(wrong)}: only transformers tiers have this option, not {self.kind} tiers")
        self._decoding()  # the options' own cross-field rules, named with the tier
        return self

    def _decoding(self) -> dict:
        return {
            "speculative": SpeculativeSpec(self.speculative, self.draft_tokens, self.draft_ngram, self.draft_model),
            "sinks": SinkSpec(self.sink_tokens, self.window_tokens, self.evict_tokens),
            "cautious": CautiousSpec(self.cautious_entropy, self.cautious_trials, self.cautious_span, self.cautious_temperature),
        }

    def engine_spec(self) -> EngineSpec:
        options = self._decoding()
        tier_only = set(TierConfig.model_fields) - set(EngineSpec.__dataclass_fields__)  # num_cpus, the options' parts
        return EngineSpec(**self.model_dump(exclude=tier_only | set(options)), **options)


class RayConfig(_Section):
    address: str | None = None  # None: start Ray in-process
    num_cpus: int | None = None
    object_store_mb: int = Field(default=200, ge=50)
    include_dashboard: bool = False


class SandboxConfig(_Section):
    timeout: float = Field(default=10.0, gt=0, le=600)
    cpu_seconds: int = Field(default=10, ge=1, le=3600)
    memory_mb: int = Field(default=1024, ge=128)
    file_size_mb: int = Field(default=16, ge=1)
    max_processes: int = Field(default=32, ge=1)
    max_output_chars: int = Field(default=4000, ge=100)
    disk_mb: int = Field(default=64, ge=1, description="scratch directory quota (a tmpfs of this size under bubblewrap)")

    def limits(self) -> SandboxLimits:
        return SandboxLimits(**self.model_dump())


class PlannerConfig(_Section):
    tier: str | None = None  # which tier's model writes skeletons; None: the tier of the hardest difficulty
    max_nodes: int = Field(default=8, ge=2, le=64)
    constrained: bool = True  # JSON-schema constrained decoding of the skeleton


class KVCacheConfig(_Section):
    backend: Literal["memory", "redis", "off"] = "memory"  # redis: shared by every worker
    max_mb: int = Field(default=512, ge=1, description="memory backend: LRU byte cap per worker")
    chunk_tokens: int = Field(default=64, ge=1, le=4096)
    redis_url: str | None = None  # redis backend; default: the job store's redis_url
    ttl_seconds: int = Field(default=86400, ge=1)

    def spec(self, default_redis_url: str | None) -> CacheSpec:
        return CacheSpec(
            backend=self.backend,
            max_bytes=self.max_mb * 2**20,
            chunk_tokens=self.chunk_tokens,
            redis_url=self.redis_url or default_redis_url or "",
            ttl_seconds=self.ttl_seconds,
        )


class SchedulerConfig(_Section):
    # Ready nodes of one tier go to its worker in batches of at most this many: one engine
    # call decodes a batch together; a cap bounds the batch's KV memory. 1 = one by one.
    max_batch: int = Field(default=16, ge=1, le=256)


def default_tiers() -> dict[str, "TierConfig"]:
    """Two tiers on the embedded models: the small one on transformers (where the KV cache
    service, attention sinks and CNTP live) and the capable one on llama.cpp."""
    return {"small": TierConfig(), "large": TierConfig(kind="llamacpp", model=QWEN_CODER.name)}


# Difficulty -> tier, from benchmarks/routing.py's measurement (README "Routing").
DEFAULT_ROUTING = {1: "small", 2: "large"}


class Config(_Section):
    tiers: dict[str, TierConfig] = Field(default_factory=default_tiers)
    routing: dict[int, str] = Field(default_factory=lambda: dict(DEFAULT_ROUTING))
    ray: RayConfig = Field(default_factory=RayConfig)
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig)
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
