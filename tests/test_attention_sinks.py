"""Attention sinks: compaction keeps sinks and recent tokens at their in-cache positions, and the
real model generates far past its (capped) context with a cache that never grows past the
policy's capacity."""

from __future__ import annotations

import re

import pytest
import torch
from transformers import DynamicCache

from workers.engines.attention_sinks import compact, inverse_frequencies
from workers.engines.base import SamplingParams
from workers.engines.options import SinkSpec
from workers.engines.transformers_engine import TransformersEngine

COUNTING = "Count from 1 to 1000: 1, 2, 3, 4, 5,"


def test_bad_policies_are_refused_with_the_rule():
    with pytest.raises(ValueError, match="evict_tokens"):
        SinkSpec(4, 128, 100)
    with pytest.raises(ValueError, match="window_tokens"):
        SinkSpec(4, 32)
    assert not SinkSpec().on and SinkSpec(4, 128, 32).capacity == 132


@torch.inference_mode()
def test_compaction_gives_the_kept_tokens_the_keys_they_would_have_at_their_new_positions(engine):
    # Layer 0's keys and values depend only on a token and its position, so after compaction
    # they must equal those of a fresh pass over the kept tokens alone, numbered from 0.
    # Two left-padded rows of different lengths check the per-row alignment.
    spec = SinkSpec(sink_tokens=4, window_tokens=64, evict_tokens=16)
    rows = [engine.encode(COUNTING + " 6, 7" * 40)[:150], engine.encode(COUNTING + " 8, 9" * 40)[:110]]
    width = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    cache = DynamicCache()
    engine.model(input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0), past_key_values=cache)

    new_mask, dropped = compact(cache, mask, spec, inverse_frequencies(engine.model), incoming=1)

    recent = spec.window_tokens - spec.evict_tokens
    assert dropped == [len(r) - spec.sink_tokens - recent for r in rows]
    assert new_mask.shape[1] == spec.sink_tokens + recent <= spec.capacity
    for b, row in enumerate(rows):
        kept = row[: spec.sink_tokens] + row[-recent:]
        fresh = DynamicCache()
        engine.model(input_ids=torch.tensor([kept]), past_key_values=fresh)
        slots = new_mask[b].nonzero().squeeze(-1)
        assert len(slots) == len(kept)
        torch.testing.assert_close(cache.layers[0].keys[b][:, slots], fresh.layers[0].keys[0], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(cache.layers[0].values[b][:, slots], fresh.layers[0].values[0], atol=1e-5, rtol=1e-5)
    assert compact(cache, new_mask, spec, inverse_frequencies(engine.model), incoming=1) is None  # room again


@pytest.mark.slow
def test_generation_runs_far_past_the_context_with_a_bounded_cache_and_keeps_its_thread():
    spec = SinkSpec(sink_tokens=4, window_tokens=128, evict_tokens=32)
    engine = TransformersEngine(context_length=256, sinks=spec)
    params = SamplingParams(max_tokens=600)  # more than twice the context

    [[streamed]] = engine.generate([COUNTING], params)

    assert streamed.finish_reason == "length" and streamed.completion_tokens == 600
    assert streamed.decode["sinks_compactions"] >= 10 and streamed.decode["sinks_evicted"] >= 10 * spec.evict_tokens
    assert streamed.decode["sinks_peak_cache_tokens"] <= spec.capacity
    # No collapse: the count goes on, one by one, long after the first tokens left the window.
    numbers = [int(n) for n in re.findall(r"\d+", streamed.text)]
    assert len(numbers) > 100
    tail = numbers[-40:-1]  # the very last number may be cut mid-digits
    assert tail == list(range(tail[0], tail[0] + len(tail)))

    # Until the first compaction nothing differs from the plain cache, which stops at the context.
    engine.sinks = SinkSpec()
    [[plain]] = engine.generate([COUNTING], params)
    assert plain.completion_tokens == 256 - len(engine.encode(COUNTING))
    same = spec.capacity - len(engine.encode(COUNTING))
    assert streamed.token_ids[:same] == plain.token_ids[:same]
