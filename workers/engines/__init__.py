"""Model engines behind one protocol, and the factory that builds one from its spec."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field

from plait.errors import ConfigError
from workers.engines.attention_sinks import SinkSpec
from workers.engines.base import Completion, Engine, EngineInfo, KVLayout, Message, Prompt, SamplingParams, chat
from workers.engines.cautious import CautiousSpec
from workers.engines.embedded import EMBEDDED_MODEL
from workers.engines.speculative import SpeculativeSpec
from workers.kvcache import CacheSpec


KINDS = ("transformers", "openai", "llamacpp")


@dataclass(frozen=True)
class EngineSpec:
    """How to reach a model: what a config's tier names and a worker actor builds."""

    kind: str = "transformers"  # "transformers" | "openai" | "llamacpp"
    model: str = EMBEDDED_MODEL
    base_url: str = ""  # openai: e.g. http://vllm:8000/v1; llamacpp: a running llama-server (else plait starts one)
    api_key_env: str = ""  # openai: name of the variable holding the key (keys never sit in config)
    parameters: int = 0  # openai: model size for FLOPs accounting (the server does not report it)
    context_length: int = 0  # openai: the server's; transformers: a cap below the model's (0: the model's)
    timeout: float = 600.0
    max_retries: int = 4
    dtype: str = "float32"
    threads: int = 0  # transformers: torch threads; llamacpp: the server's threads (0 = all cores)
    parallel: int = 8  # llamacpp: the server's slots, sequences decoded together
    kv_cache: CacheSpec = field(default_factory=CacheSpec)  # transformers: prefix KV cache
    speculative: SpeculativeSpec = field(default_factory=SpeculativeSpec)  # transformers: draft tokens
    sinks: SinkSpec = field(default_factory=SinkSpec)  # transformers: attention sinks past the context
    cautious: CautiousSpec = field(default_factory=CautiousSpec)  # transformers: cautious next-token prediction

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ConfigError(f"engine kind {self.kind!r} is unknown: use one of {', '.join(KINDS)}")
        if self.kind == "openai" and not self.base_url:
            raise ConfigError(f"engine for model {self.model!r} is kind 'openai' but has no base_url")

    def to_dict(self) -> dict:
        return asdict(self)


def make_engine(spec: EngineSpec, progress=None) -> Engine:
    key = os.environ.get(spec.api_key_env) if spec.api_key_env else None
    if spec.api_key_env and not key:
        raise ConfigError(f"engine {spec.model!r} reads its API key from ${spec.api_key_env}, which is not set")
    if spec.kind == "llamacpp":
        from workers.engines.llamacpp import LlamaCppEngine, speculative_args

        return LlamaCppEngine(
            spec.model,
            base_url=spec.base_url,
            api_key=key,
            parallel=spec.parallel,
            context_length=spec.context_length,
            threads=spec.threads,
            extra_args=speculative_args(spec.speculative, progress),
            timeout=spec.timeout,
            max_retries=spec.max_retries,
            parameters=spec.parameters,
            progress=progress,
        )
    if spec.kind == "openai":
        from workers.engines.openai_engine import OpenAIEngine

        return OpenAIEngine(
            spec.base_url,
            spec.model,
            api_key=key,
            timeout=spec.timeout,
            max_retries=spec.max_retries,
            parameters=spec.parameters,
            context_length=spec.context_length,
        )
    from workers.engines.transformers_engine import TransformersEngine

    return TransformersEngine(
        spec.model,
        dtype=spec.dtype,
        threads=spec.threads or None,
        context_length=spec.context_length,
        kv_cache=spec.kv_cache,
        speculative=spec.speculative,
        sinks=spec.sinks,
        cautious=spec.cautious,
        progress=progress,
    )


__all__ = [
    "CautiousSpec",
    "Completion",
    "EMBEDDED_MODEL",
    "Engine",
    "EngineInfo",
    "EngineSpec",
    "KVLayout",
    "Message",
    "Prompt",
    "SamplingParams",
    "SinkSpec",
    "SpeculativeSpec",
    "chat",
    "make_engine",
]
