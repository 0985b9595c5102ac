"""Cautious next-token prediction on plait's llama-server (the small model's GGUF, so it is
fast): the rule run from outside the server, in rounds."""

import math

import pytest

from workers.engines.base import SamplingParams, chat
from workers.engines.llamacpp_cautious import entropy
from workers.engines.options import CautiousSpec

pytestmark = pytest.mark.slow

PROMPT = chat(("user", "Write two sentences about the sea."))


@pytest.fixture(scope="module")
def llama():
    from workers.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine("smollm2-135m", parallel=4, cautious=CautiousSpec(entropy=0.0, max_trials=3, span_tokens=8))
    yield engine
    engine.close()


def test_entropy_of_top_logprobs():
    assert entropy([{"logprob": 0.0}]) == 0.0
    uniform = [{"logprob": math.log(0.25)}] * 4
    assert entropy(uniform) == pytest.approx(math.log(4))


def test_a_threshold_above_every_step_is_plain_greedy(llama):
    params = SamplingParams(max_tokens=40)
    (plain,) = llama.generate([PROMPT], params)[0]
    (cautious,) = llama.generate([PROMPT], SamplingParams(max_tokens=40, cautious_entropy=1e6))[0]
    assert cautious.text == plain.text and cautious.trial_tokens == 0
    assert cautious.completion_tokens == plain.completion_tokens
    assert cautious.decode == {"cautious_steps": plain.completion_tokens}  # every step looked at, none branched


def test_a_low_threshold_branches_and_counts_its_trials(llama):
    (cautious,) = llama.generate([PROMPT], SamplingParams(max_tokens=40, cautious_entropy=0.5, seed=5))[0]
    assert cautious.trial_tokens > 0  # trials ran, and their tokens are extra compute
    assert 0 < cautious.decode["cautious_branched"] < cautious.decode["cautious_steps"] <= cautious.completion_tokens
    assert 0 < cautious.completion_tokens <= 40 and cautious.text
    assert cautious.computed_tokens - cautious.trial_tokens == cautious.prompt_tokens - cautious.cached_tokens + cautious.completion_tokens
    assert all(lp <= 0 for lp in cautious.logprobs)


def test_a_branch_wastes_at_most_one_round_and_its_trials(llama, monkeypatch):
    from workers.engines.llamacpp_cautious import ROUND_TOKENS, TOP_K

    sent = []
    post = llama.api.post
    monkeypatch.setattr(llama.api, "post", lambda path, body: sent.append(body) or post(path, body))
    (cautious,) = llama.generate([PROMPT], SamplingParams(max_tokens=120, cautious_entropy=0.5, seed=7))[0]
    spec = llama.cautious
    branched = cautious.decode["cautious_branched"]
    # Greedy rounds are short, so what a branch throws away is the rest of its round and its
    # trials, not the rest of the whole completion.
    rounds = [body for body in sent if body.get("n_probs") == TOP_K]
    assert rounds and all(body["n_predict"] <= ROUND_TOKENS for body in rounds)
    assert 0 < cautious.trial_tokens <= branched * (ROUND_TOKENS + spec.max_trials * spec.span_tokens)
    assert cautious.completion_tokens <= 120
