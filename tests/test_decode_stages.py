"""The decode loop as state plus stages: what the builder lets run together, and every pair of
features it allows, each run on a tiny model (a seeded random Llama with a 16-token
vocabulary: a deterministic torch module standing in for the model, in a unit test of the loop
around it) and on the real embedded model (the product path, TransformersEngine.generate_ids).

Where the output must equal plain decoding it is compared token by token: speculative drafts
(greedy), attention sinks before their first eviction, the prefix KV cache.
"""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from plait.errors import ConfigError
from workers.engines import stages
from workers.engines.attention_sinks import AttentionSinks
from workers.engines.base import Completion, KVLayout, SamplingParams
from workers.engines.cautious import CautiousTrials
from workers.engines.decoding import DecodeState, FullCache, Sampler, Stops, run
from workers.engines.options import CautiousSpec, SinkSpec, SpeculativeSpec
from workers.engines.speculative import DraftModel, ForbiddenDraft, PromptLookup, Verified
from workers.kvcache import MemoryChunkStore, PrefixCache

LOOKUP = SpeculativeSpec("prompt_lookup", draft_tokens=2, ngram=3)
SINKS = SinkSpec(sink_tokens=4, window_tokens=64, evict_tokens=16)
CAUTIOUS = CautiousSpec(entropy=1.0, max_trials=3, span_tokens=4)
GREEDY = SamplingParams(max_tokens=40, seed=5)  # the seed drives cautious trials
LONG = SamplingParams(max_tokens=80, seed=5)  # long enough for attention sinks to evict


class EvenTokens:
    """Test double of a JSON-schema constraint: every even token id, whatever the schema."""

    def allowed(self, generated: list[int]) -> np.ndarray:
        return np.arange(0, 16, 2)


class Tiny:
    """Decodes on the tiny model through `stages.build` and `decoding.run` directly: the
    builder's Decoder here is this test double, with its options set for each call."""

    eos = frozenset()  # rows run to their budget
    prompts = [[3, 9, 13, 2, 7, 3, 9], [11, 3, 4, 1, 2, 8]]
    long_prompt = [(7 * i + 3) % 15 for i in range(56)]
    tool_output = [6, 6, 1]
    schema = {"type": "object"}  # EvenTokens ignores it

    def __init__(self, model, *, speculative=SpeculativeSpec(), sinks=SinkSpec(), cautious=CautiousSpec(), draft=None):
        self.model = model
        self.speculative, self.sinks, self.cautious, self.draft = speculative, sinks, cautious, draft

    def schema_constraint(self, schema: dict) -> EvenTokens:
        return EvenTokens()

    def trial_ends(self) -> torch.Tensor:
        return torch.tensor([t % 5 == 0 for t in range(16)])

    @torch.inference_mode()
    def __call__(self, prompts, params, *, prefix_cache=None, **features):
        decoder = Tiny(self.model, **features)
        generator = torch.Generator().manual_seed(params.seed) if params.seed is not None else None
        plan = stages.build(decoder, params, rows=len(prompts), generator=generator)
        stops = Stops(self.eos, plan.kv.budget(params.max_tokens, 1024 - max(len(p) for p in prompts)))
        state = DecodeState.start(self.model, prompts, stops=stops, prefix_cache=prefix_cache, publish_output=params.cache_output, counters=plan.counters)
        rows = run(state, plan)
        return [Completion("", r.ids, r.logprobs, r.finish, completion_tokens=len(r.ids), cached_tokens=r.cached, decode=r.stats) for r in rows]

    def fresh_cache(self) -> PrefixCache:
        return PrefixCache(MemoryChunkStore(2**24), "tiny", KVLayout(layers=2, kv_heads=2, head_dim=8, dtype="float32"), chunk_tokens=4)

    @torch.inference_mode()
    def logprobs(self, prompt: list[int], ids: list[int]) -> list[float]:
        """Each of `ids`' log-probability after the prompt, from one forward pass over both."""
        logprobs = torch.log_softmax(self.model(input_ids=torch.tensor([prompt + ids])).logits[0, :-1].float(), dim=-1)
        return logprobs[len(prompt) - 1 :].gather(-1, torch.tensor(ids)[:, None]).squeeze(-1).tolist()

    def obeys_schema(self, completion: Completion) -> bool:
        return all(t % 2 == 0 for t in completion.token_ids)


