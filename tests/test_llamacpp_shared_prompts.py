"""A prompt listed several times in one call is one llama-server request of n_cmpl samples,
so its prompt is computed once (the REBASE children of one node, the samples of one question)."""

from __future__ import annotations

import pytest

from workers.engines.base import SamplingParams
from workers.engines.llamacpp import same_prompt_requests


def test_repeated_prompts_merge_up_to_the_slots_and_keep_their_rows():
    prompts = ["a", "b", "a", "a", "c", "a", "b"]
    requests = same_prompt_requests(prompts, SamplingParams(seed=10), slots=3)
    assert [(prompt, p.n, rows) for prompt, p, rows in requests] == [
        ("a", 3, [0, 2, 3]),
        ("a", 1, [5]),
        ("b", 2, [1, 6]),
        ("c", 1, [4]),
    ]
    # A merged request is sampled from its first row's seed, as that row alone would be.
    assert [p.seed for _, p, _ in requests] == [10, 15, 11, 14]


def test_a_call_with_n_samples_per_prompt_merges_whole_prompts_within_the_slots():
    requests = same_prompt_requests(["q", "q", "q"], SamplingParams(n=2, temperature=1.0), slots=4)
    assert [(p.n, rows) for _, p, rows in requests] == [(4, [0, 1]), (2, [2])]


@pytest.fixture(scope="module")
def server():
    from workers.engines.llamacpp import LlamaCppEngine

    engine = LlamaCppEngine("smollm2-135m", parallel=4)
    yield engine
    engine.close()


@pytest.mark.slow
def test_repeated_prompts_compute_their_prompt_once_per_request(server):
    france = "Question seven of the geography quiz. The capital of France is"
    week = "Monday, Tuesday, Wednesday,"
    prompts = [france, week, france, france, france, france]
    rows = server.generate(prompts, SamplingParams(max_tokens=6))
    assert [len(r) for r in rows] == [1] * 6
    assert all("Paris" in rows[i][0].text for i in (0, 2, 3, 4, 5)) and "Thursday" in rows[1][0].text
    copies = [rows[i][0] for i in (0, 2, 3, 4, 5)]
    # Five copies on four slots are two requests: the prompt is computed at most twice, where
    # five requests of their own would compute it five times on a fresh server.
    assert sum(c.prompt_tokens - c.cached_tokens for c in copies) <= 2 * copies[0].prompt_tokens
    sampled = server.generate([france] * 3, SamplingParams(max_tokens=12, temperature=1.0, seed=3))
    assert len({r[0].text for r in sampled}) > 1
