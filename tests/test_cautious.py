"""Cautious next-token prediction: when it branches, which trial it keeps, and the real
engine's output with it on (exact logprobs, trial compute reported) and off."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from workers.engines.base import SamplingParams, chat
from workers.engines.cautious import boundary_tokens, entropies, lowest_perplexity, sample_trials
from workers.engines.decoding import prefill
from workers.engines.options import CautiousSpec

QUESTION = chat(("user", "Tom has 3 boxes with 12 pencils each. He gives away 7 pencils. How many pencils are left?"))


def test_flatter_steps_get_more_trials_up_to_the_cap():
    spec = CautiousSpec(entropy=1.0, max_trials=4)
    assert [spec.trials(h) for h in (0.2, 1.0, 1.05, 2.5, 3.2, 9.0)] == [0, 0, 2, 3, 4, 4]
    assert not CautiousSpec().on
    with pytest.raises(ValueError, match="max_trials"):
        CautiousSpec(entropy=1.0, max_trials=1)


def test_entropy_is_zero_for_a_sure_step_and_log_n_for_a_uniform_one():
    logprobs = torch.log_softmax(torch.tensor([[50.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]]), dim=-1)
    h = entropies(logprobs)
    assert h[0] < 1e-6 and abs(h[1] - torch.log(torch.tensor(4.0))) < 1e-6


def test_the_kept_trial_is_each_owners_most_likely_per_token():
    owners = [0, 0, 0, 1, 1]
    trials = [[1, 2], [3], [4, 5, 6], [7], [8, 9]]
    logprobs = [[-1.0, -1.0], [-1.5], [-0.2, -0.5, -1.1], [-3.0], [-2.0, -2.2]]
    # Owner 0: means -1.0, -1.5, -0.6 -> the long trial wins (a sum would pick the short one).
    assert lowest_perplexity(owners, trials, logprobs) == {0: [4, 5, 6], 1: [8, 9]}


def test_trials_end_at_punctuation_and_report_the_models_own_logprobs(engine):
    ends = boundary_tokens(engine.tokenizer, engine._eos, engine.model.config.vocab_size)
    assert ends[engine.tokenizer.convert_tokens_to_ids(".")] and ends[engine.tokenizer.eos_token_id]
    assert not ends[engine.tokenizer.convert_tokens_to_ids("hello")]

    ids = engine.encode(QUESTION)
    cache, mask, logits, _ = prefill(engine.model, [ids], engine.tokenizer.pad_token_id)
    generator = torch.Generator().manual_seed(3)
    trials, logprobs = sample_trials(engine.model, cache, mask, mask.sum(-1, keepdim=True), logits, [0, 0, 0], 1.0, 12, ends, generator)

    assert mask.shape[1] == len(ids)  # the batch's own cache was not extended
    for trial, lps in zip(trials, logprobs):
        assert 1 <= len(trial) <= 12 and len(lps) == len(trial)
        assert all(not ends[t] for t in trial[:-1]) and (ends[trial[-1]] or len(trial) == 12)
        expected = engine.sequence_logprobs(ids + trial)[len(ids) :]
        assert max(abs(a - b) for a, b in zip(lps, expected)) < 1e-3


@pytest.mark.slow
def test_cautious_decoding_branches_keeps_exact_logprobs_and_counts_the_trials(engine):
    params = SamplingParams(max_tokens=60, seed=7)
    assert not engine.cautious.on  # the tier's setting; each call below sets its own threshold
    [[plain]] = engine.generate([QUESTION], params)
    [[unbranched]] = engine.generate([QUESTION], replace(params, cautious_entropy=100.0))  # never above it
    [[cautious]] = engine.generate([QUESTION], replace(params, cautious_entropy=0.5))

    assert unbranched.token_ids == plain.token_ids and unbranched.trial_tokens == 0
    assert unbranched.decode["cautious_branched"] == 0 and unbranched.decode["cautious_steps"] == len(plain.token_ids)
    assert cautious.decode["cautious_branched"] > 0 and cautious.trial_tokens == cautious.decode["cautious_trial_tokens"] > 0
    assert "cautious_steps" not in plain.decode
    assert cautious.token_ids != plain.token_ids  # trials were kept in place of greedy picks
    # Kept trials were fed back into the batch's cache: the logprobs reported are the model's.
    ids = engine.encode(QUESTION)
    expected = engine.sequence_logprobs(ids + cautious.token_ids)[len(ids) :]
    assert max(abs(a - b) for a, b in zip(cautious.logprobs, expected)) < 1e-3