class Real:
    """Decodes on the real embedded model through TransformersEngine.generate_ids, the
    engine's decoding options set for the call."""

    schema = {
        "type": "object",
        "properties": {name: {"type": "string", "maxLength": 12} for name in ("city", "country", "language")},
        "required": ["city", "country", "language"],
    }

    def __init__(self, engine):
        self.engine = engine
        self.eos = frozenset(engine._eos)
        # Short raw-text prompts (a chat template adds a system prompt) leave room in SINKS.
        self.prompts = [engine.encode("1, 2, 3, 4, 5, 6, 7,"), engine.encode("Once upon a time, in a small village by the sea,")]
        self.long_prompt = engine.encode("Rome, Paris, Madrid, Lisbon, Vienna, Prague and Dublin are capitals. " * 3 + "As JSON, one of them and its country:")
        self.tool_output = engine.tokenizer("\n```output\n42\n```\n", add_special_tokens=False)["input_ids"]

    def __call__(self, prompts, params, *, speculative=SpeculativeSpec(), sinks=SinkSpec(), cautious=CautiousSpec(), prefix_cache=None):
        engine = self.engine
        saved = engine.speculative, engine.sinks, engine.cautious, engine.prefix_cache
        engine.speculative, engine.sinks, engine.cautious, engine.prefix_cache = speculative, sinks, cautious, prefix_cache
        try:
            return engine.generate_ids(prompts, params)
        finally:
            engine.speculative, engine.sinks, engine.cautious, engine.prefix_cache = saved

    def fresh_cache(self) -> PrefixCache:
        info = self.engine.info()
        return PrefixCache(MemoryChunkStore(2**28), info.fingerprint, info.kv_layout, chunk_tokens=8)

    def logprobs(self, prompt: list[int], ids: list[int]) -> list[float]:
        return self.engine.sequence_logprobs(prompt + ids)[len(prompt) :]

    def obeys_schema(self, completion: Completion) -> bool:
        text = self.engine.tokenizer.decode([t for t in completion.token_ids if t not in self.eos])
        jsonschema.validate(json.loads(text), self.schema)
        return completion.finish_reason == "stop"


@pytest.fixture(scope="module")
def tiny_model():
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=16,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        initializer_range=1.0,  # peaked next-token distributions: greedy picks are far from ties
        tie_word_embeddings=False,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(params=["tiny", pytest.param("real", marks=pytest.mark.slow)])
def decoder(request, tiny_model):
    if request.param == "tiny":
        return Tiny(tiny_model)
    return Real(request.getfixturevalue("engine"))


def ids(completions: list[Completion]) -> list[list[int]]:
    return [c.token_ids for c in completions]


def assert_exact_logprobs(decoder, prompts, completions) -> None:
    """The logprobs reported are the model's own: what fed drafts or trials left in the KV is exact."""
    for prompt, c in zip(prompts, completions):
        assert max(abs(a - b) for a, b in zip(c.logprobs, decoder.logprobs(prompt, c.token_ids))) < 1e-3


def before_eviction(prompts, widest_block: int) -> int:
    """Tokens every row surely generated before attention sinks first evicted: each step adds
    at most `widest_block` slots to a cache that starts as wide as the longest prompt."""
    return (SINKS.capacity - max(len(p) for p in prompts)) // widest_block - 1


# The builder: one place decides which features run together.


def test_the_builder_orders_the_stages_and_drops_drafts_and_trials_under_a_schema(tiny_model):
    every = Tiny(tiny_model, speculative=LOOKUP, sinks=SINKS, cautious=CAUTIOUS)
    plan = stages.build(every, GREEDY, rows=2)
    assert [type(p) for p in plan.proposers] == [CautiousTrials, PromptLookup] and isinstance(plan.kv, AttentionSinks)
    assert [type(m) for m in plan.masks] == [ForbiddenDraft]
    assert plan.counters == (*CautiousTrials.counters, *PromptLookup.counters, *AttentionSinks.counters)

    schema = stages.build(every, SamplingParams(json_schema=Tiny.schema), rows=2)
    assert schema.proposers == [] and [type(m).__name__ for m in schema.masks] == ["SchemaMask"] and isinstance(schema.kv, AttentionSinks)

    # A call's own cautious_entropy overrides the engine's: 0 turns CNTP off for that call.
    on = stages.build(Tiny(tiny_model), SamplingParams(cautious_entropy=2.0), rows=1)
    assert on.masks == [] and [p.spec.entropy for p in on.proposers] == [2.0]
    off = stages.build(Tiny(tiny_model, cautious=CAUTIOUS), SamplingParams(cautious_entropy=0.0), rows=1)
    assert off.proposers == [] and isinstance(off.kv, FullCache) and off.counters == ()


def test_a_draft_model_comes_from_the_factory_or_the_builder_says_how_to_get_one(tiny_model):
    spec = SpeculativeSpec("draft_model", draft_model="small-draft")
    with pytest.raises(ConfigError, match="make_engine"):
        stages.build(Tiny(tiny_model, speculative=spec), GREEDY, rows=1)
    plan = stages.build(Tiny(tiny_model, speculative=spec, draft=object()), GREEDY, rows=1)
    assert [type(p) for p in plan.proposers] == [DraftModel]


