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
