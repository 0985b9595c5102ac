"""Engine, decoding and KV-cache options: one definition of each option, its default and its
bound, torch-free so that reading a config never loads a model library.

Each is a `plait.options` type, validated the same way wherever it is built: in code, or as
a nested section of a tier's TOML (`[tiers.small.speculative]`) with its field path.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator

from plait.options import options
from workers.engines.embedded import EMBEDDED_MODEL

EngineKind = Literal["transformers", "openai", "llamacpp"]
Dtype = Literal["float32", "bfloat16", "float16"]
BACKENDS = ("memory", "redis", "off")


@options
class SpeculativeSpec:
    """Speculative decoding: draft tokens checked by one forward pass (workers.engines.speculative)."""

    method: Literal["off", "prompt_lookup", "draft_model"] = "off"
    draft_tokens: Annotated[int, Field(ge=1, le=32, description="k: tokens proposed per step")] = 4
    ngram: Annotated[int, Field(ge=2, le=8, description="prompt_lookup: longest n-gram looked up (shorter ones down to 2)")] = 3
    draft_model: str = Field(default="", description="draft_model: the smaller model (as a tier's `model`), same tokenizer")

    def __post_init__(self) -> None:
        if (self.method == "draft_model") != bool(self.draft_model):
            raise ValueError('draft_model names the draft model exactly when method = "draft_model"')

    @property
    def on(self) -> bool:
        return self.method != "off"


@options
class SinkSpec:
    """Attention sinks: a KV policy for generations past the context (workers.engines.attention_sinks)."""

    sink_tokens: Annotated[int, Field(ge=0, le=64, description="first tokens kept for good; 0 turns the policy off")] = 0
    window_tokens: Annotated[int, Field(ge=64, description="recent tokens kept at most")] = 2048
    evict_tokens: Annotated[int, Field(ge=1, description="dropped together when the cache is full, at most window_tokens/2")] = 256

    def __post_init__(self) -> None:
        if self.evict_tokens > self.window_tokens // 2:
            raise ValueError(f"evict_tokens must be 1 to window_tokens/2 ({self.window_tokens // 2}), got {self.evict_tokens}")

    @property
    def on(self) -> bool:
        return self.sink_tokens > 0

    @property
    def capacity(self) -> int:
        return self.sink_tokens + self.window_tokens


@options
class CautiousSpec:
    """Cautious next-token prediction: trials at uncertain steps (workers.engines.cautious)."""

    entropy: Annotated[float, Field(ge=0, description="nats; steps whose next-token entropy exceeds it branch; 0 turns CNTP off")] = 0.0
    max_trials: Annotated[int, Field(ge=2, le=32, description="trials at the flattest steps")] = 4
    span_tokens: Annotated[int, Field(ge=1, le=128, description="longest trial, when no punctuation ends it first")] = 16
    temperature: Annotated[float, Field(gt=0, description="trials of a greedy request are sampled at this temperature")] = 1.0

    @property
    def on(self) -> bool:
        return self.entropy > 0

    def trials(self, entropy: float) -> int:
        """Trials at a step of this entropy: 0 below the threshold, then more the flatter it is."""
        if entropy <= self.entropy:
            return 0
        return min(self.max_trials, 1 + int(entropy / self.entropy))


@options
class CacheSpec:
    """The prefix KV cache of a transformers engine (workers.kvcache): the `[kv_cache]` section."""

    backend: str = Field(default="memory", description="memory (per worker) | redis (shared by every worker) | off")
    max_mb: Annotated[int, Field(ge=1, description="memory backend: LRU byte cap per worker")] = 512
    chunk_tokens: Annotated[int, Field(ge=1, le=4096)] = 64
    redis_url: str = Field(default="", description="redis backend; empty: the job store's redis_url, else $PLAIT_REDIS_URL")
    ttl_seconds: Annotated[int, Field(ge=1, description="redis backend: entries expire, and volatile-lru may evict them")] = 86400

    @field_validator("backend")
    @classmethod
    def _known(cls, backend: str) -> str:
        if backend not in BACKENDS:
            raise ValueError(f"KV cache backend {backend!r} is unknown: use one of {', '.join(BACKENDS)}")
        return backend

    @property
    def max_bytes(self) -> int:
        return self.max_mb * 2**20


@options
class EngineSpec:
    """How to reach a model: what a config's tier names and a worker actor builds."""

    kind: EngineKind = "transformers"
    model: str = Field(default=EMBEDDED_MODEL, description="transformers: 'smollm2-135m' or a model directory; llamacpp: a packaged model or a .gguf file")
    base_url: str = Field(default="", description="openai: the server (e.g. http://vllm:8000/v1); llamacpp: a running llama-server (empty: plait starts one)")
    api_key_env: str = Field(default="", description="openai: the variable holding the key (keys never sit in config)")
    parameters: Annotated[int, Field(ge=0, description="openai: model size for FLOPs accounting (the server does not report it)")] = 0
    context_length: Annotated[int, Field(ge=0, description="openai: the server's; transformers: a cap below the model's (0: the model's)")] = 0
    timeout: Annotated[float, Field(gt=0, description="seconds one engine request may take")] = 600.0
    max_retries: Annotated[int, Field(ge=0, le=20)] = 4
    dtype: Dtype = "float32"
    threads: Annotated[int, Field(ge=0, description="transformers: torch threads; llamacpp: the server's (0: all cores but one)")] = 0
    parallel: Annotated[int, Field(ge=1, le=64, description="llamacpp: server slots, sequences decoded together")] = 8
    kv_cache: CacheSpec = Field(default_factory=CacheSpec, description="transformers: the prefix KV cache (a config's [kv_cache], shared by its tiers)")
    speculative: SpeculativeSpec = Field(default_factory=SpeculativeSpec, description="transformers, llamacpp: draft tokens checked in one pass")
    sinks: SinkSpec = Field(default_factory=SinkSpec, description="transformers: attention sinks, to generate past the context")
    cautious: CautiousSpec = Field(default_factory=CautiousSpec, description="transformers, llamacpp: cautious next-token prediction")

    def __post_init__(self) -> None:
        if self.kind == "openai" and not self.base_url:
            raise ValueError(f"an openai engine needs base_url, the server's (e.g. http://vllm:8000/v1), for model {self.model!r}")
