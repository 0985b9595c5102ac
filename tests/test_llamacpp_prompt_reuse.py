"""What llama-server computes again and what it reuses: a prompt listed several times in one
call is one request of n_cmpl samples, so its prompt is computed once (the samples of one
question); one that will be continued keeps a request per copy, but its prompt is computed in
one slot and copied into the others (a search's first step); and every request of a wave finds
the slot that holds its prefix (a search's paths, each continuing its own last step)."""

from __future__ import annotations

import pytest

from plait.errors import EngineError
from workers.engines.base import SamplingParams
from workers.engines.llamacpp import same_prompt_requests, shared_prefix_slots
from workers.strategies.methods import written


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


def test_more_samples_than_slots_is_an_error_not_a_request_that_never_starts():
    with pytest.raises(EngineError, match="n=5 samples in one request, but llama-server has 4 slots"):
        same_prompt_requests(["q"], SamplingParams(n=5, temperature=1.0), slots=4)


def test_paths_that_will_be_continued_keep_a_request_each():
    requests = same_prompt_requests(["q", "q"], SamplingParams(temperature=1.0, seed=4, cache_output=True), slots=4)
    assert [(p.n, p.seed, rows) for _, p, rows in requests] == [(1, 4, [0]), (1, 5, [1])]


def test_a_call_of_continued_copies_that_fits_the_slots_copies_each_prompt_once():
    step = SamplingParams(temperature=1.0, cache_output=True)
    first_step = same_prompt_requests(["q", "q", "r", "r"], step, slots=4)
    assert shared_prefix_slots(first_step, slots=4)
    # More requests than slots cannot all be pinned; a path listed once is where its slot is.
    assert not shared_prefix_slots(first_step, slots=3)
    assert not shared_prefix_slots(same_prompt_requests(["q", "q", "p"], step, slots=4), slots=4)
    assert not shared_prefix_slots([], slots=4)
    # A request of several samples starts them on slots of the server's choosing.
    assert not shared_prefix_slots(same_prompt_requests(["q", "q"], SamplingParams(n=2, temperature=1.0, cache_output=True), slots=4), slots=4)


@pytest.fixture(scope="module")
def servers():
    """The supervised llama-server of the small model with a given number of slots."""
    from workers.engines.llamacpp import LlamaCppEngine

    made: dict[int, LlamaCppEngine] = {}

    def server(slots: int) -> LlamaCppEngine:
        if slots not in made:
            made[slots] = LlamaCppEngine("smollm2-135m", parallel=slots)
        return made[slots]

    yield server
    for engine in made.values():
        engine.close()


@pytest.mark.slow
def test_repeated_prompts_compute_their_prompt_once_per_request(servers):
    server = servers(4)
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


@pytest.mark.slow
def test_every_path_of_a_wave_finds_the_kv_of_its_prefix(servers):
    """Two questions of four paths each, every path continued in one wave per step, as a
    search's are. The first wave computes each question once, charged to its first path, and
    its paths are still sampled apart. After it a step computes what its path added lately
    (slots may swap two siblings' paths, which share most of it), never its question again.
    (With llama-server's default of clearing idle slots when a task starts, one path of nearly
    every wave computed its whole prompt.)"""
    questions = [f"Question {i}: in the story, where does the {animal} live, and what does it eat? Answer:" for i, animal in enumerate(("otter", "heron"))]
    step = SamplingParams(max_tokens=6, temperature=1.0, seed=5, cache_output=True)
    paths = [q for q in questions for _ in range(4)]
    computed, first = [], None
    for _ in range(4):
        rows = [row[0] for row in servers(8).generate(paths, step)]
        first = first or rows
        computed.append([c.prompt_tokens - c.cached_tokens for c in rows])
        paths = [path + written(c) for path, c in zip(paths, rows)]
    for q in (0, 4):
        question = first[q].prompt_tokens
        # Once on a fresh server, plus at most the last token each copy evaluates again.
        assert question > 12 and question - 3 <= sum(computed[0][q : q + 4]) <= question + 4, computed
        assert computed[0][q] >= question - 3 and len({c.text for c in first[q : q + 4]}) > 1
    assert all(n < min(c.prompt_tokens for c in first) for wave in computed[1:] for n in wave), computed
    assert not any(servers(8).server.slot_dir.glob("prefix-*")), "a saved prompt outlived its copies"
