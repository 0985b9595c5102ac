"""KV cache service: prompt-prefix KV shared between workers and between rounds.

Keys are a hash chain over token chunks (`keys`), values are checksummed safetensors
(`codec`), kept in-process or in Redis (`backends`); `PrefixCache` is what an engine uses.
Importing the package loads no torch: only reading or writing a KV value does.
"""

from __future__ import annotations

import os

from plait.errors import ConfigError
from workers.engines.base import KVLayout
from workers.engines.options import BACKENDS, CacheSpec
from workers.kvcache.backends import ChunkStore, MemoryChunkStore, RedisChunkStore
from workers.kvcache.cache import CacheStats, PrefixCache, add_stats

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
