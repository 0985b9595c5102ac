"""The batch of paths every search algorithm runs on, and the usage ledger behind every
Attempt's counters. `ScriptedEngine` is the test double of test_strategies.py."""

from test_strategies import ScriptedEngine, run
from workers.engines.base import Completion, EngineInfo
from workers.strategies.base import RunContext
from workers.strategies.cot import CoT
from workers.strategies.paths import Account, Decoding, PathBatch
from workers.types import Attempt, Budget, Usage


def test_usage_charges_what_was_computed_and_adds_up():
    info = EngineInfo("m", parameters=1000, context_length=4096, kv_layout=None, fingerprint="f")
    usage = Usage()
    decode = {"speculative_accepted": 3, "sinks_peak_cache_tokens": 40}
    usage.charge(Completion("a", prompt_tokens=10, completion_tokens=4, cached_tokens=6, trial_tokens=2, decode=decode), info)
    assert usage.to_dict() == {
        "prompt_tokens": 10, "completion_tokens": 4, "cached_tokens": 6, "trial_tokens": 2, "flops": 2 * 1000 * (4 + 4 + 2), "decode": decode
    }  # fmt: skip
    total = Usage().add(usage).add(usage)
    assert total.tokens == 28 and total.flops == 2 * usage.flops and usage.tokens == 14
    # Decode counters add up, but a high-water mark stays the highest.
    assert total.decode == {"speculative_accepted": 6, "sinks_peak_cache_tokens": 40}
    attempt = Attempt("q", "cot", "m", **total.to_dict())
    assert Attempt.from_dict(attempt.to_dict()).usage == total


def test_paths_of_one_account_share_its_tokens_and_a_spent_account_sits_out():
    engine = ScriptedEngine({"A?": ["a b c d e f"] * 3, "B?": ["x y", "z"]})
    batch = PathBatch(RunContext(engine), CoT(), Decoding(), 100)
    shared, alone = Account(Budget(max_tokens=7)), Account(Budget(max_tokens=7))
    paths = [batch.start("A?", shared) for _ in range(3)] + [batch.start("B?", alone)]
    first = batch.generate(paths, (), 0)
    assert engine.calls[0][1].max_tokens == 7 // 3 and shared.usage.completion_tokens == 6
    second = batch.generate(paths, (), 1)  # 1 token left for 3 paths: none of them can go
    assert second[:3] == [None] * 3 and shared.exhausted and not alone.exhausted
    assert len(engine.calls[1][0]) == 1 and second[3].text == "z" and None not in first
    assert (alone.usage.completion_tokens, alone.usage.prompt_tokens) == (2 + 1, 20)


def test_rebase_keeps_to_a_flops_budget():
    q = "What is 2 + 2?"
    budget = Budget(max_tokens=None, max_flops=2 * 1000 * 30)  # 30 tokens, prompts included
    (attempt,), engine, _ = run("rebase", {q: ["Two and two. Four.", "It is four. Yes."]}, {"samples": 2, "method": "cot"}, budget)
    assert engine.calls[0][1].max_tokens == (30 - 2 * 10) // 2 and len(engine.calls) == 1
    assert attempt.flops <= budget.max_flops and len(attempt.search["samples"]) == 2
