"""The prefix KV cache inside TransformersEngine, on the real embedded model: outputs with the
cache are identical to outputs without it (batched, single, across tool rounds, with
samples), hits are real, Redis shares KV between worker processes, and a dead or corrupt
Redis only costs misses."""

import pytest

from workers.engines.base import SamplingParams, chat
from workers.kvcache import MemoryChunkStore, PrefixCache, RedisChunkStore

pytestmark = pytest.mark.slow

CHUNK = 32
SYSTEM = (
    "You are a patient mathematics tutor. Explain every step in plain words, check the arithmetic twice, "
    "and give the final answer on its own line. "
) * 6
QUESTIONS = ["What is 17 + 25?", "Is 91 a prime number?", "What is half of 64?"]


def fresh_cache(engine, store=None) -> PrefixCache:
    info = engine.info()
    return PrefixCache(store or MemoryChunkStore(2**30), info.fingerprint, info.kv_layout, CHUNK)


def texts(outputs) -> list[list[str]]:
    return [[c.text for c in group] for group in outputs]


@pytest.fixture
def reference(engine):
    """generate() on the same engine with its prefix cache switched off."""

    def run(prompts, params):
        cache, engine.prefix_cache = engine.prefix_cache, None
        try:
            return engine.generate(prompts, params)
        finally:
            engine.prefix_cache = cache

    return run


def test_cached_prefixes_give_identical_greedy_output_batched_and_single(engine, reference, monkeypatch):
    prompts = [chat(("system", SYSTEM), ("user", q)) for q in QUESTIONS]
    params = SamplingParams(max_tokens=24)
    expected = [texts(reference([p], params))[0] for p in prompts]
    monkeypatch.setattr(engine, "prefix_cache", fresh_cache(engine))
    cache = engine.prefix_cache

    first = engine.generate(prompts, params)  # all miss, then publish
    assert texts(first) == expected and cache.stats.hits == 0 and cache.stats.stored_chunks > 0
    unrelated = chat(("user", "Name a colour."))
    again = engine.generate([*prompts, unrelated], params)  # the shared prefix hits, the short prompt cannot
    assert texts(again)[:3] == expected and texts(again)[3] == texts(reference([unrelated], params))[0]
    assert all(group[0].cached_tokens >= CHUNK for group in again[:3]) and again[3][0].cached_tokens == 0
    singles = [engine.generate([p], params) for p in prompts]
    assert [texts(s)[0] for s in singles] == expected
    assert all(s[0][0].cached_tokens == again[i][0].cached_tokens for i, s in enumerate(singles))
    assert cache.stats.bad_values == 0 and cache.stats.hit_tokens >= 6 * CHUNK


def test_a_tool_round_continues_from_the_kv_of_the_previous_round(engine, reference, monkeypatch):
    """Round 2 sends round 1's conversation back with a tool output appended: the engine loads
    the KV of round 1's prompt *and* its generated tokens, for two questions and two sampled
    samples each, and the output is the same as recomputing everything."""
    round1 = [chat(("system", SYSTEM), ("user", q + " Write Python code.")) for q in QUESTIONS[:2]]
    params1 = SamplingParams(max_tokens=48, temperature=0.8, n=2, seed=7, cache_output=True)
    expected1 = reference(round1, params1)
    monkeypatch.setattr(engine, "prefix_cache", fresh_cache(engine))
    got1 = engine.generate(round1, params1)
    assert texts(got1) == texts(expected1)

    def round2(outputs):
        return [
            chat(("system", SYSTEM), ("user", QUESTIONS[i] + " Write Python code."), ("assistant", c.text + "\n```output\n42\n```\n"))
            for i, group in enumerate(outputs)
            for c in group
        ]

    params2 = SamplingParams(max_tokens=24, temperature=0.8, seed=8)
    got2 = engine.generate(round2(got1), params2)
    assert texts(got2) == texts(reference(round2(expected1), params2))
    prompt1 = len(engine.encode(round1[0]))
    # More than round 1's prompt was loaded: the KV of the tokens round 1 generated too.
    assert all(group[0].cached_tokens > prompt1 for group in got2)


def test_a_dead_redis_costs_misses_not_answers(engine, reference, monkeypatch):
    from tools.processes import free_port

    prompt = chat(("system", SYSTEM), ("user", QUESTIONS[0]))
    params = SamplingParams(max_tokens=16)
    dead = RedisChunkStore(f"redis://127.0.0.1:{free_port()}/0", timeout=0.2)
    monkeypatch.setattr(engine, "prefix_cache", fresh_cache(engine, dead))
    for _ in range(2):
        assert texts(engine.generate([prompt], params)) == texts(reference([prompt], params))
    assert engine.prefix_cache.stats.hits == 0 and dead.stats()["errors"] >= 1


@pytest.mark.needs_redis
def test_two_worker_processes_share_a_prefix_through_redis(client, engine, reference, redis_url):
    import ray
    import redis

    from workers.actor import ModelWorker
    from workers.engines import EngineSpec
    from workers.kvcache import CacheSpec
    from workers.kvcache.keys import chunk_keys

    spec = EngineSpec(kv_cache=CacheSpec(backend="redis", redis_url=redis_url, chunk_tokens=CHUNK))
    first, second = (ray.remote(ModelWorker).options(num_cpus=0).remote(spec, f"kv-{i}") for i in range(2))
    try:
        assert ray.get(first.describe.remote())["pid"] != ray.get(second.describe.remote())["pid"]
        prompt = chat(("system", SYSTEM), ("user", QUESTIONS[2]))
        params = SamplingParams(max_tokens=24)
        expected = texts(reference([prompt], params))
        ((made,),) = ray.get(first.generate.remote([prompt], params))
        ((loaded,),) = ray.get(second.generate.remote([prompt], params))
        assert made.cached_tokens == 0 and loaded.cached_tokens >= 4 * CHUNK
        assert [[made.text]] == [[loaded.text]] == expected

        # Garble the second chunk in Redis: the second worker loads only the first, and the
        # answer stays the same.
        ids = engine.encode(prompt)
        key = chunk_keys(fresh_cache(engine).space, ids, CHUNK)[1]
        with redis.Redis.from_url(redis_url) as r:
            value = r.get(RedisChunkStore.PREFIX + key)
            r.set(RedisChunkStore.PREFIX + key, value[:100] + bytes(len(value) - 100))
        ((partial,),) = ray.get(second.generate.remote([prompt], params))
        assert partial.cached_tokens == CHUNK and [[partial.text]] == expected
    finally:
        for actor in (first, second):
            ray.kill(actor)
