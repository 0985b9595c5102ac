"""The KV cache service without a model: keys, value codec, backends and PrefixCache on
hand-made tensors, and the Redis backend against a real redis-server."""

import logging
import subprocess
import sys

import pytest
import torch

from workers.engines.base import KVLayout
from workers.kvcache import CacheSpec, MemoryChunkStore, PrefixCache, RedisChunkStore, open_prefix_cache
from workers.kvcache.codec import BadValue, decode, encode
from workers.kvcache.keys import chunk_keys, namespace
from plait.errors import ConfigError

LAYOUT = KVLayout(layers=2, kv_heads=1, head_dim=4, dtype="float32")
CHUNK = 4


def kv_for(tokens: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """KV tensors whose values are a function of the token, so a wrong chunk shows."""
    base = torch.tensor(tokens, dtype=torch.float32)[None, None, :, None]
    keys = base.expand(LAYOUT.layers, LAYOUT.kv_heads, len(tokens), LAYOUT.head_dim).clone()
    return keys, -keys


def test_keys_chain_whole_prefixes_and_ignore_a_partial_chunk():
    space = namespace("model-a", CHUNK)
    tokens = list(range(11))
    keys = chunk_keys(space, tokens, CHUNK)
    assert len(keys) == 2  # 11 tokens: two full chunks, the last 3 tokens are not a chunk
    assert chunk_keys(space, tokens[:8], CHUNK) == keys
    # The second key covers the first chunk too: change token 0 and every key changes.
    changed = chunk_keys(space, [99] + tokens[1:], CHUNK)
    assert changed[0] != keys[0] and changed[1] != keys[1]
    # The same tokens under another model or chunking are other keys.
    assert chunk_keys(namespace("model-b", CHUNK), tokens, CHUNK)[0] != keys[0]
    assert chunk_keys(namespace("model-a", 8), tokens, 8)[0] not in keys


def test_keys_are_the_same_in_another_process():
    code = "from workers.kvcache.keys import chunk_keys, namespace; print(chunk_keys(namespace('m', 4), list(range(9)), 4))"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == str(chunk_keys(namespace("m", 4), list(range(9)), 4))


def test_a_value_round_trips_and_any_damage_is_refused():
    tokens = [5, 6, 7, 8]
    k, v = kv_for(tokens)
    shape = tuple(k.shape)
    data = encode("key1", "space", tokens, k, v)
    got_k, got_v = decode(data, "key1", "space", tokens, shape)
    assert torch.equal(got_k, k) and torch.equal(got_v, v)

    flipped = bytearray(data)
    flipped[-1] ^= 0xFF  # last byte of the value tensor
    for bad, why in (
        (data[: len(data) // 2], "unreadable"),
        (bytes(flipped), "checksum"),
        (b"", "unreadable"),
    ):
        with pytest.raises(BadValue, match=why):
            decode(bad, "key1", "space", tokens, shape)
    with pytest.raises(BadValue, match="another key"):
        decode(data, "key2", "space", tokens, shape)
    with pytest.raises(BadValue, match="another key"):
        decode(data, "key1", "other-model", tokens, shape)
    with pytest.raises(BadValue, match="other tokens"):
        decode(data, "key1", "space", [5, 6, 7, 9], shape)
    with pytest.raises(BadValue, match="shape"):
        decode(data, "key1", "space", tokens, (1, 1, 4, 4))


def test_memory_store_evicts_least_recently_used_within_its_byte_cap():
    store = MemoryChunkStore(max_bytes=250)
    for key in ("a", "b"):
        store.put(key, bytes(100))
    store.get_many(["a"])  # a is now more recent than b
    store.put("c", bytes(100))
    assert store.get_many(["a", "b", "c"]) == [bytes(100), None, bytes(100)]
    assert store.stats() == {"held_bytes": 200, "entries": 2, "evictions": 1, "errors": 0}
    store.put("huge", bytes(300))  # larger than the cap: not kept, nothing evicted for it
    assert store.get_many(["huge"]) == [None] and store.stats()["entries"] == 2
    with pytest.raises(ValueError):
        MemoryChunkStore(0)


def test_prefix_cache_returns_the_longest_cached_prefix():
    cache = PrefixCache(MemoryChunkStore(2**20), "fp", LAYOUT, CHUNK)
    prompt = list(range(100, 114))  # 3 full chunks + 2 tokens
    assert cache.lookup(prompt, len(prompt) - 1)[0] == 0
    k, v = kv_for(prompt[:12])
    cache.publish(prompt[:12], k, v)
    assert cache.stats.stored_chunks == 3

    n, keys, values = cache.lookup(prompt, len(prompt) - 1)
    assert n == 12 and torch.equal(keys, k) and torch.equal(values, v)
    # The limit keeps tokens back for the engine to compute: 12 would leave none of 12.
    assert cache.lookup(prompt[:12], 11)[0] == 8
    # A prompt that shares the first chunk only.
    other = prompt[:4] + [1, 2, 3, 4, 5, 6]
    n, keys, _ = cache.lookup(other, len(other) - 1)
    assert n == 4 and torch.equal(keys, k[:, :, :4])
    # Publishing what is known stores nothing new.
    cache.publish(prompt[:12], k[:, :, 12:], v[:, :, 12:], known_tokens=12)
    cache.publish(prompt[:12], k, v)
    assert cache.stats.stored_chunks == 3
    assert (cache.stats.lookups, cache.stats.hits, cache.stats.misses, cache.stats.hit_tokens) == (4, 3, 1, 24)


def test_a_corrupt_chunk_ends_the_prefix_and_is_counted():
    store = MemoryChunkStore(2**20)
    cache = PrefixCache(store, "fp", LAYOUT, CHUNK)
    prompt = list(range(12))
    cache.publish(prompt, *kv_for(prompt))
    second = chunk_keys(cache.space, prompt, CHUNK)[1]
    store.put(second, store.get_many([second])[0][:-7])  # truncated
    n, _, _ = cache.lookup(prompt + [0], 12)
    assert n == 4 and cache.stats.bad_values == 1


def test_the_spec_picks_the_backend_and_explains_a_missing_url(monkeypatch):
    monkeypatch.delenv("PLAIT_REDIS_URL", raising=False)
    assert open_prefix_cache(CacheSpec(backend="off"), "fp", LAYOUT) is None
    assert open_prefix_cache(CacheSpec(), "fp", LAYOUT).store.name == "memory"
    with pytest.raises(ConfigError, match="PLAIT_REDIS_URL"):
        open_prefix_cache(CacheSpec(backend="redis"), "fp", LAYOUT)
    with pytest.raises(ConfigError, match="unknown"):
        CacheSpec(backend="disk")


@pytest.mark.needs_redis
def test_redis_store_shares_values_with_a_ttl(redis_url):
    import redis

    first = PrefixCache(RedisChunkStore(redis_url, ttl_seconds=600), "fp", LAYOUT, CHUNK)
    second = PrefixCache(RedisChunkStore(redis_url), "fp", LAYOUT, CHUNK)
    prompt = list(range(9))
    k, v = kv_for(prompt[:8])
    first.publish(prompt[:8], k, v)
    n, keys, _ = second.lookup(prompt, 8)
    assert n == 8 and torch.equal(keys, k)
    with redis.Redis.from_url(redis_url) as client:
        stored = client.keys(RedisChunkStore.PREFIX + "*")
        assert len(stored) == 2 and all(0 < client.ttl(key) <= 600 for key in stored)


@pytest.mark.needs_redis
def test_redis_down_gives_misses_and_one_warning_then_recovers(redis_server, caplog):
    store = RedisChunkStore(redis_server.url, timeout=0.5, retry_seconds=0.0)
    cache = PrefixCache(store, "fp-down", LAYOUT, CHUNK)
    prompt = list(range(9))
    redis_server.stop()
    try:
        with caplog.at_level(logging.WARNING, logger="plait.kvcache"):
            cache.publish(prompt[:8], *kv_for(prompt[:8]))  # dropped, no exception
            assert cache.lookup(prompt, 8)[0] == 0
            assert cache.lookup(prompt, 8)[0] == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "unavailable" in warnings[0].getMessage()
        assert store.stats()["errors"] >= 3 and cache.stats.misses == 2
    finally:
        redis_server.start()
    # Redis is back (its data from before is gone or not: either way the cache works again).
    cache.publish(prompt[:8], *kv_for(prompt[:8]))
    assert cache.lookup(prompt, 8)[0] == 8