# The state and the loop on their own.


def test_the_state_decodes_batched_as_one_by_one_with_the_models_own_logprobs(tiny_model):
    tiny = Tiny(tiny_model)
    tiny.eos = frozenset({0})  # a token the rows reach at different steps: rows leave the batch mid-call
    batched = tiny(Tiny.prompts, GREEDY)
    assert [tiny([p], GREEDY)[0].token_ids for p in Tiny.prompts] == ids(batched)
    assert any(c.finish_reason == "stop" for c in batched) and len({len(c.token_ids) for c in batched}) == 2
    assert_exact_logprobs(tiny, Tiny.prompts, batched)
    assert all(c.decode == {} for c in batched)  # no feature ran, none reports


@torch.inference_mode()
def test_a_rejected_draft_token_is_ruled_out_of_the_next_pick_only(tiny_model):
    prompt, lead = Tiny.prompts[0], 3
    unlikely = int(tiny_model(input_ids=torch.tensor([prompt + [lead]])).logits[0, -1].argmin())  # surely rejected
    sampler = Sampler(SamplingParams(temperature=1.0), torch.Generator().manual_seed(0))
    forbid = ForbiddenDraft()
    state = DecodeState.start(tiny_model, [prompt], stops=Stops(frozenset(), 8), counters=PromptLookup.counters)
    state.take(0, lead, 0.0)
    out = state.forward([[lead, unlikely]])
    state.settle(out, [Verified(sampler, forbid).accept(state, 0, out[0], [unlikely])])
    assert forbid.tokens == {0: unlikely} and state.stats(0) == {"speculative_drafted": 1, "speculative_accepted": 0}
    assert state.mask[0, -2:].tolist() == [1, 0] and state.row(0).ids == [lead]  # the draft's slot is masked out
    masked = forbid.apply(state, state.logits)
    assert masked[0, unlikely] == float("-inf") and torch.equal(masked[0, :unlikely], state.logits[0, :unlikely])
    assert forbid.tokens == {} and torch.equal(forbid.apply(state, state.logits), state.logits)


def test_drafts_from_a_draft_model_leave_greedy_output_unchanged(tiny_model):
    tiny = Tiny(tiny_model)

    class TinyDraftEngine:
        """Test double of the draft model's engine: the tiny model itself, decoding greedily."""

        def generate_ids(self, rows, params):
            return tiny(rows, params)

    plain = tiny(Tiny.prompts, GREEDY)
    drafted = tiny(Tiny.prompts, GREEDY, speculative=SpeculativeSpec("draft_model", draft_tokens=3, draft_model="tiny"), draft=TinyDraftEngine())
    assert ids(drafted) == ids(plain)
    # A draft equal to the target guesses its greedy picks: all are accepted.
    assert all(c.decode["speculative_accepted"] == c.decode["speculative_drafted"] > 0 for c in drafted)


def test_decode_counters_are_per_call_not_accumulated(decoder):
    first = decoder(decoder.prompts, GREEDY, speculative=LOOKUP)
    second = decoder(decoder.prompts, GREEDY, speculative=LOOKUP)
    assert [c.decode for c in first] == [c.decode for c in second]
    assert all(set(c.decode) == {"speculative_drafted", "speculative_accepted"} for c in first)
    assert json.loads(json.dumps([c.to_dict() for c in first]))[0]["decode"] == first[0].decode


# Each allowed pair, on both models.


def test_speculation_with_attention_sinks(decoder):
    plain = decoder(decoder.prompts, LONG)
    both = decoder(decoder.prompts, LONG, speculative=LOOKUP, sinks=SINKS)
    same = before_eviction(decoder.prompts, 1 + LOOKUP.draft_tokens)
    assert same > 5 and [c[:same] for c in ids(both)] == [c[:same] for c in ids(plain)]
    for c in both:
        assert c.completion_tokens == LONG.max_tokens or c.finish_reason == "stop"
        assert c.decode["sinks_compactions"] >= 1 and c.decode["sinks_peak_cache_tokens"] <= SINKS.capacity
    assert sum(c.decode["speculative_accepted"] for c in both) > 0


def test_speculation_with_cautious_trials(decoder):
    cautious = decoder(decoder.prompts, GREEDY, cautious=CAUTIOUS)
    both = decoder(decoder.prompts, GREEDY, speculative=LOOKUP, cautious=CAUTIOUS)
    # Greedy drafts change nothing, not even the random draws of the trials.
    assert ids(both) == ids(cautious)
    assert sum(c.decode["cautious_branched"] for c in both) > 0 and sum(c.decode["speculative_drafted"] for c in both) > 0
    assert_exact_logprobs(decoder, decoder.prompts, both)


