"""Speculative decoding: prompt-lookup drafts, the acceptance rule, and the real engine's
output with and without speculation."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from plait.errors import ConfigError
from workers.engines import EngineSpec, make_engine
from workers.engines.base import SamplingParams
from workers.engines.decoding import Sampler
from workers.engines.embedded import EMBEDDED_MODEL
from workers.engines.options import SpeculativeSpec
from workers.engines.speculative import accept, propose
from workers.strategies.prompts import TORA_PROMPT


def test_a_draft_copies_what_followed_the_latest_earlier_occurrence():
    #          0  1  2  3  4  5  6  7  8  9
    tokens = [5, 6, 7, 8, 9, 5, 6, 7, 1, 5, 6]
    assert propose(tokens, 2, 3) == [7, 1]  # "5 6" last seen at 5-6, followed by 7 1
    assert propose(tokens, 10, 3) == [7, 1, 5, 6]  # never past the end
    assert propose([1, 2, 3, 4], 4, 3) == []  # nothing repeats
    assert propose(tokens, 0, 3) == []


def test_greedy_acceptance_keeps_the_prefix_the_target_agrees_with():
    logits = torch.full((4, 10), -5.0)
    logits[0, 3], logits[1, 4], logits[2, 9], logits[3, 0] = 5.0, 5.0, 5.0, 5.0
    assert accept(logits, [3, 4, 2], lambda _: None, None) == (2, 2)  # 2 is not the argmax after 3 4
    assert accept(logits, [3, 4, 9], lambda _: None, None) == (3, None)
    assert accept(logits, [1], lambda _: None, None) == (0, 1)


def test_the_sampling_rule_leaves_the_distribution_unchanged():
    # Draft token 2 everywhere; the target's distribution p is fixed. Accept-or-resample must
    # produce tokens distributed as p, whatever the draft.
    logits = torch.tensor([[1.0, 0.2, 1.5, -0.5, 0.7]])
    generator = torch.Generator().manual_seed(0)
    sampler = Sampler(SamplingParams(temperature=0.8, top_p=0.9), generator)
    p = sampler.distribution(logits[0])
    counts: Counter[int] = Counter()
    trials = 20_000
    for _ in range(trials):
        kept, rejected = accept(logits, [2], sampler.distribution, generator)
        if kept:
            counts[2] += 1
        else:
            masked = logits.clone()
            masked[0, rejected] = float("-inf")
            counts[int(sampler.pick(masked)[0])] += 1
    for token in range(5):
        assert abs(counts[token] / trials - float(p[token])) < 0.015, (token, counts, p)


@pytest.mark.slow
def test_greedy_output_is_identical_with_and_without_speculation(engine):
    prompts = [TORA_PROMPT.prompt(q) for q in ("What is 123 * 456 + 789?", "Simplify the fraction 96/144 to its lowest terms.")]
    params = SamplingParams(max_tokens=80, stop=("```output",))
    before = engine.speculative
    try:
        plain = engine.generate(prompts, params)
        engine.speculative = SpeculativeSpec("prompt_lookup", draft_tokens=4, ngram=3)
        drafted = engine.generate(prompts, params)
    finally:
        engine.speculative = before
    assert "speculative_drafted" not in plain[0][0].decode
    assert sum(c.decode["speculative_accepted"] for (c,) in drafted) > 0  # drafts were proposed and some were kept
    for (a,), (b,) in zip(plain, drafted):
        assert a.text == b.text and a.token_ids == b.token_ids and a.finish_reason == b.finish_reason
        assert max(abs(x - y) for x, y in zip(a.logprobs, b.logprobs)) < 1e-3


@pytest.mark.slow
def test_a_draft_model_drafts_in_the_targets_tokens_and_greedy_output_is_unchanged(engine):
    prompts = [TORA_PROMPT.prompt("What is 17 * 23 - 41?")]
    params = SamplingParams(max_tokens=48, stop=("```output",))
    plain = engine.generate(prompts, params)
    # The target itself as the draft: the smallest model with its tokenizer on this machine.
    # The factory builds the draft engine and hands it to the target.
    speculating = make_engine(EngineSpec(speculative=SpeculativeSpec("draft_model", draft_tokens=4, draft_model=EMBEDDED_MODEL)))
    assert speculating.draft is not None and speculating.draft.model_id == EMBEDDED_MODEL
    [[drafted]] = speculating.generate(prompts, params)
    # A draft equal to the target guesses the target's greedy picks: nearly all are accepted.
    assert drafted.decode["speculative_accepted"] >= 0.8 * drafted.decode["speculative_drafted"] > 0
    assert plain[0][0].token_ids == drafted.token_ids and plain[0][0].text == drafted.text


def test_a_draft_model_option_without_its_draft_engine_says_how_to_build_one(engine):
    before = engine.speculative
    try:
        engine.speculative = SpeculativeSpec("draft_model", draft_model=EMBEDDED_MODEL)
        with pytest.raises(ConfigError, match="make_engine"):
            engine.generate(["1, 2, 3,"], SamplingParams(max_tokens=2))
    finally:
        engine.speculative = before


@pytest.mark.slow
def test_llama_server_drafts_report_their_counts():
    """A llamacpp tier's `speculative` option is llama-server's n-gram drafting; the server's
    draft counts come back under the transformers engine's counter names."""
    spec = EngineSpec(kind="llamacpp", model=EMBEDDED_MODEL, parallel=1, speculative=SpeculativeSpec("prompt_lookup", draft_tokens=4))
    engine = make_engine(spec)
    try:
        count = " ".join(str(i) for i in range(1, 21))  # greedy goes on counting: n-grams of the prompt
        ((drafted,),) = engine.generate([f"{count}\n{count}\n{count}\n1 2 3"], SamplingParams(max_tokens=24))
    finally:
        engine.close()
    assert drafted.decode["speculative_drafted"] > 0
    assert 0 <= drafted.decode["speculative_accepted"] <= drafted.decode["speculative_drafted"]
