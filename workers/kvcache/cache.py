"""PrefixCache: longest-prefix lookup and publication of KV chunks for one model.

The engine asks `lookup` before prefill and gets the KV of the longest run of cached chunks
at the start of the prompt; it prefills only the rest, then `publish`es the chunks it
computed. Values are per chunk, so prompts that share a prefix share its chunks, whichever
worker computed them.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields
from typing import TYPE_CHECKING

from workers.engines.base import KVLayout
from workers.kvcache.backends import ChunkStore
from workers.kvcache.keys import chunk_keys, namespace

if TYPE_CHECKING:  # torch is loaded by the first value read or written, not by a config that names a cache
    import torch


@dataclass
class CacheStats:
    lookups: int = 0
    hits: int = 0  # lookups that found at least one chunk
    misses: int = 0
    hit_tokens: int = 0  # prompt tokens not prefilled thanks to the cache
    bad_values: int = 0  # corrupt, truncated or mismatched values, each one a miss
    stored_chunks: int = 0
    stored_bytes: int = 0
    loaded_bytes: int = 0
    load_ms: float = 0.0
    store_ms: float = 0.0

    def to_dict(self) -> dict:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}

    def minus(self, before: "CacheStats") -> "CacheStats":
        return CacheStats(**{f.name: getattr(self, f.name) - getattr(before, f.name) for f in fields(self)})

    def copy(self) -> "CacheStats":
        return CacheStats(**asdict(self))


def add_stats(total: dict, part: dict) -> dict:
    """Sum of two `CacheStats.to_dict()` views (a job's total over its batches)."""
    return {k: round(total.get(k, 0) + part.get(k, 0), 3) for k in {*total, *part}}


class PrefixCache:
    def __init__(self, store: ChunkStore, fingerprint: str, layout: KVLayout, chunk_tokens: int = 64):
        if chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be positive, got {chunk_tokens}")
        self.store = store
        self.layout = layout
        self.chunk_tokens = chunk_tokens
        self.space = namespace(fingerprint, chunk_tokens)
        self.shape = (layout.layers, layout.kv_heads, chunk_tokens, layout.head_dim)
        self.stats = CacheStats()

    def lookup(self, token_ids: list[int], limit: int) -> tuple[int, torch.Tensor | None, torch.Tensor | None]:
        """(n, keys, values): the KV of the first n tokens, n a multiple of the chunk size and at
        most `limit`; keys/values are [layers, kv_heads, n, head_dim], None when n is 0."""
        import torch

        from workers.kvcache.codec import BadValue, decode

        began = time.perf_counter()
        c = self.chunk_tokens
        keys = chunk_keys(self.space, token_ids[: max(limit, 0)], c)
        ks, vs = [], []
        for i, (key, data) in enumerate(zip(keys, self.store.get_many(keys) if keys else [])):
            if data is None:
                break
            try:
                k, v = decode(data, key, self.space, token_ids[i * c : (i + 1) * c], self.shape)
            except BadValue:
                self.stats.bad_values += 1
                break
            ks.append(k)
            vs.append(v)
            self.stats.loaded_bytes += len(data)
        self.stats.lookups += 1
        if not ks:
            self.stats.misses += 1
            self.stats.load_ms += (time.perf_counter() - began) * 1000
            return 0, None, None
        n = len(ks) * c
        self.stats.hits += 1
        self.stats.hit_tokens += n
        keys_t, values_t = torch.cat(ks, dim=2), torch.cat(vs, dim=2)
        self.stats.load_ms += (time.perf_counter() - began) * 1000
        return n, keys_t, values_t

    def publish(self, token_ids: list[int], keys: torch.Tensor, values: torch.Tensor, known_tokens: int = 0) -> None:
        """Store the full chunks of `token_ids` past the first `known_tokens` (already cached)
        that the store does not hold yet. keys/values: [layers, kv_heads, tokens, head_dim] for
        `token_ids[skip:]`, skip = the known tokens' whole chunks (`skipped_tokens`), so a
        caller copies out only the KV that may be new."""
        from workers.kvcache.codec import encode

        began = time.perf_counter()
        c = self.chunk_tokens
        skip = self.skipped_tokens(known_tokens)
        for i, key in enumerate(chunk_keys(self.space, token_ids, c)):
            if (i + 1) * c <= known_tokens or self.store.has(key):
                continue
            at = slice(i * c - skip, (i + 1) * c - skip)
            data = encode(key, self.space, token_ids[i * c : (i + 1) * c], keys[:, :, at], values[:, :, at])
            self.store.put(key, data)
            self.stats.stored_chunks += 1
            self.stats.stored_bytes += len(data)
        self.stats.store_ms += (time.perf_counter() - began) * 1000

    def skipped_tokens(self, known_tokens: int) -> int:
        """Where `publish` expects its keys/values to start."""
        return known_tokens // self.chunk_tokens * self.chunk_tokens

    def report(self) -> dict:
        """Counters for people: this cache's and its backend's."""
        return {"backend": self.store.name, "chunk_tokens": self.chunk_tokens, **self.stats.to_dict(), **self.store.stats()}
