"""Rewards: how good a (possibly partial) solution looks, in [0, 1], behind one protocol.

- `tool`: the verifier's and the sandbox's signals — a re-check by substitution into the
  problem's equation, programs that ran or failed;
- `lm`: the model's own confidence, exp(mean log-probability) of the tokens it wrote, free
  because the engine returns those log-probabilities while decoding;
- `reverse`: time-reversal scoring (TRLM): how well the solution predicts the question,
  exp(mean log-probability of the question's tokens) given the solution, with the forward
  model and a reversed prompt — one extra scoring pass per candidate;
- `prm`: a judge asked whether the solution is correct, P(" Yes") against P(" No"); any
  engine can serve it (a process reward model behind an OpenAI-compatible server, or the
  worker's own model as a judge).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Protocol

from plait.errors import InvalidInput
from workers.engines.base import Engine


@dataclass
class Candidate:
    """What a reward looks at: one sample or one partial path of a search tree."""

    question: str
    text: str  # the solution so far, tool outputs included
    answer: str | None = None
    logprob: float = 0.0  # sum over the generated tokens
    generated: int = 0  # generated tokens
    tools_ok: int = 0  # programs that ran without error
    tools_failed: int = 0
    verdict: str = ""  # the reference-free verifier's status, when the solution is finished
    extra: dict = field(default_factory=dict)


class Reward(Protocol):
    name: str

    def score(self, candidates: list[Candidate]) -> list[float]:
        """One reward in [0, 1] per candidate."""


class _OneByOne(ABC):
    """A reward that scores each candidate on its own."""

    def score(self, candidates: list[Candidate]) -> list[float]:
        return [self._one(c) for c in candidates]

    @abstractmethod
    def _one(self, c: Candidate) -> float: ...


class _ModelJudged(_OneByOne):
    """A reward read from a model's scores."""

    def __init__(self, engine: Engine):
        self.engine = engine


class ToolReward(_OneByOne):
    name = "tool"

    def _one(self, c: Candidate) -> float:
        if c.verdict == "verified":
            return 1.0
        if c.verdict in ("refuted", "error"):
            return 0.0
        value = 0.5 + 0.25 * (c.tools_ok > 0) - 0.25 * (c.tools_failed > 0)
        return max(0.0, min(1.0, value))


class LikelihoodReward:
    name = "lm"

    def score(self, candidates: list[Candidate]) -> list[float]:
        return [math.exp(c.logprob / c.generated) if c.generated else 0.0 for c in candidates]


class ReverseReward(_ModelJudged):
    """Score of the question given the solution (a forward model read backwards)."""

    name = "reverse"

    def _one(self, c: Candidate) -> float:
        if not c.text.strip():
            return 0.0
        prompt = (
            f"Here is a worked solution:\n{c.text.strip()}\n"
            + (f"Its final answer is {c.answer}.\n" if c.answer else "")
            + "The problem it solves reads:\n"
        )
        words = max(len(c.question.split()), 1)  # an engine-independent length for the mean
        return math.exp(self.engine.score(prompt, c.question) / words)


class JudgeReward(_ModelJudged):
    """P(Yes) / (P(Yes) + P(No)) that the solution is correct, from `engine`."""

    name = "prm"

    def _one(self, c: Candidate) -> float:
        prompt = (
            f"Problem: {c.question}\nSolution: {c.text.strip()}\n"
            "Is every step of this solution correct? Answer Yes or No.\nAnswer:"
        )
        yes, no = self.engine.score(prompt, " Yes"), self.engine.score(prompt, " No")
        return 1.0 / (1.0 + math.exp(no - yes))


REWARDS = ("tool", "lm", "reverse", "prm")


def make_reward(name: str, engine: Engine, judge: Engine | None = None) -> Reward:
    """`judge`: the engine serving `prm` when one is configured; else the worker's own."""
    if name == "tool":
        return ToolReward()
    if name == "lm":
        return LikelihoodReward()
    if name == "reverse":
        return ReverseReward(engine)
    if name == "prm":
        return JudgeReward(judge or engine)
    raise InvalidInput(f"unknown reward {name!r}: choose one of {', '.join(REWARDS)}")


__all__ = ["Candidate", "REWARDS", "Reward", "make_reward"]
