"""Unit tests of the strategy loops around the engine. `ScriptedEngine` is a deterministic
test double that replays written model turns; the sandbox and verifier are the real ones.
End-to-end behaviour with the real model is in test_e2e.py."""

import pytest

from plait.errors import InvalidInput
from workers.engines.base import Completion, EngineInfo, SamplingParams, cut_at_stop
from workers.strategies import make_strategy
from workers.strategies.base import RunContext
from workers.types import Budget


class ScriptedEngine:
    """Test double: each question gets its scripted turns in order; a word is a token, and stop
    strings cut like a server (the rest of the word that completes one is its stop_tail). A
    turn is its text, or (text, log-probability of each of its tokens)."""

    def __init__(self, scripts: dict[str, list[str]]):
        self.scripts = {q: list(turns) for q, turns in scripts.items()}
        self.calls: list[tuple[list, SamplingParams]] = []

    def _question(self, prompt) -> str:
        """The scripted question the prompt's last user turn asks (an instruction may follow it)."""
        asked = next(m.content for m in reversed(prompt) if m.role == "user")
        return max((q for q in self.scripts if asked.startswith(q)), key=len)

    def generate(self, prompts, params):
        self.calls.append((prompts, params))
        out = []
        for prompt in prompts:
            raw = self._next_text(prompt)
            raw, logprob = raw if isinstance(raw, tuple) else (raw, 0.0)
            words = raw.split(" ")
            text, matched, after = cut_at_stop(" ".join(words[: params.max_tokens]), params.stop)
            tokens = min(len(words), params.max_tokens)
            finish = "stop" if matched or tokens == len(words) else "length"
            tail = after.split(" ", 1)[0]
            logprobs = [logprob] * tokens
            out.append([Completion(text, logprobs=logprobs, finish_reason=finish, stop_reason=matched, stop_tail=tail, prompt_tokens=10, completion_tokens=tokens)])
        return out

    def _next_text(self, prompt) -> str:
        return self.scripts[self._question(prompt)].pop(0)

    def score(self, prompt, continuation):
        return 0.0

    def encode(self, prompt) -> list[int]:
        return [0] * 10  # every prompt is 10 tokens, as generate() reports

    def info(self):
        return EngineInfo("scripted", parameters=1000, context_length=4096, kv_layout=None, fingerprint="test")


def run(name, scripts, params=None, budget=None):
    engine = ScriptedEngine(scripts)
    events = []
    ctx = RunContext(engine, budget or Budget(), emit=events.append)
    return make_strategy(name, params).run(list(scripts), ctx), engine, events


def test_tora_runs_code_appends_output_and_continues():
    q = "What is 6 times 7?"
    turns = ["Multiply.\n```python\nprint(6*7)\n```\n```output\nignored", "So it is \\boxed{42}."]
    (attempt,), engine, events = run("tora", {q: turns})
    assert [c.result.stdout.strip() for c in attempt.tool_calls] == ["42"]
    assert attempt.tool_calls[0].result.status == "ok"
    # The second call continues the assistant turn that now carries the real output.
    continued = engine.calls[1][0][0][-1]
    assert continued.role == "assistant" and continued.content.endswith("```output\n42\n```\n")
    assert (attempt.answer, attempt.answer_source, attempt.finish_reason) == ("42", "boxed", "answered")
    assert attempt.verdict.status == "unknown" and "executed code" in attempt.verdict.message
    assert [e["type"] for e in events] == ["generated", "tool_call", "generated"]


def test_tora_stops_at_the_closing_fence_and_falls_back_to_the_output_line():
    q = "Compute 2**10."
    turns = ["```python\nx = 2**10\nx\n```\nmore text the model should not get to write", "I am done."]
    (attempt,), _, _ = run("tora", {q: turns})
    assert attempt.tool_calls[0].code == "x = 2**10\nx"
    assert (attempt.answer, attempt.answer_source) == ("1024", "output")
    assert "more text" not in attempt.text


def test_tora_shows_errors_to_the_model_and_caps_tool_rounds():
    q = "Loop forever?"
    turns = ["```python\n1/0\n```\n"] * 3 + ["\\boxed{0}"]
    (attempt,), engine, _ = run("tora", {q: turns}, {"max_tool_calls": 2})
    assert len(attempt.tool_calls) == 2 and len(engine.calls) == 3
    assert "ZeroDivisionError" in attempt.text
    assert attempt.tool_calls[0].result.status == "error"