def test_cautious_trials_with_attention_sinks(decoder):
    cautious = decoder(decoder.prompts, LONG, cautious=CAUTIOUS)
    both = decoder(decoder.prompts, LONG, sinks=SINKS, cautious=CAUTIOUS)
    same = before_eviction(decoder.prompts, CAUTIOUS.span_tokens)
    assert same > 5 and [c[:same] for c in ids(both)] == [c[:same] for c in ids(cautious)]
    assert sum(c.decode["cautious_branched"] for c in both) > 0
    for c in both:
        assert c.decode["sinks_compactions"] >= 1 and c.decode["sinks_peak_cache_tokens"] <= SINKS.capacity


def test_a_schema_with_attention_sinks(decoder):
    params = SamplingParams(max_tokens=60, json_schema=decoder.schema)
    [alone] = decoder([decoder.long_prompt], params)
    [both] = decoder([decoder.long_prompt], params, sinks=SINKS)
    same = SINKS.capacity - len(decoder.long_prompt)
    assert same > 5 and both.token_ids[:same] == alone.token_ids[:same]
    assert both.decode["sinks_compactions"] >= 1 and decoder.obeys_schema(both) and decoder.obeys_schema(alone)


def test_a_schema_with_the_prefix_cache(decoder):
    params = SamplingParams(max_tokens=30, json_schema=decoder.schema)
    reference = decoder(decoder.prompts, params)
    cache = decoder.fresh_cache()
    first = decoder(decoder.prompts, params, prefix_cache=cache)
    again = decoder(decoder.prompts, params, prefix_cache=cache)
    assert ids(first) == ids(again) == ids(reference)
    assert all(c.cached_tokens == 0 for c in first) and all(c.cached_tokens > 0 for c in again)


def tool_rounds(decoder, **features):
    """Two rounds of a tool conversation, round 2 sending round 1's prompt and output back
    extended: with one prefix cache across them, and without any (the reference)."""
    round1 = SamplingParams(max_tokens=24, seed=5, cache_output=True)
    round2 = SamplingParams(max_tokens=16, seed=6)
    cache = decoder.fresh_cache()
    first = decoder(decoder.prompts, round1, prefix_cache=cache, **features)
    followups = [p + c.token_ids + decoder.tool_output for p, c in zip(decoder.prompts, first)]
    second = decoder(followups, round2, prefix_cache=cache, **features)
    assert ids(first) == ids(decoder(decoder.prompts, round1, **features))
    assert ids(second) == ids(decoder(followups, round2, **features))
    return first, second


def test_speculation_with_the_prefix_cache(decoder):
    first, second = tool_rounds(decoder, speculative=LOOKUP)
    # Round 1's output was published past the rejected draft slots: round 2 loads its KV.
    assert all(c.cached_tokens > len(p) for c, p in zip(second, decoder.prompts))
    assert sum(c.decode["speculative_drafted"] for c in first) > 0


def test_cautious_trials_with_the_prefix_cache(decoder):
    first, second = tool_rounds(decoder, cautious=CAUTIOUS)
    assert all(c.cached_tokens > len(p) for c, p in zip(second, decoder.prompts))
    assert any(c.decode["cautious_branched"] > 0 for c in first)


def test_attention_sinks_with_the_prefix_cache(decoder):
    cache = decoder.fresh_cache()
    params = SamplingParams(max_tokens=80, cache_output=True)
    first = decoder(decoder.prompts, params, sinks=SINKS, prefix_cache=cache)
    assert ids(first) == ids(decoder(decoder.prompts, params, sinks=SINKS))
    assert all(c.decode["sinks_compactions"] >= 1 for c in first)
    # After an eviction the cache no longer holds the rows whole: only the prompts were published.
    followups = [p + c.token_ids for p, c in zip(decoder.prompts, first)]
    again = decoder(followups, SamplingParams(max_tokens=4), sinks=SINKS, prefix_cache=cache)
    assert all(0 < c.cached_tokens <= len(p) for c, p in zip(again, decoder.prompts))
    assert ids(again) == ids(decoder(followups, SamplingParams(max_tokens=4), sinks=SINKS))


def test_a_schema_turns_drafts_and_trials_off(decoder):
    params = SamplingParams(max_tokens=30, seed=5, json_schema=decoder.schema)
    alone = decoder(decoder.prompts, params)
    refused = decoder(decoder.prompts, params, speculative=LOOKUP, cautious=CAUTIOUS)
    assert ids(refused) == ids(alone) and all(c.decode == {} for c in refused)
