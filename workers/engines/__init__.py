"""Model engines behind one protocol, and the factory that builds one from its spec.

Importing this package loads no torch or transformers: each engine's module is imported by
the factory when that engine is built."""

from __future__ import annotations

import os

from plait.errors import ConfigError
from workers.engines.base import Completion, Engine, EngineInfo, KVLayout, Message, Prompt, SamplingParams, chat
from workers.engines.embedded import EMBEDDED_MODEL
from workers.engines.options import CacheSpec, CautiousSpec, EngineSpec, SinkSpec, SpeculativeSpec


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
            cautious=spec.cautious,
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

    draft = None
    if spec.speculative.method == "draft_model":
        # Its own small prefix cache: each step it prefills only a row's newest tokens.
        draft = TransformersEngine(spec.speculative.draft_model, kv_cache=CacheSpec(backend="memory"), progress=progress)
    return TransformersEngine(
        spec.model,
        dtype=spec.dtype,
        threads=spec.threads or None,
        context_length=spec.context_length,
        kv_cache=spec.kv_cache,
        speculative=spec.speculative,
        draft=draft,
        sinks=spec.sinks,
        cautious=spec.cautious,
        progress=progress,
    )


__all__ = [
    "CacheSpec",
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
