"""A new solution format is one Method class: registered by name, it runs under every search
algorithm. The format here is a test double (`Calculator`: arithmetic in <<...>> tags that the
sandbox evaluates, GSM8K-style) driven by `ScriptedEngine`; the sandbox and verifier are real."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest

from plait.errors import InvalidInput
from test_strategies import run
from tools.sandbox import ExecResult
from workers.engines.base import Completion, Prompt, chat
from workers.strategies import run as runs
from workers.strategies.base import format_output
from workers.strategies.methods import MathMethod
from workers.strategies.paths import Path

QUESTION = "How many days are in six weeks?"
TURNS = ["Six weeks of seven days are <<6*7>> ignored", " days, so \\boxed{42}."]


@dataclass(frozen=True)
class Calculator(MathMethod):
    """Test double format: prose with <<expression>> tags; each tag's value is computed by a
    program and written back into the tag (<<6*7=42>>), and the model writes on."""

    name: ClassVar[str] = "calculator"
    stop: ClassVar[tuple[str, ...]] = (">>",)
    step_stop: ClassVar[tuple[str, ...]] = (">>",)

    def prompt(self, path: Path, model_id: str) -> Prompt:
        return chat(("user", path.question), ("assistant", path.text))

    def resumes(self, path: Path) -> bool:
        return True

    def advance(self, path: Path, completion: Completion, capped_step: bool = False) -> bool:
        path.step = completion.text
        path.text += completion.text
        tagged = completion.stop_reason == ">>" and "<<" in completion.text
        path.program = f"print({completion.text.rpartition('<<')[2]})" if tagged else None
        return not tagged

    def ran(self, path: Path, result: ExecResult) -> bool:
        path.text += f"={format_output(result)}>>"
        return False


@pytest.fixture
def calculator(monkeypatch):
    monkeypatch.setitem(runs.METHODS, Calculator.name, Calculator)


def test_a_new_method_runs_to_its_end(calculator):
    (attempt,), engine, events = run("greedy", {QUESTION: TURNS}, {"method": "calculator"})
    assert [call.code for call in attempt.tool_calls] == ["print(6*7)"]
    assert engine.calls[1][0][0][-1].content == "Six weeks of seven days are <<6*7=42>>"  # continued after the tool
    assert [params.stop for _, params in engine.calls] == [(">>",)] * 2 and engine.calls[0][1].cache_output
    assert (attempt.answer, attempt.answer_source, attempt.finish_reason) == ("42", "boxed", "answered")
    assert attempt.completion_tokens == 8 + 4 and attempt.prompt_tokens == 2 * 10  # ScriptedEngine's counts
    assert [e["type"] for e in events] == ["generated", "tool_call", "generated"]


def test_a_new_method_is_searched_by_rebase_a_step_at_a_time(calculator):
    (attempt,), engine, _ = run("rebase", {QUESTION: TURNS}, {"method": "calculator", "samples": 1, "reward": "tool"})
    tree = attempt.search["tree"]
    assert [(n["parent"], n["depth"], n["finished"]) for n in tree] == [(None, 0, False), (0, 1, False), (1, 2, True)]
    assert tree[1]["step"] == "Six weeks of seven days are <<6*7"
    assert engine.calls[1][0][0][-1].content == "Six weeks of seven days are <<6*7=42>>"
    assert attempt.answer == "42" and [call.code for call in attempt.tool_calls] == ["print(6*7)"]
    assert attempt.search["method"] == "calculator" and attempt.search["votes"] == {"42": 0.75}


def test_an_unregistered_method_is_refused_by_name():
    with pytest.raises(InvalidInput, match="method must be one of cot, pal, tora, got 'calculator'"):
        run("rebase", {QUESTION: TURNS}, {"method": "calculator"})


@pytest.mark.parametrize("strategy", ["majority", "rebase"])
def test_method_params_reach_the_method_under_every_search(strategy):
    q = "Print twice?"
    turns = ["```python\nprint(1)\n```\n", "```python\nprint(2)\n```\n"]
    params = {"method": "tora", "samples": 1, "method_params": {"max_tool_calls": 1}}
    (attempt,), engine, _ = run(strategy, {q: turns}, params)
    assert [call.code for call in attempt.tool_calls] == ["print(1)"] and len(engine.calls) == 2  # the second program never runs
    assert attempt.text.endswith("print(2)") and attempt.answer == "1"
    with pytest.raises(InvalidInput, match="max_tool_calls"):
        run(strategy, {q: turns}, {**params, "method": "cot"})
