"""TransformersEngine on the real embedded model."""

import pytest

from plait.errors import EngineError, MissingDependency
from workers.engines.base import SamplingParams, chat

pytestmark = pytest.mark.slow

MIXED = [
    chat(("user", "What is 2+3?")),
    "The capital of France is",
    chat(("user", "Write a Python function that adds two numbers.")),
    chat(("system", "Answer in one word."), ("user", "Name a colour.")),
]


def test_embedded_model_converts_once_then_loads_from_the_cache(tmp_path, monkeypatch):
    from workers.engines.embedded import embedded_model_dir

    monkeypatch.setenv("PLAIT_CACHE_DIR", str(tmp_path))
    messages = []
    first = embedded_model_dir(messages.append)
    assert first.is_relative_to(tmp_path) and len(messages) == 1 and "converting" in messages[0]
    assert (first / "model.safetensors").stat().st_size > 100_000_000
    assert embedded_model_dir(messages.append) == first and len(messages) == 1  # no second conversion
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".convert-")]


def test_batched_greedy_equals_one_by_one(engine):
    params = SamplingParams(max_tokens=40)
    batched = [group[0] for group in engine.generate(MIXED, params)]
    single = [engine.generate([p], params)[0][0] for p in MIXED]
    assert [c.text for c in batched] == [c.text for c in single]
    assert [c.token_ids for c in batched] == [c.token_ids for c in single]
    assert all(c.text for c in batched)


def test_stop_string_cuts_the_text_and_is_reported(engine):
    (free,) = engine.generate(["The capital of France is"], SamplingParams(max_tokens=12))[0]
    assert "." in free.text  # the unconstrained continuation contains the stop string
    (stopped,) = engine.generate(["The capital of France is"], SamplingParams(max_tokens=12, stop=(".",)))[0]
    assert stopped.text == free.text.split(".")[0]
    assert (stopped.finish_reason, stopped.stop_reason) == ("stop", ".")
    assert stopped.completion_tokens < free.completion_tokens


def test_max_tokens_ends_with_length(engine):
    (c,) = engine.generate(["Count: 1, 2, 3,"], SamplingParams(max_tokens=5))[0]
    assert (c.finish_reason, c.completion_tokens, len(c.logprobs)) == ("length", 5, 5)


def test_sampling_is_reproducible_with_a_seed_and_n_gives_n(engine):
    params = SamplingParams(max_tokens=12, temperature=1.0, n=3, seed=7)
    first = [c.text for c in engine.generate(["Once upon a time"], params)[0]]
    again = [c.text for c in engine.generate(["Once upon a time"], params)[0]]
    other = [c.text for c in engine.generate(["Once upon a time"], SamplingParams(max_tokens=12, temperature=1.0, n=3, seed=8))[0]]
    assert len(first) == 3 and first == again and first != other


def test_logprobs_agree_with_a_full_forward_pass(engine):
    prompt = chat(("user", "What is 2+3?"))
    (c,) = engine.generate([prompt], SamplingParams(max_tokens=10))[0]
    prompt_ids = engine.encode(prompt)
    reference = engine.sequence_logprobs(prompt_ids + c.token_ids)[len(prompt_ids):]
    assert c.prompt_tokens == len(prompt_ids)
    assert c.logprobs == pytest.approx(reference, abs=1e-3)
    assert all(lp <= 0 for lp in c.logprobs)


def test_score_prefers_the_plausible_continuation(engine):
    assert engine.score("The capital of France is", " Paris") > engine.score("The capital of France is", " Berlin")
    assert engine.score("x", "") == 0.0


def test_info_reports_size_and_kv_layout(engine):
    info = engine.info()
    assert 130e6 < info.parameters < 140e6
    assert (info.kv_layout.layers, info.kv_layout.kv_heads, info.kv_layout.head_dim) == (30, 3, 64)
    assert info.context_length == 8192 and len(info.fingerprint) == 16
    assert info.flops(10) == 20 * info.parameters


def test_too_long_prompt_is_a_clear_error(engine):
    with pytest.raises(EngineError, match="shorten it"):
        engine.generate(["word " * 9000], SamplingParams(max_tokens=1))


def test_unknown_model_is_a_clear_error(tmp_path):
    from workers.engines.transformers_engine import TransformersEngine

    with pytest.raises(MissingDependency, match="never downloads"):
        TransformersEngine(str(tmp_path / "nowhere"))
