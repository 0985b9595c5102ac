"""KV cache service: prompt-prefix KV shared between workers and between rounds.

Keys are a hash chain over token chunks (`keys`), values are checksummed safetensors
(`codec`), kept in-process or in Redis (`backends`); `PrefixCache` is what an engine uses.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from plait.errors import ConfigError
from workers.kvcache.backends import ChunkStore, MemoryChunkStore, RedisChunkStore
from workers.kvcache.cache import CacheStats, PrefixCache, add_stats

if TYPE_CHECKING:  # the engines import this package
    from workers.engines.base import KVLayout

BACKENDS = ("memory", "redis", "off")


@dataclass(frozen=True)
class CacheSpec:
    """How an engine's prefix cache is set up: part of the worker's EngineSpec."""

    backend: str = "memory"  # memory | redis | off
    max_bytes: int = 512 * 2**20  # memory backend's cap; LRU eviction beyond it
    chunk_tokens: int = 64
    redis_url: str = ""  # redis backend; empty: $PLAIT_REDIS_URL
    ttl_seconds: int = 86400  # redis backend: entries expire, and volatile-lru may evict them

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"KV cache backend {self.backend!r} is unknown: use one of {', '.join(BACKENDS)}")

    def to_dict(self) -> dict:
        return asdict(self)


def open_prefix_cache(spec: CacheSpec, fingerprint: str, layout: KVLayout) -> PrefixCache | None:
    if spec.backend == "off":
        return None
    if spec.backend == "memory":
        return PrefixCache(MemoryChunkStore(spec.max_bytes), fingerprint, layout, spec.chunk_tokens)
    url = spec.redis_url or os.environ.get("PLAIT_REDIS_URL", "")
    if not url:
        raise ConfigError("KV cache backend 'redis' needs a URL: set [kv_cache] redis_url or PLAIT_REDIS_URL")
    return PrefixCache(RedisChunkStore(url, spec.ttl_seconds), fingerprint, layout, spec.chunk_tokens)


__all__ = [
    "BACKENDS",
    "CacheSpec",
    "CacheStats",
    "ChunkStore",
    "MemoryChunkStore",
    "PrefixCache",
    "RedisChunkStore",
    "add_stats",
    "open_prefix_cache",
]