def test_tora_batches_questions_in_one_engine_call_per_round():
    scripts = {
        "Q1: 3+4?": ["```python\nprint(3+4)\n```\n", "\\boxed{7}"],
        "Q2: 5+6?": ["It is \\boxed{11}."],
    }
    attempts, engine, _ = run("tora", scripts)
    assert [len(prompts) for prompts, _ in engine.calls] == [2, 1]
    assert [a.answer for a in attempts] == ["7", "11"]


def test_token_budget_caps_generation_exactly():
    q = "Long?"
    (attempt,), engine, _ = run("cot", {q: [" ".join(["word"] * 50)]}, budget=Budget(max_tokens=20))
    assert engine.calls[0][1].max_tokens == 20 and attempt.completion_tokens == 20


def test_a_transcript_cut_off_by_the_cap_has_no_answer_but_a_finished_one_keeps_its_last_value():
    cut, whole = "Cut?", "Whole?"
    scripts = {cut: ["First 12 apples, then 30 more and then"], whole: ["So 12 apples plus 30 make 42"]}
    attempts, _, _ = run("cot", scripts, {"max_tokens_per_call": 6})
    assert (attempts[0].answer, attempts[0].finish_reason) == (None, "budget")  # 6 words of 8: no answer stated
    attempts, _, _ = run("cot", scripts)
    assert [(a.answer, a.answer_source, a.finish_reason) for a in attempts] == [("30", "last", "answered"), ("42", "last", "answered")]
    (stated,), _, _ = run("cot", {cut: ["The answer is 7. We check: 3 plus 4 is"]}, {"max_tokens_per_call": 6})
    assert (stated.answer, stated.finish_reason) == ("7", "budget")  # what it stated before the cut counts


def test_exhausted_budget_ends_tora_without_another_call():
    q = "Budget?"
    turns = ["Let us run: ```python\nprint(1)\n```\n", "never generated"]
    (attempt,), engine, _ = run("tora", {q: turns}, {"max_tokens_per_call": 4}, Budget(max_tokens=4))
    assert len(engine.calls) == 1 and attempt.finish_reason == "budget"
    assert attempt.answer == "1"


def test_pal_answer_is_the_programs_output():
    q = "Half of 9?"
    (attempt,), engine, _ = run("pal", {q: ["print(9/2)\n```"]})
    assert engine.calls[0][0][0][-1].content == "```python\n"  # the block is opened for the model
    assert (attempt.answer, attempt.answer_source) == ("4.5", "output")


def test_cot_reads_the_boxed_answer_and_counts_flops():
    q = "Solve for x: 2*x = 8"
    (attempt,), _, _ = run("cot", {q: ["Divide by 2: \\boxed{4}"]})
    assert attempt.answer == "4" and attempt.tool_calls == []
    assert attempt.flops == 2 * 1000 * attempt.tokens
    assert attempt.verdict.status == "verified"  # substituted into the equation


class CautiousScriptedEngine(ScriptedEngine):
    """Test double: as ScriptedEngine, each completion reporting 5 cautious-decoding trial tokens."""

    def generate(self, prompts, params):
        out = super().generate(prompts, params)
        for (completion,) in out:
            completion.trial_tokens = 5
        return out


def test_cautious_decoding_is_a_strategy_option_and_its_trials_are_charged_as_flops():
    q = "Solve for x: 2*x = 8"
    engine = CautiousScriptedEngine({q: ["Divide by 2: \\boxed{4}"] * 2})
    (attempt,) = make_strategy("majority", {"method": "cot", "samples": 2, "cautious_entropy": 2.0}).run([q], RunContext(engine))
    assert [params.cautious_entropy for _, params in engine.calls] == [2.0]  # handed to the method's batched call
    assert attempt.flops == 2 * 1000 * (attempt.tokens + 2 * 5)
    (plain,), engine, _ = run("cot", {q: ["Divide by 2: \\boxed{4}"]})
    assert engine.calls[0][1].cautious_entropy is None  # the tier decides
    with pytest.raises(InvalidInput, match="cautious_entropy must be >= 0"):
        make_strategy("pal", {"cautious_entropy": -1})


def test_unknown_strategy_and_parameters_are_named():
    import pytest

    from plait.errors import InvalidInput

    with pytest.raises(InvalidInput, match="unknown strategy 'beam'"):
        make_strategy("beam")
    with pytest.raises(InvalidInput, match="no parameter max_tools"):
        make_strategy("tora", {"max_tools": 3})
    with pytest.raises(InvalidInput, match="max_tool_calls"):
        make_strategy("tora", {"max_tool_calls": -1})
